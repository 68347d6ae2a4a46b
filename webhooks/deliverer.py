"""Delivers outbox rows: claim what is due, POST it signed, record the outcome.

Any 2xx answer delivers. Any other answer, a timeout or a connection error schedules the next
attempt: after bitHuman's fast retries (1 s, 5 s, 30 s) comes a slow backoff (1, 2, 4, ...
minutes, then hourly, for 24 h by default), so an outage of minutes or hours loses nothing;
when the schedule runs out the row is dead-lettered with its last status or error. Redirects
are not followed (a 3xx is a failed attempt).

Logs speak per outage, not per event: a warning when a destination starts failing, a summary
every few minutes while it keeps failing (failed attempts, dead letters), and one line when it
recovers. Dead letters older than WEBHOOK_DEAD_LETTER_RETENTION are deleted hourly.

Where it runs: job processes live only as long as their conversation, and HTTP work on the
conversation's loop is what a dead receiver must not slow down, so the deliverer belongs in a
long-lived process of its own: the worker's main process (start one on the AgentServer's
`worker_started` event and close it on shutdown) or `python -m webhooks`. Several may
share one outbox: claims are leases, so each due row goes to one deliverer and a crashed
deliverer's rows come back when their lease ends. Outbox I/O runs on one worker thread; the
event loop only does HTTP.

    deliverer = await Deliverer.open(settings)
    deliverer.start()
    ...
    await deliverer.aclose()
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from prometheus_client import CollectorRegistry

from common.logs import get_logger
from webhooks.clock import SYSTEM_CLOCK, Clock
from webhooks.metrics import SenderMetrics, metrics_on
from webhooks.outbox import Delivery, OutboxStore, Outcome, open_outbox
from webhooks.settings import WebhookSettings
from webhooks.signatures import ID_HEADER, TIMESTAMP_HEADER, sign_headers
from webhooks.worker_thread import WorkerThread

log = get_logger("webhooks.deliverer")

USER_AGENT = "bithuman-livekit-agent-webhooks/1"
_MAX_RESPONSE_READ = 64 * 1024
_DEPTH_REFRESH_S = 1.0
OUTAGE_REPORT_INTERVAL_S = 300.0
PRUNE_INTERVAL_S = 3600.0


@dataclass
class _Outage:
    """A destination failing since `since`: counts in all, and since the last report."""

    since: float
    reported_at: float
    last_status: int | None
    last_error: str
    failed: int = 0
    dead: int = 0
    failed_unreported: int = 0
    dead_unreported: int = 0


class Deliverer:
    def __init__(
        self,
        settings: WebhookSettings,
        store: OutboxStore,
        *,
        metrics: SenderMetrics,
        clock: Clock = SYSTEM_CLOCK,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._urls = frozenset(settings.urls)
        self._secret = settings.secret.get_secret_value() if settings.secret else None
        self._delays = settings.retry_schedule
        self._retention = settings.dead_letter_retention
        self._next_prune = float("-inf")
        self._timeout = aiohttp.ClientTimeout(total=settings.timeout)
        self._lease = settings.lease
        self._concurrency = settings.concurrency
        self._poll = settings.poll_interval
        self._headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            **settings.header_values(),
        }
        self._session = session
        self._owns_session = session is None
        self._io = WorkerThread("webhook-deliverer")
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._outcomes: list[Outcome] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._depth_checked = float("-inf")
        self._depth_stale = True
        self._outages: dict[str, _Outage] = {}  # by destination URL
        self._unconfigured: set[str] = set()  # URLs of rows no longer in WEBHOOK_URLS

    @classmethod
    async def open(
        cls,
        settings: WebhookSettings,
        *,
        registry: CollectorRegistry | None = None,
        clock: Clock = SYSTEM_CLOCK,
        session: aiohttp.ClientSession | None = None,
    ) -> Deliverer:
        """Open the configured outbox (off the loop) and build a deliverer for it."""
        store = await asyncio.to_thread(open_outbox, settings)
        metrics = metrics_on(SenderMetrics, registry)
        return cls(settings, store, metrics=metrics, clock=clock, session=session)

    def start(self) -> None:
        if self._secret is None:
            log.warning("WEBHOOK_SECRET is not set: webhooks are sent unsigned")
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._concurrency)
            self._session = aiohttp.ClientSession(connector=connector)
        self._task = asyncio.create_task(self._run(), name="webhook-deliverer")

    def wake(self) -> None:
        """Look at the outbox now (new rows were committed)."""
        self._depth_stale = True
        self._wake.set()

    async def aclose(self, grace: float = 5.0) -> None:
        """Stop claiming, give in-flight attempts `grace` seconds, hand back the rest."""
        if self._stopping:
            return
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=grace)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        if self._in_flight:
            await asyncio.wait(list(self._in_flight.values()), timeout=grace)
        unfinished = list(self._in_flight)
        for task in self._in_flight.values():
            task.cancel()
        await asyncio.gather(*self._in_flight.values(), return_exceptions=True)
        self._in_flight.clear()
        self._report_outages(self._clock.now(), final=True)
        try:
            await self._record_outcomes()
            if unfinished:
                await self._io.call(self._store.release, unfinished, self._clock.now())
        except Exception as exc:
            log.warning(
                "webhook outbox unavailable at shutdown; rows wait for their lease", error=repr(exc)
            )
        if self._owns_session and self._session is not None:
            await self._session.close()
        await self._io.call(self._store.close)
        self._io.shutdown()

    # -- main loop ---------------------------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        while not self._stopping:
            self._wake.clear()
            try:
                await self._cycle()
                failures = 0
            except Exception as exc:
                failures += 1
                if failures == 1 or failures % 20 == 0:
                    log.warning(
                        "webhook outbox unavailable, retrying", failures=failures, error=repr(exc)
                    )
                await self._clock.sleep(min(self._poll * failures, 30.0))

    async def _cycle(self) -> None:
        await self._record_outcomes()
        now = self._clock.now()
        self._report_outages(now)
        if now >= self._next_prune:
            self._next_prune = now + PRUNE_INTERVAL_S
            await self._prune(now)
        free = self._concurrency - len(self._in_flight)
        if free > 0 and not self._stopping:
            claimed = await self._io.call(self._store.claim, now, now + self._lease, free)
            for delivery in claimed:
                task = asyncio.create_task(self._attempt(delivery))
                self._in_flight[delivery.key] = task
            if len(claimed) == free:
                return  # more may be due: claim again once a slot frees up
        await self._wait()

    async def _wait(self) -> None:
        if self._in_flight or self._outcomes:
            # Completions wake us; the timeout still notices rows other processes add.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll)
            return
        await self._refresh_depth()
        next_due = await self._io.call(self._store.next_due)
        delay = self._poll
        if next_due is not None:
            delay = min(delay, max(0.0, next_due - self._clock.now()))
        if delay > 0:
            await self._sleep_or_wake(delay)

    async def _sleep_or_wake(self, delay: float) -> None:
        sleeper = asyncio.ensure_future(self._clock.sleep(delay))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()

    async def _refresh_depth(self) -> None:
        # Counting is a query: do it when idle, after a change, or once a second at most.
        loop_now = asyncio.get_running_loop().time()
        if self._depth_stale or loop_now - self._depth_checked >= _DEPTH_REFRESH_S:
            self._depth_stale = False
            self._depth_checked = loop_now
            self._metrics.queue_depth.set(await self._io.call(self._store.depth))

    async def _record_outcomes(self) -> None:
        if not self._outcomes:
            return
        batch, self._outcomes = self._outcomes, []
        self._depth_stale = True
        try:
            await self._io.call(self._store.record, batch)
        except BaseException:
            self._outcomes[:0] = batch
            raise

    # -- one attempt -------------------------------------------------------------------------

    async def _attempt(self, delivery: Delivery) -> None:
        if delivery.url in self._urls:
            status, error = await self._post(delivery)
            outcome = self._judge(delivery, status, error)
        else:  # removed from WEBHOOK_URLS after the row was written: nothing to retry
            if delivery.url not in self._unconfigured:
                self._unconfigured.add(delivery.url)  # one line per URL, not per event
                log.warning(
                    "webhook rows for a destination no longer configured are dead-lettered",
                    destination=_destination(delivery),
                )
            outcome = self._dead_letter(
                delivery, None, "destination is no longer configured", outage=False
            )
        self._outcomes.append(outcome)
        self._in_flight.pop(delivery.key, None)
        self._wake.set()

    async def _post(self, delivery: Delivery) -> tuple[int | None, str | None]:
        stamp = int(self._clock.now())
        if self._secret is None:
            signed = {ID_HEADER: delivery.event_id, TIMESTAMP_HEADER: str(stamp)}
        else:
            signed = sign_headers(self._secret, delivery.event_id, stamp, delivery.body)
        assert self._session is not None
        try:
            async with self._session.post(
                delivery.url,
                data=delivery.body,
                headers={**self._headers, **signed},
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                # Reading a small answer lets the connection be reused.
                await response.content.read(_MAX_RESPONSE_READ)
                status = response.status
        except Exception as exc:  # whatever went wrong, it is a failed attempt to retry
            reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
            return None, reason.replace(delivery.url, str(urlsplit(delivery.url).hostname))
        if 200 <= status < 300:
            return status, None
        return status, f"HTTP {status}"

    def _judge(self, delivery: Delivery, status: int | None, error: str | None) -> Outcome:
        now = self._clock.now()
        attempts = delivery.attempts + 1
        kind = delivery.event_type
        if error is None:
            self._metrics.delivered.labels(kind).inc()
            self._metrics.latency.labels(kind).observe(max(0.0, now - delivery.created_at))
            self._recovered(delivery.url, now)
            return Outcome(delivery.key, True, attempts, now, status=status)
        if attempts > len(self._delays):
            return self._dead_letter(delivery, status, error)
        self._failed(delivery, status, error, now, dead=False)
        delay = self._delays[attempts - 1]
        self._metrics.retried.labels(kind).inc()
        log.debug(
            "webhook attempt failed, will retry",
            retry_in_s=delay,
            **_log_fields(delivery, status, error),
        )
        return Outcome(
            delivery.key, False, attempts, now, status=status, error=error, retry_at=now + delay
        )

    def _dead_letter(
        self, delivery: Delivery, status: int | None, error: str, *, outage: bool = True
    ) -> Outcome:
        now = self._clock.now()
        self._metrics.dead_lettered.labels(delivery.event_type).inc()
        if outage:
            self._failed(delivery, status, error, now, dead=True)
        log.debug("webhook dead-lettered", **_log_fields(delivery, status, error))
        attempts = delivery.attempts + 1
        return Outcome(delivery.key, False, attempts, now, status=status, error=error)

    # -- outages: one warning when it starts, summaries while it lasts, one line at the end --

    def _failed(
        self, delivery: Delivery, status: int | None, error: str, now: float, *, dead: bool
    ) -> None:
        outage = self._outages.get(delivery.url)
        if outage is None:
            outage = _Outage(since=now, reported_at=now, last_status=status, last_error=error)
            self._outages[delivery.url] = outage
            self._metrics.destinations_failing.set(len(self._outages))
            log.warning("webhook destination failing", **_log_fields(delivery, status, error))
        else:
            outage.last_status, outage.last_error = status, error
        outage.failed += 1
        outage.failed_unreported += 1
        if dead:
            outage.dead += 1
            outage.dead_unreported += 1

    def _recovered(self, url: str, now: float) -> None:
        outage = self._outages.pop(url, None)
        if outage is None:
            return
        self._metrics.destinations_failing.set(len(self._outages))
        (log.warning if outage.dead else log.info)(
            "webhook destination recovered",
            destination=urlsplit(url).hostname,
            down_for_s=round(now - outage.since, 1),
            failed_attempts=outage.failed,
            dead_lettered=outage.dead,
        )

    def _report_outages(self, now: float, *, final: bool = False) -> None:
        """A summary per failing destination, at most every OUTAGE_REPORT_INTERVAL_S (and at
        shutdown), when something happened since the last one."""
        for url, outage in self._outages.items():
            due = final or now - outage.reported_at >= OUTAGE_REPORT_INTERVAL_S
            if not due or not (outage.failed_unreported or outage.dead_unreported):
                continue
            log.warning(
                "webhook destination still failing",
                destination=urlsplit(url).hostname,
                down_for_s=round(now - outage.since, 1),
                failed_attempts=outage.failed_unreported,
                dead_lettered=outage.dead_unreported,
                last_status=outage.last_status,
                last_error=outage.last_error,
            )
            outage.reported_at = now
            outage.failed_unreported = outage.dead_unreported = 0

    async def _prune(self, now: float) -> None:
        if self._retention <= 0:
            return
        pruned = await self._io.call(self._store.prune_dead, now - self._retention)
        if pruned:
            log.info("old webhook dead letters deleted", count=pruned)


def _destination(delivery: Delivery) -> str | None:
    return urlsplit(delivery.url).hostname  # never the path: it may hold a token


def _log_fields(delivery: Delivery, status: int | None, error: str) -> dict[str, object]:
    return {
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "destination": _destination(delivery),
        "attempt": delivery.attempts + 1,
        "status": status,
        "error": error,
    }
