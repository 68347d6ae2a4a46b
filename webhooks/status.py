"""`GET /healthz` and `GET /metrics` for the deliverer's and the receiver's HTTP servers."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest


def add_status_routes(
    app: web.Application,
    registry: CollectorRegistry,
    health: Callable[[], dict[str, object]] = dict,
) -> None:
    """Health answers `{"status": "ok", **health()}`; metrics is Prometheus' text format."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", **health()})

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
