"""When a gesture may fire: a cooldown per gesture and a minimum gap between any two."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping


class Pacer:
    """Grants or refuses each gesture; only granted gestures start the timers."""

    def __init__(
        self,
        *,
        cooldown: float,
        min_gap: float,
        cooldowns: Mapping[str, float] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cooldown = cooldown
        self._cooldowns = dict(cooldowns or {})
        self._min_gap = min_gap
        self._clock = clock
        self._last: dict[str, float] = {}
        self._last_any: float | None = None

    def allow(self, gesture: str) -> bool:
        now = self._clock()
        if self._last_any is not None and now - self._last_any < self._min_gap:
            return False
        last = self._last.get(gesture)
        if last is not None and now - last < self._cooldowns.get(gesture, self._cooldown):
            return False
        self._last[gesture] = now
        self._last_any = now
        return True
