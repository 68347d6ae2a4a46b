"""Waiting for the LiveKit stand-in to record something, without polling or sleeping."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Changes:
    """Every part of the stand-in calls `notify()` after recording; tests `wait_for` a record."""

    def __init__(self) -> None:
        self._condition = asyncio.Condition()

    async def notify(self) -> None:
        async with self._condition:
            self._condition.notify_all()

    async def wait_for(self, find: Callable[[], T | None]) -> T:
        """The first non-None result of `find()`, re-checked after each change.

        Waits for as long as it takes: bound it with `asyncio.timeout(...)`.
        """
        found: list[T] = []

        def ready() -> bool:
            value = find()
            if value is not None:
                found.append(value)
            return value is not None

        async with self._condition:
            await self._condition.wait_for(ready)
        return found[-1]
