"""An injected clock for the client's retries and waits: records them instead of waiting."""

from __future__ import annotations


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
