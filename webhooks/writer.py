"""Moves events from the event loop into the outbox, on a thread of its own.

`put` costs the caller a deque append: no lock, no system call, no serialization. The writer
thread is woken once per loop iteration that queued something (a callback scheduled with
`call_soon`, so the wake-up's system call is not part of the caller's `put`); it then builds
each event's body and commits everything queued since its previous commit as one transaction.
An idle agent therefore commits each event within a loop iteration or two, while a burst
shares commits and the commit rate stays bounded.

Crash window: an event is durable once its batch commits, normally a millisecond or two after
`put`. Events put but not yet committed die with the process if it is killed; `flush()` waits
until everything put so far is committed. When the store fails (disk full, Redis down), the
thread keeps the batch and retries with backoff; at close it gives up after a deadline and
logs how many events it could not store.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
import time
from collections.abc import Callable, Sequence

from common.logs import get_logger
from webhooks.metrics import SenderMetrics
from webhooks.outbox import OutboxStore
from webhooks.payloads import Event

log = get_logger("webhooks.writer")

MAX_BATCH = 512


class OutboxWriter:
    def __init__(
        self,
        store: OutboxStore,
        urls: Sequence[str],
        *,
        on_commit: Callable[[], None] | None = None,
        metrics: SenderMetrics | None = None,
        pause: Callable[[float], None] = time.sleep,
    ) -> None:
        self._store = store
        self._urls = tuple(urls)
        self._on_commit = on_commit
        self._metrics = metrics
        self._pause = pause  # the thread's backoff between failed writes; tests inject it
        self._pending: collections.deque[Callable[[], Event]] = collections.deque()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="webhook-outbox-writer", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._kick_scheduled = False
        self._stopping = False
        self._give_up_at = float("inf")
        self._put = 0
        self._done = 0  # committed, or dropped because the event could not be built
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread.start()

    def attach(self) -> None:
        """Bind to the running loop without starting the thread: a writer that only queues
        (the emitter's warm-up), emptied with `discard()`."""
        self._loop = asyncio.get_running_loop()

    def discard(self) -> None:
        """Forget what was put and not yet taken by the thread, as if it had never been."""
        self._put -= len(self._pending)
        self._pending.clear()
        self._kick_scheduled = False

    def put(self, build: Callable[[], Event]) -> None:
        """Queue an event (as the call that builds it). Call from the event loop's thread."""
        assert self._loop is not None, "start() the writer first"
        self._put += 1
        self._pending.append(build)
        if not self._kick_scheduled:
            self._kick_scheduled = True
            self._loop.call_soon(self._kick)

    @property
    def unwritten(self) -> int:
        """Events put but not committed (or dropped) yet."""
        return self._put - self._done

    async def flush(self) -> None:
        """Wait until every event put so far is committed (or the writer has stopped)."""
        if self._done >= self._put or not self._thread.is_alive():
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append((self._put, waiter))
        await waiter

    async def aclose(self, give_up_after: float = 10.0) -> None:
        """Commit what is queued (retrying a failing store for up to `give_up_after` s), stop."""
        if not self._thread.is_alive():
            return
        self._give_up_at = time.monotonic() + give_up_after
        self._stopping = True
        self._ready.set()
        await asyncio.to_thread(self._thread.join)
        for _, waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    # -- loop side ---------------------------------------------------------------------------

    def _kick(self) -> None:
        self._kick_scheduled = False
        self._ready.set()

    def _done_on_loop(self, count: int) -> None:
        self._done += count
        still_waiting = []
        for target, waiter in self._waiters:
            if target > self._done:
                still_waiting.append((target, waiter))
            elif not waiter.done():
                waiter.set_result(None)
        self._waiters = still_waiting
        if self._on_commit is not None:
            self._on_commit()

    # -- writer thread -----------------------------------------------------------------------

    def _run(self) -> None:
        batch: list[Event] = []
        dropped = 0
        failures = 0
        try:
            while True:
                if not batch and not self._pending:
                    if self._stopping:
                        return
                    self._ready.wait()
                    self._ready.clear()
                    continue
                dropped += self._build(batch)
                if not batch:
                    self._notify(dropped)
                    dropped = 0
                    continue
                try:
                    self._store.append(batch, self._urls)
                except Exception as exc:
                    failures += 1
                    if self._stopping and time.monotonic() >= self._give_up_at:
                        lost = len(batch) + len(self._pending)
                        log.error(
                            "webhook events lost: outbox unwritable", count=lost, error=repr(exc)
                        )
                        return
                    if failures == 1 or failures % 50 == 0:
                        log.warning(
                            "webhook outbox write failed, retrying",
                            pending=len(batch),
                            failures=failures,
                            error=repr(exc),
                        )
                    self._pause(min(2.0, 0.05 * 2 ** min(failures, 6)))
                    continue
                if self._metrics is not None:
                    for event in batch:
                        self._metrics.stored.labels(event.event_type).inc()
                self._notify(len(batch) + dropped)
                batch = []
                dropped = 0
                failures = 0
        finally:
            self._store.close()

    def _build(self, batch: list[Event]) -> int:
        """Build queued events into `batch` (up to MAX_BATCH); returns how many failed."""
        dropped = 0
        while len(batch) < MAX_BATCH and self._pending:
            build = self._pending.popleft()
            try:
                batch.append(build())
            except Exception as exc:  # the caller's arguments were checked: this is a bug
                dropped += 1
                log.error("webhook event dropped: it could not be built", error=repr(exc))
        return dropped

    def _notify(self, count: int) -> None:
        if self._loop is None or not count:
            return
        # A closed loop means nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._done_on_loop, count)
