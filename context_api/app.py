"""The application factory: settings in, a ready `web.Application` out (tests run it in-process).

Middlewares, outermost first: metrics (sees every final status), errors (bitHuman's shape).
The HTTP client session to LiveKit opens when the app starts and closes with it.
"""

from __future__ import annotations

import aiohttp
from aiohttp import web

from common.web import add_status_routes, handler_args, no_store
from context_api.delivery import FanOut
from context_api.errors import error_middleware
from context_api.metrics import Metrics, metrics_middleware
from context_api.rooms import LiveKitRooms
from context_api.routes import MAX_BODY_BYTES, add_routes, health
from context_api.settings import ContextApiSettings
from context_api.state import SERVICES, Services
from context_api.wire import CommandSigner


def create_app(settings: ContextApiSettings) -> web.Application:
    metrics = Metrics()
    services = Services(
        settings=settings,
        metrics=metrics,
        secret=settings.secret.get_secret_value().encode(),
        signer=CommandSigner(
            settings.livekit_api_key,
            settings.livekit_api_secret.get_secret_value(),
            ttl_seconds=settings.command_ttl_seconds,
        ),
    )
    app = web.Application(
        middlewares=[metrics_middleware(metrics), error_middleware],
        client_max_size=MAX_BODY_BYTES,
        handler_args=handler_args(settings.read_timeout_seconds),
    )
    app[SERVICES] = services
    app.on_response_prepare.append(no_store)
    app.on_startup.append(_open)
    app.on_cleanup.append(_close)
    add_routes(app)
    add_status_routes(app, metrics.registry, lambda: health(services))
    return app


async def _open(app: web.Application) -> None:
    services = app[SERVICES]
    settings = services.settings
    services.http = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=max(100, settings.concurrency * 2))
    )
    rooms = LiveKitRooms(
        settings.livekit_url,
        settings.livekit_api_key,
        settings.livekit_api_secret.get_secret_value(),
        session=services.http,
    )
    services.fanout = FanOut(
        rooms,
        services.signer,
        services.metrics,
        delivery=settings.delivery,
        room_timeout=settings.room_timeout_seconds,
        concurrency=settings.concurrency,
    )


async def _close(app: web.Application) -> None:
    services = app[SERVICES]
    if services.http is not None:
        await services.http.close()
