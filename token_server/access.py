"""Who may call a protected route: the per-client rate limit, then the shared API key.

The rate limit runs first so that guessing the API key costs rate-limit tokens too.
"""

from __future__ import annotations

import hmac
import math

from aiohttp import hdrs, web
from multidict import istr

from common.web import ApiError
from token_server.metrics import route_label
from token_server.state import SERVICES

API_KEY_HEADER = istr("X-API-Key")  # istr: looked up without case-folding it per request


def presented_key(request: web.Request) -> str | None:
    """The key from `Authorization: Bearer <key>` or `X-API-Key: <key>`."""
    scheme, _, credentials = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.headers.get(API_KEY_HEADER)


def key_matches(presented: str | None, expected: bytes) -> bool:
    if presented is None:
        return False
    # Constant time, so response timing does not reveal how much of a guess was right.
    return hmac.compare_digest(presented.encode("utf-8", "surrogateescape"), expected)


async def enforce_access(request: web.Request) -> None:
    """Raise 429 or 401 as an `ApiError` unless this request may proceed.

    Each route template has its own buckets, so one route's traffic never starves another's.
    """
    services = request.app[SERVICES]
    if services.limiter is not None:
        route = route_label(request)
        client = services.client_keys.key(
            request.remote, request.headers.getall(hdrs.X_FORWARDED_FOR, ())
        )
        decision = await services.limiter.hit(f"{route}:{client}")
        if not decision.allowed:
            services.metrics.rate_limited.labels(route).inc()
            retry_after = max(1, math.ceil(decision.retry_after))
            raise ApiError(
                429,
                "RATE_LIMITED",
                "too many requests; retry later",
                {"retry_after": retry_after},
                headers={hdrs.RETRY_AFTER: str(retry_after)},
            )
    if services.api_key is not None and not key_matches(presented_key(request), services.api_key):
        raise ApiError(
            401,
            "UNAUTHORIZED",
            "a valid API key is required (Authorization: Bearer <key> or X-API-Key)",
            headers={hdrs.WWW_AUTHENTICATE: 'Bearer realm="token_server"'},
        )
