"""Shared aiohttp pieces: JSON errors in the shape bitHuman's API uses (`{error, code, details}`)
and the `GET /healthz` + `GET /metrics` routes every service serves.

`error_middleware` guarantees that nothing a client sends produces an HTML page, a traceback or
a 500: aiohttp's own HTTP errors (404, 405, 413, ...) become JSON with a stable code, and an
unexpected exception is logged and answered with a generic 500 JSON body (a bug on our side,
never a reflection of the request).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from common.logs import get_logger

log = get_logger("common.web")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Stable codes for aiohttp's own HTTP errors, so clients can branch on `code`.
_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED",
}


class ApiError(Exception):
    """Raise from a handler to answer `{error, code, details}` with `status`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}


def error_response(
    status: int, code: str, message: str, details: Any = None, **kw: Any
) -> web.Response:
    return web.json_response(
        {"error": message, "code": code, "details": details}, status=status, **kw
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.details, headers=exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _CODES.get(exc.status, HTTPStatus(exc.status).name)
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        return error_response(exc.status, code, exc.reason, headers=headers)
    except Exception:
        log.exception("unhandled error", path=request.path, method=request.method)
        return error_response(500, "INTERNAL_ERROR", "internal error")


def add_status_routes(
    app: web.Application,
    registry: CollectorRegistry,
    health: Callable[[], Mapping[str, object]] = dict,
) -> None:
    """`GET /healthz` answers `{"status": "ok", **health()}`; `GET /metrics` is `registry` in
    Prometheus' text format."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", **health()})

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app.router.add_get("/healthz", healthz, allow_head=True)
    app.router.add_get("/metrics", metrics)
