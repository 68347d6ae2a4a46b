"""Stand-in for the signal endpoint a room connection hits first: records the try, refuses it.

What `rtc.Room.connect(url, token)` of livekit (rtc) 1.1.x does, observed against this server:
a websocket upgrade on `GET /rtc/v1?join_request=<base64url WrappedJoinRequest>` with
`Authorization: Bearer <token>`; after a 404 it falls back to `GET /rtc?sdk=python&protocol=..`;
after any refused upgrade it calls `GET <that path>/validate` (same query and header) and reports
the body of that answer. A 401 or 403 from validate ends the connect without retrying.

There is no media server behind this, so every connection is refused after being recorded:
401 with the reason when the token would not let anyone in (bad signature, no `roomJoin` grant,
no room, no identity), 403 with `REFUSAL` when it would. The caller sees a `ConnectError`
within milliseconds; the test sees a `RoomConnectAttempt` with the room and identity.
"""

from __future__ import annotations

import base64
import binascii
import gzip
from dataclasses import dataclass, field

from aiohttp import web
from google.protobuf.message import DecodeError
from livekit.api.access_token import Claims
from livekit.protocol import rtc

from tests.fakes.livekit_auth import AuthError, Credentials, bearer_token
from tests.fakes.livekit_changes import Changes

REFUSAL = "room connection refused: the LiveKit stand-in has no media server"
PATHS = ("/rtc/v1", "/rtc")


@dataclass(frozen=True)
class RoomConnectAttempt:
    path: str
    validation: bool  # the HTTP check the client makes after a refused upgrade
    room: str
    identity: str
    error: str | None  # why the token would be refused; None when it is valid
    claims: Claims | None = field(repr=False)
    query: dict[str, str] = field(repr=False)
    join_request: rtc.JoinRequest | None = field(repr=False)

    @property
    def authorized(self) -> bool:
        return self.error is None


def decode_join_request(encoded: str) -> rtc.JoinRequest:
    """The `join_request` query value of the v1 path: base64url, maybe gzip-compressed."""
    padded = encoded + "=" * (-len(encoded) % 4)
    raw = base64.b64decode(padded, altchars=b"-_", validate=True)
    wrapped = rtc.WrappedJoinRequest.FromString(raw)
    payload = wrapped.join_request
    if wrapped.compression == rtc.WrappedJoinRequest.GZIP:
        payload = gzip.decompress(payload)
    return rtc.JoinRequest.FromString(payload)


class SignalEndpoint:
    def __init__(self, credentials: Credentials, changes: Changes) -> None:
        self._credentials = credentials
        self._changes = changes
        self.attempts: list[RoomConnectAttempt] = []

    def routes(self) -> list[web.RouteDef]:
        paths = [*PATHS, *(f"{path}/validate" for path in PATHS)]
        return [web.get(path, self.handle) for path in paths]

    async def handle(self, request: web.Request) -> web.Response:
        try:
            join_request = (
                decode_join_request(request.query["join_request"])
                if "join_request" in request.query
                else None
            )
        except (binascii.Error, ValueError, OSError, DecodeError):
            return web.Response(status=400, text="malformed join_request")
        claims, error = self._check(bearer_token(request, allow_query=True))
        video = claims.video if claims else None
        attempt = RoomConnectAttempt(
            path=request.path,
            validation=request.path.endswith("/validate"),
            room=video.room if video else "",
            identity=claims.identity if claims else "",
            error=error,
            claims=claims,
            query=dict(request.query),
            join_request=join_request,
        )
        self.attempts.append(attempt)
        await self._changes.notify()
        if error is not None:
            return web.Response(status=401, text=error)
        return web.Response(status=403, text=REFUSAL)

    def _check(self, token: str | None) -> tuple[Claims | None, str | None]:
        try:
            claims = self._credentials.verify(token)
        except AuthError as exc:
            return None, str(exc)
        video = claims.video
        if not (video and video.room_join and video.room):
            return claims, "access token lacks the roomJoin grant for a room"
        if not claims.identity:
            return claims, "access token has no identity"
        return claims, None

    async def wait_for_attempt(
        self, room: str, *, identity: str | None = None
    ) -> RoomConnectAttempt:
        """The first connection try (not a validation call) into `room`."""
        return await self._changes.wait_for(
            lambda: next(
                (
                    a
                    for a in self.attempts
                    if not a.validation
                    and a.room == room
                    and (identity is None or a.identity == identity)
                ),
                None,
            )
        )
