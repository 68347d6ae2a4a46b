"""HTTP routes: `POST /token` (and plain `OPTIONS /token`), and what `/healthz` reports."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiohttp import hdrs, web

from common.logs import get_logger
from common.web import ApiError, error_response
from token_server.access import enforce_access
from token_server.policy import AgentNotAllowed
from token_server.schema import parse_token_request
from token_server.state import SERVICES, Services

log = get_logger("token_server")
# Checked before building the per-token DEBUG line: at the default level it costs nothing.
_debug = logging.getLogger("token_server")

MAX_BODY_BYTES = 16 * 1024


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or content_type.endswith("+json")


async def issue_token(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    settings = services.settings
    await enforce_access(request)
    if services.minter is None:
        raise ApiError(
            503,
            "LIVEKIT_NOT_CONFIGURED",
            "the token server has no LiveKit credentials yet",
            {"missing": settings.missing_livekit_variables()},
        )
    try:
        # The head had its deadline (handler_args in app.py); a slow body gets as long again.
        async with asyncio.timeout(settings.read_timeout_seconds):
            raw = await request.read()
    except TimeoutError:
        response = error_response(408, "REQUEST_TIMEOUT", "the request body arrived too slowly")
        response.force_close()
        return response
    # An empty body needs no type (some clients label it octet-stream); anything else is JSON.
    if raw and hdrs.CONTENT_TYPE in request.headers and not _is_json(request.content_type):
        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", "send Content-Type: application/json")
    body = parse_token_request(raw)
    try:
        grant = services.policy.grant_for(body)
    except AgentNotAllowed as exc:
        raise ApiError(
            400,
            "AGENT_NOT_ALLOWED",
            "room_config names an agent this server does not dispatch",
            {"agents": [name[:128] for name in exc.names]},
        ) from None
    # Signing takes tens of microseconds of CPU: cheaper inline than a thread hop.
    started = time.perf_counter()
    minted = services.minter.mint(grant)
    services.metrics.mint_seconds.observe(time.perf_counter() - started)
    if _debug.isEnabledFor(logging.DEBUG):
        log.debug(
            "token issued",
            room=grant.room,
            identity=grant.identity,
            agents=[a.agent_name for a in grant.agents],
        )
    answer: dict[str, Any] = {
        # LiveKit's standard endpoint fields...
        "server_url": settings.livekit_url,
        "participant_token": minted.jwt,
        # ...the bitHuman Flutter guide's...
        "token": minted.jwt,
        # ...and what the client was given, since it may differ from what it asked for.
        "room_name": grant.room,
        "participant_identity": grant.identity,
        "participant_name": grant.name,
        "expires_at": minted.expires_at,
    }
    return web.json_response(answer)


async def token_options(_: web.Request) -> web.Response:
    # Browsers' preflights are answered by the CORS middleware; this is plain OPTIONS.
    return web.Response(status=204, headers={hdrs.ALLOW: "POST, OPTIONS"})


def health(services: Services) -> dict[str, object]:
    """What `GET /healthz` reports besides `"status": "ok"`."""
    return {
        "livekit_configured": services.minter is not None,
        "livekit_missing": services.settings.missing_livekit_variables(),
        "rate_limit": services.limiter.backend if services.limiter else "off",
    }


def add_routes(app: web.Application) -> None:
    app.router.add_post("/token", issue_token)
    app.router.add_route(hdrs.METH_OPTIONS, "/token", token_options)
