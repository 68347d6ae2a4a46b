"""A recording HTTP stub of the bitHuman endpoints the project calls.

Routes: `POST /v1/runtime-tokens/mint` (answers a scoped token), `POST
/v1/runtime-tokens/request` (the cloud avatar session request the livekit bitHuman plugin
sends; point `BITHUMAN_API_URL` at it) and `GET /v1/dynamics/{agent_id}` (a gesture catalog).
Every request is recorded with its headers and JSON body. `fail(path, status, ...)` makes the
next `times` calls to a path answer an error (optionally with headers such as Retry-After), in
bitHuman's `{error, code, details}` shape unless a body is given; `answers[path] = (status,
json_body)` makes every call to a path answer that (consulted after the one-shot `fail`s and
before the built-in answers); `delays[path]` makes a path answer late.

An unscripted `dynamics_path(agent_id)` answers a ready catalog of `gestures` for any agent id;
to make an agent unknown, script it: `answers[dynamics_path("A1")] = (404, {...})`.

    async with BithumanStub() as stub:
        client = BithumanClient("secret", base_url=stub.url)
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

MINT = "/v1/runtime-tokens/mint"
SESSION_REQUEST = "/v1/runtime-tokens/request"
SCOPED_TOKEN = "scoped-runtime-token-for-tests"


def dynamics_path(agent_id: str) -> str:
    """The path of `GET /v1/dynamics/{agent_id}` for one agent."""
    return f"/v1/dynamics/{agent_id}"


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class _Failure:
    status: int
    body: Any
    headers: dict[str, str]
    times: int


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
    requests: list[Recorded] = field(default_factory=list)
    # path -> (status, json body), answered on every call to that path
    answers: dict[str, tuple[int, Any]] = field(default_factory=dict)
    # seconds to wait before answering a path: for timeout tests
    delays: dict[str, float] = field(default_factory=dict)
    _failures: dict[str, list[_Failure]] = field(default_factory=dict)
    _server: TestServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return str(self._server.make_url("")).rstrip("/")

    def calls(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == path]

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

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        self.requests.append(Recorded(request.method, request.path, dict(request.headers), body))
        if request.path in self.delays:
            await asyncio.sleep(self.delays[request.path])
        failure = self._take_failure(request.path)
        if failure is not None:
            return web.json_response(failure.body, status=failure.status, headers=failure.headers)
        if request.path in self.answers:
            status, answer = self.answers[request.path]
            return web.json_response(answer, status=status)
        if request.path == MINT:
            return web.json_response(
                {"success": True, "data": {"scoped_token": SCOPED_TOKEN, "expires_in": 3600}}
            )
        if request.path == SESSION_REQUEST:
            return web.json_response({"success": True, "status": "starting"})
        if request.path.startswith("/v1/dynamics/"):
            agent_id = request.match_info["agent_id"]
            url = f"https://cdn.example/{agent_id}" if self.gestures else None
            data = {"url": url, "status": "ready", "agent_id": agent_id}
            return web.json_response({"success": True, "data": data | {"gestures": self.gestures}})
        raise web.HTTPNotFound()

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
        await self._server.close()


@pytest_asyncio.fixture(name="bithuman_api")
async def bithuman_api_fixture() -> AsyncIterator[BithumanStub]:
    """A started stub on a free port, closed after the test."""
    async with BithumanStub() as stub:
        yield stub
