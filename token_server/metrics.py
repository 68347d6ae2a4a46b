"""Prometheus metrics, in a registry owned by one application (tests build many apps)."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CollectorRegistry, Counter, Histogram

from common.web import Handler

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Minting is tens of microseconds; the tail buckets catch a starved event loop.
_MINT_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "token_server_requests",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.mint_seconds = Histogram(
            "token_server_mint_seconds",
            "Time to build and sign one LiveKit token.",
            buckets=_MINT_BUCKETS,
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "token_server_rate_limited",
            "Requests refused by the rate limit, by route template.",
            ["route"],
            registry=self.registry,
        )


def route_label(request: web.Request) -> str:
    """The matched route's template (bounded cardinality), never the raw path."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def method_label(request: web.Request) -> str:
    """Clients may send any method token: keep the label set closed."""
    return request.method if request.method in _METHODS else "OTHER"


def metrics_middleware(metrics: Metrics) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            metrics.requests.labels(route_label(request), method_label(request), str(status)).inc()

    return middleware
