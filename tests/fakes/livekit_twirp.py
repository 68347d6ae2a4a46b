"""Twirp transport of the LiveKit server API stand-in: routing, codecs, auth, errors, records.

livekit-api's `TwirpClient` POSTs `/twirp/livekit.<Service>/<Method>` with a binary protobuf
body (`Content-Type: application/protobuf`) and `Authorization: Bearer <JWT>`; LiveKit's docs
show the same routes with JSON bodies. Both encodings are accepted and answered in kind.
Errors are Twirp's JSON `{code, msg, meta}` with the HTTP status Twirp assigns to the code,
which is what livekit-api turns into `ServerError(code, message, status)`.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from livekit.api.access_token import Claims

from tests.fakes.livekit_auth import AuthError, Credentials, bearer_token
from tests.fakes.livekit_changes import Changes

PROTOBUF = "application/protobuf"
JSON = "application/json"

# HTTP status per Twirp error code (Twirp wire protocol v7).
STATUS = {
    "canceled": 408,
    "unknown": 500,
    "invalid_argument": 400,
    "malformed": 400,
    "deadline_exceeded": 408,
    "not_found": 404,
    "bad_route": 404,
    "already_exists": 409,
    "permission_denied": 403,
    "unauthenticated": 401,
    "resource_exhausted": 429,
    "failed_precondition": 412,
    "aborted": 409,
    "out_of_range": 400,
    "unimplemented": 501,
    "internal": 500,
    "unavailable": 503,
    "dataloss": 500,
}


class TwirpError(Exception):
    def __init__(self, code: str, msg: str, meta: dict[str, str] | None = None) -> None:
        super().__init__(f"{code}: {msg}")
        self.code, self.msg, self.meta = code, msg, meta or {}

    @property
    def status(self) -> int:
        return STATUS[self.code]

    def response(self) -> web.Response:
        body: dict[str, object] = {"code": self.code, "msg": self.msg}
        if self.meta:
            body["meta"] = self.meta
        return web.json_response(body, status=self.status)


Request = TypeVar("Request", bound=Message)


@dataclass(frozen=True)
class TwirpMethod:
    request_type: type[Message]
    handler: Callable[[Any], Awaitable[Message]]
    authorize: Callable[[Any, Claims], bool]  # the grant LiveKit requires for this call


@dataclass(frozen=True)
class TwirpCall:
    """One request that reached a known method, and how it was answered."""

    service: str
    method: str
    request: Message = field(repr=False)
    identity: str  # the token's subject; empty for server-side API keys
    error: TwirpError | None


class TwirpRouter:
    def __init__(self, credentials: Credentials, changes: Changes) -> None:
        self._credentials = credentials
        self._changes = changes
        self._methods: dict[tuple[str, str], TwirpMethod] = {}
        self._failures: defaultdict[tuple[str, str], deque[TwirpError]] = defaultdict(deque)
        self.calls: list[TwirpCall] = []

    def add(
        self,
        service: str,
        method: str,
        request_type: type[Request],
        handler: Callable[[Request], Awaitable[Message]],
        authorize: Callable[[Request, Claims], bool],
    ) -> None:
        self._methods[(service, method)] = TwirpMethod(request_type, handler, authorize)

    def fail_next(
        self, method: str, error: TwirpError, *, service: str = "RoomService", times: int = 1
    ) -> None:
        """Answer the next `times` authorized calls of `method` with `error`."""
        self._failures[(service, method)].extend([error] * times)

    def calls_to(self, method: str, *, service: str = "RoomService") -> list[TwirpCall]:
        return [c for c in self.calls if c.service == service and c.method == method]

    def route(self) -> web.RouteDef:
        return web.route("*", "/twirp/livekit.{service}/{method}", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        service, name = request.match_info["service"], request.match_info["method"]
        method = self._methods.get((service, name))
        content_type = request.content_type
        if request.method != "POST":
            return TwirpError("bad_route", f"unsupported method {request.method}").response()
        if method is None:
            return TwirpError("bad_route", f"no handler for {service}/{name}").response()
        if content_type not in (PROTOBUF, "application/x-protobuf", JSON):
            return TwirpError("bad_route", f"unexpected Content-Type: {content_type}").response()
        try:
            message = await self._decode(request, method.request_type)
        except (DecodeError, json_format.ParseError, UnicodeDecodeError):
            return TwirpError("malformed", "the request body could not be decoded").response()
        try:
            claims = self._credentials.verify(bearer_token(request))
        except AuthError as exc:
            return TwirpError("unauthenticated", str(exc)).response()

        failures = self._failures[(service, name)]
        try:
            if not method.authorize(message, claims):
                raise TwirpError("permission_denied", "permissions denied")
            if failures:
                raise failures.popleft()
            reply = await method.handler(message)
        except TwirpError as error:
            await self._record(TwirpCall(service, name, message, claims.identity, error))
            return error.response()
        await self._record(TwirpCall(service, name, message, claims.identity, None))
        if content_type == JSON:
            return web.Response(text=json_format.MessageToJson(reply), content_type=JSON)
        return web.Response(body=reply.SerializeToString(), content_type=PROTOBUF)

    async def _record(self, call: TwirpCall) -> None:
        self.calls.append(call)
        await self._changes.notify()

    @staticmethod
    async def _decode(request: web.Request, request_type: type[Message]) -> Message:
        body = await request.read()
        if request.content_type == JSON:
            return json_format.Parse(
                body.decode() or "{}", request_type(), ignore_unknown_fields=True
            )
        return request_type.FromString(body)
