"""The receiver's engine: durable accept, dedupe, handler workers, dead-letter retries.

`receive` stores the event (or recognises its key or fingerprint) before the HTTP answer,
then queues it for the workers; the answer never waits for a handler. Each handler run has a
deadline: an `async def` handler that overruns it is cancelled; a plain function (run in a
thread of its own) cannot be stopped, so it is left to finish in the background while its run
counts as failed. Failed and overrun runs become dead letters, retried after
`retry_interval`, doubling each time, and parked after `max_attempts`. An event that a
previous run left pending is run again at start, unless it has now been found pending at
`max_attempts` starts: then it is parked instead (a handler that kills the receiver must not
make every restart kill it again). All SQLite work runs on one worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import threading
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any, cast

from common.logs import get_logger
from webhook_receiver.metrics import ReceiverMetrics
from webhook_receiver.router import NamedHandler, ReceivedEvent, Router
from webhook_receiver.store import DeadLetter, ReceiverStore, StoredEvent
from webhooks.clock import SYSTEM_CLOCK, Clock
from webhooks.worker_thread import WorkerThread

log = get_logger("webhook_receiver")

DAY_S = 24 * 3600.0


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
        dedupe_ttl: float = 7 * DAY_S,
        handler_timeout: float = 60.0,
        dead_letter_retention: float = 14 * DAY_S,
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
        self._handler_timeout = handler_timeout
        self._retention = dead_letter_retention
        self._queue: asyncio.Queue[tuple[StoredEvent, ReceivedEvent]] = asyncio.Queue()
        self._io = WorkerThread("webhook-receiver")
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Queue events a previous run accepted but did not finish, then start working."""
        recovered = await self._io.call(self._store.recover)
        parked = 0
        for stored in recovered:
            if stored.starts >= self._max_attempts:
                await self._park_interrupted(stored)
                parked += 1
                continue
            try:
                event = _event(stored)
            except ValueError:  # only a damaged store holds a body that does not parse
                log.error("unreadable stored webhook event left pending", key=stored.key)
                continue
            self._queue.put_nowait((stored, event))
        if recovered:
            log.info(
                "webhook events recovered from the store",
                count=len(recovered) - parked,
                parked=parked,
            )
        self._metrics.queue_depth.set(self._queue.qsize())
        self._metrics.dead_letters.set(await self._io.call(self._store.dead_letter_count))
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self._workers)]
        self._tasks.append(asyncio.create_task(self._maintain()))

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    async def receive(
        self, key: str, body: bytes, payload: dict[str, Any], fingerprint: str | None = None
    ) -> Receipt:
        """Store a verified event; `payload` is `body` parsed, with a string `event_type`.

        A duplicate is an event whose key or fingerprint was seen within the dedupe TTL.
        """
        if self._queue.qsize() >= self._capacity:
            return Receipt.BUSY
        now = self._clock.now()
        stored = StoredEvent(key, payload["event_type"], body, now, fingerprint)
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

    async def prune(self) -> tuple[int, int]:
        """Forget handled events older than the dedupe TTL and delete parked dead letters
        older than their retention; returns how many of each."""
        now = self._clock.now()
        events = await self._io.call(self._store.prune, now - self._dedupe_ttl)
        letters = 0
        if self._retention > 0:
            letters = await self._io.call(self._store.prune_parked, now - self._retention)
            if letters:
                log.info("old parked webhook dead letters deleted", count=letters)
                self._metrics.dead_letters.set(await self._io.call(self._store.dead_letter_count))
        return events, letters

    async def _park_interrupted(self, stored: StoredEvent) -> None:
        error = (
            f"interrupted: the receiver stopped {stored.starts} times while this event was pending"
        )
        handlers = [h.name for h in self._router.handlers_for(stored.event_type)]
        log.warning(
            "webhook event parked: it was pending at too many starts",
            event_key=stored.key,
            event_type=stored.event_type,
            starts=stored.starts,
        )
        await self._io.call(
            self._store.finish,
            stored,
            [(name, error) for name in handlers],
            self._clock.now(),
            None,
            stored.starts,
        )

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
        fields = {"handler": handler.name, "event_key": event.key, "event_type": event.event_type}
        try:
            async with asyncio.timeout(self._handler_timeout):
                if handler.is_async:
                    await cast(Awaitable[None], handler.fn(event))
                else:
                    await _in_daemon_thread(handler.fn, event)
        except TimeoutError:
            error = f"TimeoutError: the handler overran its {self._handler_timeout:g} s deadline"
            log.warning(
                "webhook handler overran its deadline",
                deadline_s=self._handler_timeout,
                still_running=not handler.is_async,  # a thread cannot be stopped
                **fields,
            )
            self._metrics.handler_timeouts.labels(event.event_type).inc()
            self._metrics.handler_runs.labels(event.event_type, "timeout").inc()
            return error
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.warning("webhook handler failed", error=error, **fields)
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
                await self.prune()
            except Exception as exc:
                log.error("webhook receiver maintenance failed", error=repr(exc))


def _in_daemon_thread(
    fn: Callable[[ReceivedEvent], object], event: ReceivedEvent
) -> Awaitable[None]:
    """Run a plain handler in a daemon thread of its own; the awaitable settles when it ends.

    Not the loop's default executor: a handler that never returns would hold one of its
    threads forever and block the process's exit, which waits for those threads.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    context = contextvars.copy_context()

    def settle(error: BaseException | None) -> None:
        if done.done():  # the deadline passed and nobody waits any more
            return
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)

    def target() -> None:
        error: BaseException | None = None
        try:
            context.run(fn, event)
        except Exception as exc:
            error = exc
        except BaseException as exc:  # SystemExit and the like: a failure, not our exit
            error = RuntimeError(f"{type(exc).__name__} in a webhook handler")
        with contextlib.suppress(RuntimeError):  # the loop has closed
            loop.call_soon_threadsafe(settle, error)

    threading.Thread(target=target, name=f"webhook-handler-{event.key[:40]}", daemon=True).start()
    return done


def _event(stored: StoredEvent) -> ReceivedEvent:
    payload = json.loads(stored.body)
    return ReceivedEvent(stored.key, stored.event_type, payload, stored.received_at)
