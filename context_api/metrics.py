"""Prometheus metrics of the context API, in a registry of its own (served at `/metrics`)."""

from __future__ import annotations

import time

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram

from common.web import Handler

# per-room delivery runs from tens of milliseconds (loopback) to the room deadline
ROOM_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "context_api_requests",
            "HTTP requests by route and status.",
            ["route", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "context_api_request_seconds",
            "Time to answer an API request (all rooms).",
            ["route"],
            buckets=ROOM_BUCKETS,
            registry=self.registry,
        )
        self.commands = Counter(
            "context_api_commands",
            "Commands by type and result (delivered, no_active_rooms, failed).",
            ["type", "result"],
            registry=self.registry,
        )
        self.room_results = Counter(
            "context_api_room_results",
            "Per-room outcomes (delivered, skipped, failed) by delivery path (rpc, data, none).",
            ["outcome", "via"],
            registry=self.registry,
        )
        self.room_seconds = Histogram(
            "context_api_room_seconds",
            "Per-room time from the start of its work to its result.",
            ["outcome"],
            buckets=ROOM_BUCKETS,
            registry=self.registry,
        )


def metrics_middleware(metrics: Metrics) -> web.middleware:  # type: ignore[valid-type]
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        response = await handler(request)
        route = request.match_info.route.resource
        name = route.canonical if route is not None else "unmatched"
        metrics.requests.labels(name, str(response.status)).inc()
        if request.path.startswith("/v1/"):
            metrics.request_seconds.labels(name).observe(time.perf_counter() - started)
        return response

    return middleware
