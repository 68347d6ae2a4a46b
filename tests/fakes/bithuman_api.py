"""A recording HTTP stub of the bitHuman endpoints the project calls, as strict as the service.

Routes: `POST /v1/runtime-tokens/mint` (mints a room-scoped token), `POST
/v1/runtime-tokens/request` (the cloud avatar session request the livekit bitHuman plugin
sends; point `BITHUMAN_API_URL` at it) and `GET /v1/dynamics/{agent_id}` (a gesture catalog).

Authentication, checked first on every route: the `api-secret` header must be the stub's account
`secret` (default `ACCOUNT_SECRET`), else 401 in bitHuman's `{error, code, details}` shape
(`MISSING_AUTH` without the header, `UNAUTHORIZED` with a wrong one). The session request also
accepts a scoped token the stub minted, but only for the room, LiveKit URL and agent it was minted
for (`agent_code` = the request's `agent_id`, both absent for image avatars): anything else is
403 `FORBIDDEN`. Malformed bodies are 400 `VALIDATION_ERROR`.

Minting answers a fresh random token per call, recorded in `minted` (`MintedToken`: `token`,
`agent_code`, `room_name`, `livekit_url`); `minted_for(room_name)` finds the latest for a room.

Scripting, consulted after authentication and before the built-in answers: `fail(path, status,
...)` makes the next `times` authenticated calls to a path answer an error (optionally with
headers such as Retry-After), in bitHuman's error shape unless a body is given; `answers[path] =
(status, json_body)` makes every authenticated call to a path answer that; `delays[path]` makes a
path answer late (before authentication). Every request, refused or not, is recorded in
`requests` with its headers and JSON body.

An unscripted `dynamics_path(agent_id)` answers a ready catalog of `gestures` for any agent id;
to make an agent unknown, script it: `answers[dynamics_path("A1")] = (404, {...})`.

With `avatar=AvatarStandIn()` (tests/fakes/bithuman_avatar.py), an accepted session request
also starts a cloud avatar participant in the LiveKit room it names; the stub closes it on exit.

Note: the livekit bitHuman plugin sends its session request as JSON with `api-secret` only when
its api_url's host is bitHuman's, or the model is not an `expression*` one; for an `expression*`
model and any other host (this stub) it sends multipart form data with `Authorization: Bearer`,
which the stub, like bitHuman's JSON endpoint, refuses with 401.

    async with BithumanStub() as stub:
        client = BithumanClient(stub.secret, base_url=stub.url)
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

if TYPE_CHECKING:
    from tests.fakes.bithuman_avatar import AvatarStandIn

MINT = "/v1/runtime-tokens/mint"
SESSION_REQUEST = "/v1/runtime-tokens/request"
ACCOUNT_SECRET = "bh-account-secret-for-tests"
SCOPED_TOKEN_PREFIX = "bh-scoped-"
MODELS = ("essence", "expression", "essence-2", "expression-2")


def dynamics_path(agent_id: str) -> str:
    """The path of `GET /v1/dynamics/{agent_id}` for one agent."""
    return f"/v1/dynamics/{agent_id}"


def error_body(status: int, code: str, message: str) -> Any:
    """bitHuman's `{error, code, details}` error shape."""
    return {"error": message, "code": code, "details": {"status": status}}


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass(frozen=True)
class MintedToken:
    token: str
    agent_code: str | None
    room_name: str
    livekit_url: str


@dataclass
class _Failure:
    status: int
    body: Any
    headers: dict[str, str]
    times: int


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.response = web.json_response(error_body(status, code, message), status=status)


@dataclass
class BithumanStub:
    gestures: dict[str, Any] = field(
        default_factory=lambda: {
            "mini_wave_hello": "https://cdn.example/wave.mp4",
            "laugh_react": "https://cdn.example/laugh.mp4",
            "talk_head_nod_subtle": "https://cdn.example/nod.mp4",
            "blow_kiss_heart": "https://cdn.example/kiss.mp4",
        }
    )
    secret: str = ACCOUNT_SECRET
    avatar: AvatarStandIn | None = None
    requests: list[Recorded] = field(default_factory=list)
    minted: list[MintedToken] = field(default_factory=list)
    # path -> (status, json body), answered on every authenticated call to that path
    answers: dict[str, tuple[int, Any]] = field(default_factory=dict)
    # seconds to wait before answering a path: for timeout tests
    delays: dict[str, float] = field(default_factory=dict)
    _failures: dict[str, list[_Failure]] = field(default_factory=dict)
    _server: TestServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return str(self._server.make_url("")).rstrip("/")

    @property
    def session_request_url(self) -> str:
        """What `BITHUMAN_API_URL` (the plugin's api_url) should be."""
        return self.url + SESSION_REQUEST

    def calls(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == path]

    def minted_for(self, room_name: str) -> MintedToken:
        """The latest token minted for a room (KeyError if none was)."""
        for minted in reversed(self.minted):
            if minted.room_name == room_name:
                return minted
        raise KeyError(f"no scoped token was minted for room {room_name!r}")

    def fail(
        self,
        path: str,
        status: int,
        *,
        body: Any = None,
        headers: dict[str, str] | None = None,
        times: int = 1,
    ) -> None:
        if body is None:
            body = {"error": f"stub error {status}", "code": f"E{status}", "details": None}
        self._failures.setdefault(path, []).append(_Failure(status, body, headers or {}, times))

    def _take_failure(self, path: str) -> _Failure | None:
        queue = self._failures.get(path) or []
        if not queue:
            return None
        failure = queue[0]
        failure.times -= 1
        if failure.times <= 0:
            queue.pop(0)
        return failure

    # -- checks ----------------------------------------------------------------------------

    def _authenticate(self, request: web.Request) -> MintedToken | None:
        """None for the account secret, the token for a scoped one; raises _Refused."""
        given = request.headers.get("api-secret")
        if not given:
            raise _Refused(401, "MISSING_AUTH", "missing api-secret header")
        if secrets.compare_digest(given.encode(), self.secret.encode()):
            return None
        if request.path == SESSION_REQUEST:
            for minted in self.minted:
                if secrets.compare_digest(given.encode(), minted.token.encode()):
                    return minted
        raise _Refused(401, "UNAUTHORIZED", "invalid api secret")

    @staticmethod
    def _fields(body: Any, required: tuple[str, ...], optional: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _Refused(400, "VALIDATION_ERROR", "the body must be a JSON object")
        for name in required:
            if not isinstance(body.get(name), str) or not body[name]:
                raise _Refused(400, "VALIDATION_ERROR", f"{name} is required")
        for name in optional:
            if name in body and not isinstance(body[name], str):
                raise _Refused(400, "VALIDATION_ERROR", f"{name} must be a string")
        return body

    # -- routes ----------------------------------------------------------------------------

    def _mint(self, body: Any) -> web.Response:
        fields = self._fields(body, ("scope", "room_name", "livekit_url"), ("agent_code",))
        if fields["scope"] != "livekit-cloud":
            raise _Refused(400, "VALIDATION_ERROR", "scope must be livekit-cloud")
        minted = MintedToken(
            token=SCOPED_TOKEN_PREFIX + secrets.token_urlsafe(24),
            agent_code=fields.get("agent_code") or None,
            room_name=fields["room_name"],
            livekit_url=fields["livekit_url"],
        )
        self.minted.append(minted)
        data = {
            "scoped_token": minted.token,
            "expires_in": 3600,
            "scope": "livekit-cloud",
            "room_name": minted.room_name,
            "agent_code": minted.agent_code,
        }
        return web.json_response({"success": True, "data": data})

    def _session_request(self, body: Any, scoped: MintedToken | None) -> web.Response:
        fields = self._fields(
            body,
            ("livekit_url", "livekit_token", "room_name", "mode"),
            ("model", "agent_id", "image"),
        )
        if fields["mode"] not in ("cpu", "gpu"):
            raise _Refused(400, "VALIDATION_ERROR", "mode must be cpu or gpu")
        if "model" in fields and fields["model"] not in MODELS:
            raise _Refused(400, "VALIDATION_ERROR", f"unknown model {fields['model']!r}")
        if "agent_id" not in fields and "image" not in fields:
            raise _Refused(400, "VALIDATION_ERROR", "agent_id or image is required")
        if scoped is not None:
            wanted = (scoped.room_name, scoped.livekit_url, scoped.agent_code)
            given = (fields["room_name"], fields["livekit_url"], fields.get("agent_id"))
            if wanted != given:
                raise _Refused(403, "FORBIDDEN", "token was minted for another agent, room or url")
        if self.avatar is not None:
            self.avatar.start_session(
                fields,
                catalog=lambda: self.gestures,
                scoped_token=scoped.token if scoped is not None else None,
            )
        return web.json_response({"success": True, "status": "starting"})

    def _dynamics(self, agent_id: str) -> web.Response:
        url = f"https://cdn.example/{agent_id}" if self.gestures else None
        data = {"url": url, "status": "ready", "agent_id": agent_id}
        return web.json_response({"success": True, "data": data | {"gestures": self.gestures}})

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        self.requests.append(Recorded(request.method, request.path, dict(request.headers), body))
        if request.path in self.delays:
            await asyncio.sleep(self.delays[request.path])
        try:
            scoped = self._authenticate(request)
            failure = self._take_failure(request.path)
            if failure is not None:
                return web.json_response(
                    failure.body, status=failure.status, headers=failure.headers
                )
            if request.path in self.answers:
                status, answer = self.answers[request.path]
                return web.json_response(answer, status=status)
            if request.path == MINT:
                return self._mint(body)
            if request.path == SESSION_REQUEST:
                return self._session_request(body, scoped)
            return self._dynamics(request.match_info["agent_id"])
        except _Refused as refused:
            return refused.response

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_post(MINT, self._handle)
        app.router.add_post(SESSION_REQUEST, self._handle)
        app.router.add_get(dynamics_path("{agent_id}"), self._handle)
        self._server = TestServer(app, port=0)
        await self._server.start_server()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        try:
            if self.avatar is not None:
                await self.avatar.aclose()
        finally:
            await self._server.close()


@pytest_asyncio.fixture(name="bithuman_api")
async def bithuman_api_fixture() -> AsyncIterator[BithumanStub]:
    """A started stub on a free port, closed after the test."""
    async with BithumanStub() as stub:
        yield stub
