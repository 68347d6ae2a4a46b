"""The receiver's engine: durable accept, dedupe, handler workers, dead-letter retries.

`receive` stores the event (or recognises its key) before the HTTP answer, then queues it for
the workers; the answer never waits for a handler. Failed handler runs become dead letters,
retried after `retry_interval`, doubling each time, and parked after `max_attempts`. All
SQLite work runs on one worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable
from enum import StrEnum
from typing import Any, cast

from common.logs import get_logger
from webhooks.clock import SYSTEM_CLOCK, Clock
from webhooks.receiver.metrics import ReceiverMetrics
from webhooks.receiver.router import NamedHandler, ReceivedEvent, Router
from webhooks.receiver.store import DeadLetter, ReceiverStore, StoredEvent
from webhooks.worker_thread import WorkerThread

log = get_logger("webhooks.receiver")


class Receipt(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    BUSY = "busy"


class Processor:
    def __init__(
        self,
        router: Router,
        store: ReceiverStore,
        *,
        metrics: ReceiverMetrics,
        clock: Clock = SYSTEM_CLOCK,
        workers: int = 4,
        queue_size: int = 1000,
        retry_interval: float = 60.0,
        max_attempts: int = 5,
        dedupe_ttl: float = 7 * 24 * 3600.0,
    ) -> None:
        self._router = router
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._workers = workers
        self._capacity = queue_size
        self._retry_interval = retry_interval
        self._max_attempts = max_attempts
        self._dedupe_ttl = dedupe_ttl
        self._queue: asyncio.Queue[tuple[StoredEvent, ReceivedEvent]] = asyncio.Queue()
        self._io = WorkerThread("webhook-receiver")
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Queue events a previous run accepted but did not finish, then start working."""
        recovered = await self._io.call(self._store.pending)
        for stored in recovered:
            try:
                event = _event(stored)
            except ValueError:  # only a damaged store holds a body that does not parse
                log.error("unreadable stored webhook event left pending", key=stored.key)
                continue
            self._queue.put_nowait((stored, event))
        if recovered:
            log.info("webhook events recovered from the store", count=len(recovered))
        self._metrics.queue_depth.set(self._queue.qsize())
        self._metrics.dead_letters.set(await self._io.call(self._store.dead_letter_count))
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self._workers)]
        self._tasks.append(asyncio.create_task(self._maintain()))

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    async def receive(self, key: str, body: bytes, payload: dict[str, Any]) -> Receipt:
        """Store a verified event; `payload` is `body` parsed, with a string `event_type`."""
        if self._queue.qsize() >= self._capacity:
            return Receipt.BUSY
        now = self._clock.now()
        stored = StoredEvent(key, payload["event_type"], body, now)
        if not await self._io.call(self._store.accept, stored):
            return Receipt.DUPLICATE
        self._queue.put_nowait((stored, ReceivedEvent(key, stored.event_type, payload, now)))
        self._metrics.queue_depth.set(self._queue.qsize())
        return Receipt.ACCEPTED

    async def drain(self) -> None:
        """Wait until every queued event has been handled (tests, shutdown)."""
        await self._queue.join()

    async def aclose(self, grace: float = 5.0) -> None:
        """Finish queued events for up to `grace` s; the rest stay pending for the next start."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), grace)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._io.call(self._store.close)
        self._io.shutdown()

    async def retry_dead_letters(self, limit: int = 100) -> int:
        """Re-run due dead letters once; returns how many succeeded."""
        now = self._clock.now()
        letters = await self._io.call(self._store.due_dead_letters, now, limit)
        succeeded = 0
        for letter in letters:
            error = await self._retry(letter)
            attempts = letter.attempts + 1
            next_at: float | None = None
            if error is None:
                succeeded += 1
            elif attempts < self._max_attempts:
                next_at = self._clock.now() + self._retry_interval * 2 ** (attempts - 1)
            else:
                log.warning(
                    "webhook handler parked after its last attempt",
                    handler=letter.handler,
                    event_key=letter.event_key,
                    error=error,
                )
            await self._io.call(
                self._store.retried, letter.id, error, attempts, self._clock.now(), next_at
            )
        self._metrics.dead_letters.set(await self._io.call(self._store.dead_letter_count))
        return succeeded

    async def _retry(self, letter: DeadLetter) -> str | None:
        handler = self._router.find(letter.handler)
        if handler is None:
            return "handler is no longer registered"
        stored = StoredEvent(letter.event_key, letter.event_type, letter.body, letter.failed_at)
        return await self._run(handler, _event(stored))

    async def _work(self) -> None:
        while True:
            stored, event = await self._queue.get()
            try:
                await self._process(stored, event)
            except Exception as exc:
                # Left pending in the store: the next start runs it again.
                log.error(
                    "webhook event could not be finished", event_key=stored.key, error=repr(exc)
                )
            finally:
                self._queue.task_done()
                self._metrics.queue_depth.set(self._queue.qsize())

    async def _process(self, stored: StoredEvent, event: ReceivedEvent) -> None:
        failures: list[tuple[str, str]] = []
        for handler in self._router.handlers_for(event.event_type):
            error = await self._run(handler, event)
            if error is not None:
                failures.append((handler.name, error))
        now = self._clock.now()
        await self._io.call(self._store.finish, stored, failures, now, now + self._retry_interval)
        if failures:
            self._metrics.dead_letters.set(await self._io.call(self._store.dead_letter_count))

    async def _run(self, handler: NamedHandler, event: ReceivedEvent) -> str | None:
        started = time.perf_counter()
        try:
            if handler.is_async:
                await cast(Awaitable[None], handler.fn(event))
            else:
                await asyncio.to_thread(handler.fn, event)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.warning(
                "webhook handler failed",
                handler=handler.name,
                event_key=event.key,
                event_type=event.event_type,
                error=error,
            )
            self._metrics.handler_runs.labels(event.event_type, "failed").inc()
            return error
        finally:
            elapsed = time.perf_counter() - started
            self._metrics.handler_seconds.labels(event.event_type).observe(elapsed)
        self._metrics.handler_runs.labels(event.event_type, "ok").inc()
        return None

    async def _maintain(self) -> None:
        while True:
            await self._clock.sleep(self._retry_interval)
            try:
                await self.retry_dead_letters()
                before = self._clock.now() - self._dedupe_ttl
                await self._io.call(self._store.prune, before)
            except Exception as exc:
                log.error("webhook receiver maintenance failed", error=repr(exc))


def _event(stored: StoredEvent) -> ReceivedEvent:
    payload = json.loads(stored.body)
    return ReceivedEvent(stored.key, stored.event_type, payload, stored.received_at)
