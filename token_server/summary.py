"""Traffic in one log line per interval, instead of one line per request.

A line per request cost more CPU than all the protections together (the JSON formatter runs for
each), so requests are counted in the Prometheus metrics, the per-token line is logged at DEBUG,
and every `TOKEN_SERVER_SUMMARY_INTERVAL_SECONDS` one INFO line says what happened since the
last one (nothing is logged for an interval without requests).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator

from aiohttp import web

from common.logs import get_logger
from token_server.metrics import Metrics

log = get_logger("token_server")


def _totals(metrics: Metrics) -> tuple[Counter[str], int]:
    """Requests so far by status, and tokens issued so far."""
    statuses: Counter[str] = Counter()
    for family in metrics.requests.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                statuses[sample.labels["status"]] += int(sample.value)
    issued = 0
    for family in metrics.mint_seconds.collect():
        for sample in family.samples:
            if sample.name.endswith("_count"):
                issued += int(sample.value)
    return statuses, issued


class TrafficSummary:
    """Differences between successive readings of the request and mint counters."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._statuses, self._issued = _totals(metrics)

    def take(self) -> dict[str, object] | None:
        """What happened since the last call, or None when nothing did."""
        statuses, issued = _totals(self._metrics)
        delta = statuses - self._statuses
        tokens = issued - self._issued
        self._statuses, self._issued = statuses, issued
        if not delta:
            return None
        return {
            "requests": sum(delta.values()),
            "tokens_issued": tokens,
            "by_status": dict(sorted(delta.items())),
        }


def install(app: web.Application, metrics: Metrics, interval: float) -> None:
    """Log a summary every `interval` seconds while `app` runs (0: never)."""
    if interval <= 0:
        return

    async def run(_: web.Application) -> AsyncIterator[None]:
        summary = TrafficSummary(metrics)

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval)
                fields = summary.take()
                if fields is not None:
                    log.info("traffic", interval_s=interval, **fields)

        task = asyncio.create_task(loop())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        fields = summary.take()  # the last partial interval
        if fields is not None:
            log.info("traffic", interval_s=interval, **fields)

    app.cleanup_ctx.append(run)
