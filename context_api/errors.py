"""Errors in bitHuman's documented shape, and the middleware that guarantees it.

bitHuman's Agent Context API answers errors as `{"success": false, "error": CODE, "message":
text}`; we add `status_code` (the HTTP status, as newer bitHuman answers carry it) and, where
rooms were tried, `data` with the per-room lists. Codes and statuses:

    401 UNAUTHORIZED       no api-secret header, or a wrong one
    404 AGENT_NOT_FOUND    not an agent code (or not in CONTEXT_API_AGENT_CODES)
    404 NO_ACTIVE_ROOMS    no room has that agent live (or room_id names none)
    400 VALIDATION_ERROR   the body: not JSON, a field missing or wrong (413: too large,
                           415: not JSON by its Content-Type, 408: sent too slowly)
    502 DELIVERY_FAILED    rooms had the agent, and delivery failed in every one of them
    503 LIVEKIT_UNAVAILABLE the rooms could not be listed
    404 NOT_FOUND / 405 METHOD_NOT_ALLOWED  paths and methods outside the API

Nothing a client sends produces a 5xx: the two 5xx codes describe LiveKit and the agents, and
an unexpected exception (a bug) is logged and answered 500 INTERNAL_ERROR without details.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from common.logs import get_logger
from common.web import Handler

log = get_logger("context_api")

_AIOHTTP_CODES = {
    400: "VALIDATION_ERROR",
    401: "UNAUTHORIZED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    408: "VALIDATION_ERROR",
    413: "VALIDATION_ERROR",
    415: "VALIDATION_ERROR",
}


class ContextError(Exception):
    def __init__(self, status: int, code: str, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.data = data


def error_body(status: int, code: str, message: str, data: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "success": False,
        "error": code,
        "message": message,
        "status_code": status,
    }
    if data is not None:
        body["data"] = data
    return body


def error_json(status: int, code: str, message: str, data: Any = None, **kw: Any) -> web.Response:
    return web.json_response(error_body(status, code, message, data), status=status, **kw)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ContextError as exc:
        return error_json(exc.status, exc.code, exc.message, exc.data)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _AIOHTTP_CODES.get(exc.status, "BAD_REQUEST" if exc.status < 500 else "INTERNAL")
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        message = exc.reason
        if exc.status == 413:
            message = "Request body too large"
        return error_json(exc.status, code, message, headers=headers)
    except web.RequestPayloadError as exc:
        # a body aiohttp could not decode (bad gzip, broken chunking): the rest of it cannot
        # be parsed, so the connection closes after the answer
        cause = exc.__cause__
        reason = cause.message if isinstance(cause, HttpProcessingError) else "unreadable body"
        request.content.feed_eof()
        response = error_json(
            400, "VALIDATION_ERROR", f"The request body could not be decoded: {reason}"[:300]
        )
        response.force_close()
        return response
    except ConnectionError:
        if request.transport is None or request.transport.is_closing():
            # the client went away mid-request: nobody reads this answer
            log.debug("client disconnected", path=request.path, method=request.method)
            return error_json(400, "VALIDATION_ERROR", "The client closed the connection")
        log.exception("unhandled error", path=request.path, method=request.method)
        return error_json(500, "INTERNAL_ERROR", "Internal error")
    except Exception:
        log.exception("unhandled error", path=request.path, method=request.method)
        return error_json(500, "INTERNAL_ERROR", "Internal error")
