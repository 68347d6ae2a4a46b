"""Waiting for a generation job: polls with a growing interval and a progress line.

The progress line goes to stderr (stdout stays the answer): on a terminal it is one line redrawn
every second with the status and the time waited; elsewhere (a log, CI) a line is written only
when the status changes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TextIO, TypeVar

T = TypeVar("T")


class WaitTimeout(Exception):
    """The job was still running when the wait's deadline passed."""


@dataclass(frozen=True)
class Backoff:
    """Poll delays: `first`, then each `factor` times longer, up to `cap` (or `first`, if
    larger)."""

    first: float = 2.0
    factor: float = 1.5
    cap: float = 15.0

    def delays(self) -> Iterator[float]:
        delay, cap = self.first, max(self.cap, self.first)
        while True:
            yield delay
            delay = min(cap, delay * self.factor)


def format_elapsed(seconds: float) -> str:
    """`0:07`, `12:34`, `1:02:03`."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    def __init__(
        self, out: TextIO, label: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._out = out
        self._label = label
        self._clock = clock
        self._started = clock()
        self._tty = out.isatty()
        self._status: str | None = None
        self._drawn = False

    @property
    def elapsed(self) -> float:
        return self._clock() - self._started

    def line(self) -> str:
        return f"{self._label}: {self._status} ({format_elapsed(self.elapsed)} elapsed)"

    def update(self, status: str) -> None:
        changed = status != self._status
        self._status = status
        if self._tty:
            self.redraw()
        elif changed:
            print(self.line(), file=self._out, flush=True)

    def redraw(self) -> None:
        if self._tty and self._status is not None:
            self._out.write("\r" + self.line() + "\x1b[K")
            self._out.flush()
            self._drawn = True

    def finish(self) -> None:
        """Ends the redrawn line, so what follows starts on a line of its own."""
        if self._drawn:
            self._out.write("\n")
            self._out.flush()
            self._drawn = False


async def wait_for(
    poll: Callable[[], Awaitable[T]],
    status_of: Callable[[T], str],
    finished: Callable[[T], bool],
    progress: Progress,
    *,
    backoff: Backoff,
    deadline: float | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Poll until `finished`; raises WaitTimeout once `deadline` seconds have passed."""
    delays = backoff.delays()
    try:
        while True:
            answer = await poll()
            progress.update(status_of(answer))
            if finished(answer):
                return answer
            remaining = next(delays)
            if deadline is not None:
                left = deadline - progress.elapsed
                if left <= 0:
                    raise WaitTimeout(progress.line())
                remaining = min(remaining, left)
            while remaining > 0:  # redraw the elapsed time every second on a terminal
                step = min(1.0, remaining)
                await sleep(step)
                remaining -= step
                progress.redraw()
    finally:
        progress.finish()
