"""CORS with an origin allow-list.

Allow-list entries are exact origins (`https://app.example.com`), an origin with any port
(`http://localhost:*`), or `*`. A request carrying an Origin that is not listed is refused with
403 before any handler runs: browsers would hide the answer anyway, and refusing keeps a
foreign page from spending our rate limit or minting tokens through simple (unpreflighted)
requests. Requests without an Origin (curl, native apps, servers) are not affected, nor are
same-origin ones (the web client this server serves at `/`): their Origin names the host they
were sent to, which a page of another origin cannot make its browser do.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import hdrs, web
from aiohttp.typedefs import Middleware

from common.web import Handler, error_response

ALLOWED_METHODS = "GET, POST, OPTIONS"
ALLOWED_HEADERS = "Authorization, Content-Type, X-API-Key"
# Browsers only let page scripts read a short list of response headers unless told otherwise.
EXPOSED_HEADERS = "Retry-After"
PREFLIGHT_MAX_AGE = "600"


class OriginPolicy:
    def __init__(self, origins: Iterable[str]) -> None:
        self._any = False
        self._exact: set[str] = set()
        self._any_port: set[str] = set()
        for entry in origins:
            entry = entry.strip().rstrip("/").lower()
            if entry == "*":
                self._any = True
            elif entry.endswith(":*"):
                self._any_port.add(entry[:-2])
            elif entry:
                self._exact.add(entry)

    def allows(self, origin: str) -> bool:
        origin = origin.lower()
        if self._any or origin in self._exact:
            return True
        # "scheme://host:port" -> "scheme://host"; an IPv6 host keeps its brackets.
        head, sep, port = origin.rpartition(":")
        without_port = head if sep and port.isdigit() and "://" in head else origin
        return without_port in self._any_port


def _is_preflight(request: web.Request) -> bool:
    return (
        request.method == hdrs.METH_OPTIONS
        and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers
    )


def cors_middleware(policy: OriginPolicy) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is None:
            return await handler(request)
        if not policy.allows(origin):
            return error_response(
                403,
                "ORIGIN_NOT_ALLOWED",
                "this origin may not call the token server",
                {"origin": origin[:200]},
                headers={hdrs.VARY: hdrs.ORIGIN},
            )
        if _is_preflight(request):
            response: web.StreamResponse = web.Response(status=204)
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_METHODS] = ALLOWED_METHODS
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = ALLOWED_HEADERS
            response.headers[hdrs.ACCESS_CONTROL_MAX_AGE] = PREFLIGHT_MAX_AGE
        else:
            response = await handler(request)
            response.headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = EXPOSED_HEADERS
        response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
        response.headers[hdrs.VARY] = hdrs.ORIGIN
        return response

    return middleware
