"""Shared aiohttp pieces: JSON errors in the shape bitHuman's API uses (`{error, code, details}`)
and the `GET /healthz` + `GET /metrics` routes every service serves.

`error_middleware` guarantees that nothing a client sends produces an HTML page, a traceback or
a 500: aiohttp's own HTTP errors (404, 405, 413, ...) become JSON with a stable code, a body
that cannot be read (a `Content-Encoding: gzip` body that is not gzip, a broken chunked
encoding) is a 400 `INVALID_BODY_ENCODING`, and an unexpected exception is logged and answered
with a generic 500 JSON body (a bug on our side, never a reflection of the request).

Requests too malformed to reach a handler (a bad request line or header, an encoding aiohttp
cannot decode such as `br`) are answered 400 by aiohttp itself, which logs each with a
traceback; pass `HANDLER_ARGS` as the application's `handler_args` to log those at DEBUG in one
line instead (`web.Application(handler_args=HANDLER_ARGS, ...)`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Any

from aiohttp import hdrs, web, web_urldispatcher
from aiohttp.http import HttpVersion11
from aiohttp.http_exceptions import HttpProcessingError
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
    except web.RequestPayloadError as exc:
        return _unreadable_body(request, exc)
    except ConnectionError:
        if request.transport is None or request.transport.is_closing():
            # The client went away mid-request (its body never came): nobody reads this.
            log.debug("client disconnected", path=request.path, method=request.method)
            return error_response(400, "CLIENT_DISCONNECTED", "the client closed the connection")
        log.exception("unhandled error", path=request.path, method=request.method)
        return error_response(500, "INTERNAL_ERROR", "internal error")
    except Exception:
        log.exception("unhandled error", path=request.path, method=request.method)
        return error_response(500, "INTERNAL_ERROR", "internal error")


def _unreadable_body(request: web.Request, exc: web.RequestPayloadError) -> web.Response:
    """400 for a body aiohttp could not decode (bad gzip/deflate data, broken chunking)."""
    cause = exc.__cause__
    reason = cause.message if isinstance(cause, HttpProcessingError) else "unreadable body"
    # The payload stays in its failed state: mark it finished, or aiohttp would try to drain
    # it after our answer and log the same error again as an unhandled exception. The rest of
    # the body cannot be parsed, so the connection closes after the answer.
    request.content.feed_eof()
    response = error_response(
        400,
        "INVALID_BODY_ENCODING",
        "the request body could not be decoded",
        {"reason": reason[:200], "content_encoding": request.headers.get("Content-Encoding")},
    )
    response.force_close()
    return response


async def expect_handler(request: web.Request) -> web.StreamResponse | None:
    """aiohttp's handling of the `Expect` header, without its crash on a value that is not
    UTF-8: "100-continue" is honoured, anything else is a JSON 417."""
    if request.version != HttpVersion11:
        return None
    if request.headers.get(hdrs.EXPECT, "").lower() == "100-continue":
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the answer proper has not started
        return None
    return error_response(417, "EXPECTATION_FAILED", "only Expect: 100-continue is supported")


# aiohttp's default handler puts the raw header value into its 417 text, and a value that is
# not UTF-8 then fails to encode: a 500 with a traceback, for every route and for unmatched
# paths alike, before any middleware runs (aiohttp 3.14). Routes look the default up when
# they are created and unmatched paths on every request, so replacing it covers both, for
# every application built after this module is imported.
web_urldispatcher._default_expect_handler = expect_handler  # type: ignore[assignment]


class _ClientErrorLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's server logger, with errors the client caused logged at DEBUG in one line.

    aiohttp logs every malformed request (bad request line, header, encoding) with a
    traceback at ERROR level; those are the client's mistakes, not ours, and anyone can send
    them. Anything else (a bug) keeps its traceback.
    """

    def exception(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.error(msg, *args, **kwargs)

    def error(self, msg: object, *args: object, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info")
        if isinstance(exc, web.RequestPayloadError) or (
            isinstance(exc, HttpProcessingError) and exc.code < 500
        ):
            kwargs["exc_info"] = None
            reason = " ".join(str(exc).split())[:200]
            self.logger.debug(f"{msg}: %s", *args, reason, **kwargs)
            return
        kwargs.setdefault("exc_info", True)
        self.logger.error(msg, *args, **kwargs)


HANDLER_ARGS: Mapping[str, Any] = {
    "logger": _ClientErrorLogger(logging.getLogger("aiohttp.server"), {})
}


async def no_store(_: web.Request, response: web.StreamResponse) -> None:
    """An `on_response_prepare` hook: answers of an API carry credentials or live state, so
    no browser or proxy cache keeps them, unless a response says how it may be cached (the
    web client's files)."""
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers["X-Content-Type-Options"] = "nosniff"


LINGERING_SECONDS = 2.0  # how long the unread rest of a refused body is drained


def handler_args(read_timeout: float) -> dict[str, Any]:
    """Per-connection options for a service that reads requests within `read_timeout` s.

    aiohttp closes a connection that has not delivered a complete request head within its
    keep-alive timeout, counted from the connection's start or from the previous answer, and
    header lines trickled in do not extend it: that timeout is the header-read deadline. The
    body gets as long again (in the handler), and the unread rest of a refused body is drained
    for at most LINGERING_SECONDS, so a client sending slowly is gone after twice the timeout at
    most. Malformed requests are logged at DEBUG in one line (HANDLER_ARGS). No access log:
    requests are counted in /metrics.
    """
    return {
        **HANDLER_ARGS,
        "keepalive_timeout": read_timeout,
        "lingering_time": min(read_timeout, LINGERING_SECONDS),
        "access_log": None,
    }


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
