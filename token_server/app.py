"""The application factory: settings in, a ready `web.Application` out (tests run it in-process).

Middlewares, outermost first: metrics (sees every final status), CORS (answers preflights and
refuses unlisted origins before any work), JSON errors (turns every failure into
`{error, code, details}`). Protected routes call `enforce_access` for the rate limit and API key.
"""

from __future__ import annotations

from aiohttp import web

from common.web import add_status_routes, error_middleware, handler_args, no_store
from token_server.client_ip import ClientKeys
from token_server.cors import OriginPolicy, cors_middleware
from token_server.metrics import Metrics, metrics_middleware
from token_server.minting import TokenMinter
from token_server.policy import GrantPolicy
from token_server.ratelimit import (
    BucketSpec,
    Clock,
    MemoryRateLimiter,
    RateLimiter,
    RedisRateLimiter,
)
from token_server.routes import MAX_BODY_BYTES, add_routes, health
from token_server.settings import TokenServerSettings
from token_server.state import SERVICES, Services
from token_server.summary import install as install_summary
from token_server.webclient import add_web_client


def build_limiter(settings: TokenServerSettings, clock: Clock | None = None) -> RateLimiter | None:
    """Redis when REDIS_URL is set (replicas share buckets), else this process's memory."""
    if settings.rate_limit_per_minute == 0:
        return None
    spec = BucketSpec.per_minute(settings.rate_limit_per_minute, settings.rate_limit_burst)
    if settings.redis_url is not None:
        return RedisRateLimiter.from_url(settings.redis_url.get_secret_value(), spec, clock=clock)
    return MemoryRateLimiter(spec, clock=clock)


def create_app(settings: TokenServerSettings, *, clock: Clock | None = None) -> web.Application:
    """Build the service. `clock` replaces the rate limiter's time source (tests)."""
    metrics = Metrics()
    api_key = settings.api_key.get_secret_value()
    services = Services(
        settings=settings,
        metrics=metrics,
        policy=GrantPolicy.from_settings(settings),
        minter=TokenMinter.from_settings(settings) if settings.livekit_configured else None,
        limiter=build_limiter(settings, clock),
        api_key=api_key.encode() if api_key else None,
        client_keys=ClientKeys(settings.trusted_proxies),
    )
    app = web.Application(
        middlewares=[
            metrics_middleware(metrics),
            cors_middleware(OriginPolicy(settings.allowed_origins())),
            error_middleware,
        ],
        client_max_size=MAX_BODY_BYTES,
        handler_args=handler_args(settings.read_timeout_seconds),
    )
    app[SERVICES] = services
    app.on_response_prepare.append(no_store)
    app.on_cleanup.append(_close_limiter)
    add_routes(app)
    add_status_routes(app, metrics.registry, lambda: health(services))
    web_root = settings.web_root()
    if web_root is not None:
        add_web_client(app, web_root)
    install_summary(app, metrics, settings.summary_interval_seconds)
    return app


async def _close_limiter(app: web.Application) -> None:
    limiter = app[SERVICES].limiter
    if limiter is not None:
        await limiter.close()
