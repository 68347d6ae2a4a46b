"""A recording HTTP stub of the bitHuman endpoints the project calls, as strict as the service.

Routes: `POST /v1/runtime-tokens/mint` (mints a room-scoped token), `POST
/v1/runtime-tokens/request` (the cloud avatar session request the livekit bitHuman plugin
sends; point `BITHUMAN_API_URL` at it), `GET /v1/dynamics/{agent_id}` (a gesture catalog), and
agent generation, dynamics generation and the hosted Agent Context API (below).

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

With `avatar=AvatarStandIn()` (devkit/bithuman_avatar.py), an accepted session request
also starts a cloud avatar participant in the LiveKit room it names; the stub closes it on exit.

Note: the livekit bitHuman plugin sends its session request as JSON with `api-secret` only when
its api_url's host is bitHuman's, or the model is not an `expression*` one; for an `expression*`
model and any other host (this stub) it sends multipart form data with `Authorization: Bearer`,
which the stub, like bitHuman's JSON endpoint, refuses with 401.

Agent generation, dynamics generation and the hosted Agent Context API (what
`python -m bithuman_client` drives), as bitHuman documents them:

- `POST /v1/agent/generate {prompt?, image?, video?, audio?}` starts a job (`generated`,
  `AgentJob`) and answers `{success, message, agent_id, status: "processing"}`. Media must be an
  http(s) URL or strict base64 (else 400 `VALIDATION_ERROR`); decoded media over
  `file_limits` (bitHuman's 10 / 100 / 50 MB by default) is 413 `FILE_TOO_LARGE`. With `credits`
  set, each generation costs 250 and too few is 402 `INSUFFICIENT_BALANCE`.
- `GET /v1/agent/status/{agent_id}`: the job's `data`, its status advancing one step of
  `job_statuses` per poll and then staying at the last (default processing, generating,
  completed, ready; a `failed` job carries `error_message`). `known_agents` are ready agents that
  exist without a job. Anything else is 404 `AGENT_NOT_FOUND`.
- `POST /v1/dynamics/generate {agent_id, image_url?, duration?, model?}`: for a known agent
  (404 otherwise, 409 `AGENT_PROCESSING` while its generation runs) answers `{success, message,
  agent_id, status: "processing"}`; the agent's `GET /v1/dynamics/...` then answers `generating`
  without gestures for `dynamics_polls` polls, then the ready catalog.
- `POST /v1/agent/{code}/speak {message, room_id?}` and `/add-context {context, type?,
  room_id?}` deliver to `live_rooms[code]` (recorded in `context_commands`) in the Agent Context
  API's flat shapes: `{success, message, data: {agent_code, delivered_to_rooms, timestamp}}`;
  errors `{success: false, error: CODE, message}`: 401 `UNAUTHORIZED`, 404 `AGENT_NOT_FOUND`
  (not a known, generated or live agent), 404 `NO_ACTIVE_ROOMS`, 400 `VALIDATION_ERROR`.

    async with BithumanStub() as stub:
        client = BithumanClient(stub.secret, base_url=stub.url)
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import secrets
import string
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

if TYPE_CHECKING:
    from devkit.bithuman_avatar import AvatarStandIn

MINT = "/v1/runtime-tokens/mint"
SESSION_REQUEST = "/v1/runtime-tokens/request"
ACCOUNT_SECRET = "bh-account-secret-for-tests"
SCOPED_TOKEN_PREFIX = "bh-scoped-"
MODELS = ("essence", "expression", "essence-2", "expression-2")
GENERATE = "/v1/agent/generate"
DYNAMICS_GENERATE = "/v1/dynamics/generate"
GENERATION_COST = 250
MB = 1_000_000
FILE_LIMITS = {"image": 10 * MB, "video": 100 * MB, "audio": 50 * MB}
JOB_STATUSES = ("processing", "generating", "completed", "ready")
DYNAMICS_MODELS = ("quality", "speed", "auto")


def status_path(agent_id: str) -> str:
    """The path of `GET /v1/agent/status/{agent_id}`."""
    return f"/v1/agent/status/{agent_id}"


def speak_path(agent_code: str) -> str:
    return f"/v1/agent/{agent_code}/speak"


def add_context_path(agent_code: str) -> str:
    return f"/v1/agent/{agent_code}/add-context"


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


def context_error_body(code: str, message: str) -> Any:
    """The Agent Context API's flat error shape."""
    return {"success": False, "error": code, "message": message}


def _pick(alphabet: str, count: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(count))


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class AgentJob:
    """An agent generation the stub accepted: the request's fields and where its status is."""

    agent_id: str
    request: dict[str, Any]
    statuses: tuple[str, ...]
    polls: int = 0
    created_at: str = field(default_factory=_now)

    @property
    def status(self) -> str:
        return self.statuses[min(self.polls, len(self.statuses) - 1)]


@dataclass(frozen=True)
class ContextCommand:
    agent_code: str
    type: str
    text: str
    rooms: tuple[str, ...]


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str, *, flat: bool = False) -> None:
        super().__init__(message)
        body = context_error_body(code, message) if flat else error_body(status, code, message)
        self.response = web.json_response(body, status=status)


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
    # agent generation, dynamics generation and the hosted context API (see the module doc)
    generated: dict[str, AgentJob] = field(default_factory=dict)
    job_statuses: tuple[str, ...] = JOB_STATUSES
    known_agents: set[str] = field(default_factory=set)
    file_limits: dict[str, int] = field(default_factory=lambda: dict(FILE_LIMITS))
    credits: int | None = None
    dynamics_polls: int = 2
    dynamics_jobs: dict[str, int] = field(default_factory=dict)  # agent id -> polls left
    live_rooms: dict[str, list[str]] = field(default_factory=dict)
    context_commands: list[ContextCommand] = field(default_factory=list)
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

    def _authenticate(self, request: web.Request, *, flat: bool) -> MintedToken | None:
        """None for the account secret, the token for a scoped one; raises _Refused (in the
        context API's flat shape when `flat`)."""
        given = request.headers.get("api-secret")
        if not given:
            if flat:
                raise _Refused(401, "UNAUTHORIZED", "Missing api-secret", flat=True)
            raise _Refused(401, "MISSING_AUTH", "missing api-secret header")
        if secrets.compare_digest(given.encode(), self.secret.encode()):
            return None
        if request.path == SESSION_REQUEST:
            for minted in self.minted:
                if secrets.compare_digest(given.encode(), minted.token.encode()):
                    return minted
        if flat:
            raise _Refused(401, "UNAUTHORIZED", "Invalid api-secret", flat=True)
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
        left = self.dynamics_jobs.get(agent_id, 0)
        if left > 0:
            self.dynamics_jobs[agent_id] = left - 1
            data: dict[str, Any] = {"url": None, "status": "generating", "agent_id": agent_id}
            return web.json_response({"success": True, "data": data | {"gestures": {}}})
        url = f"https://cdn.example/{agent_id}" if self.gestures else None
        data = {"url": url, "status": "ready", "agent_id": agent_id}
        return web.json_response({"success": True, "data": data | {"gestures": self.gestures}})

    def _spend(self) -> None:
        if self.credits is not None:
            if self.credits < GENERATION_COST:
                raise _Refused(402, "INSUFFICIENT_BALANCE", "insufficient credits")
            self.credits -= GENERATION_COST

    def _media(self, name: str, value: Any) -> None:
        """An http(s) URL, or strict base64 within the size limit of its kind."""
        if not isinstance(value, str) or not value:
            raise _Refused(400, "VALIDATION_ERROR", f"{name} must be a URL or base64 data")
        url = URL(value) if value.isascii() and value.isprintable() else None
        if url is not None and url.scheme in ("http", "https") and url.host:
            return
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise _Refused(
                400, "VALIDATION_ERROR", f"{name} must be an http(s) URL or base64 data"
            ) from None
        if not data:
            raise _Refused(400, "VALIDATION_ERROR", f"{name} is empty")
        if len(data) > self.file_limits[name]:
            limit = self.file_limits[name]
            raise _Refused(413, "FILE_TOO_LARGE", f"{name} exceeds the {limit} byte limit")

    def _generate(self, body: Any) -> web.Response:
        fields = self._fields(body, (), ("prompt", "image", "video", "audio"))
        for name in ("image", "video", "audio"):
            if name in fields:
                self._media(name, fields[name])
        self._spend()
        agent_id = self._new_agent_id()
        self.generated[agent_id] = AgentJob(agent_id, dict(fields), self.job_statuses)
        return web.json_response(
            {
                "success": True,
                "message": "Agent generation started",
                "agent_id": agent_id,
                "status": "processing",
            }
        )

    def _new_agent_id(self) -> str:
        """Shaped like bitHuman's (A91XMB7113), never one already handed out."""
        while True:
            digits, letters = string.digits, string.ascii_uppercase
            agent_id = "A" + _pick(digits, 2) + _pick(letters, 3) + _pick(digits, 4)
            if agent_id not in self.generated and agent_id not in self.known_agents:
                return agent_id

    def _status(self, agent_id: str) -> web.Response:
        job = self.generated.get(agent_id)
        if job is None and agent_id not in self.known_agents:
            raise _Refused(404, "AGENT_NOT_FOUND", f"agent {agent_id} not found")
        status = job.status if job is not None else "ready"
        request = job.request if job is not None else {}
        ready = status == "ready"
        data = {
            "agent_id": agent_id,
            "event_type": "lip_created" if ready else "agent_generation",
            "status": status,
            "error_message": "stub: generation failed" if status == "failed" else None,
            "created_at": job.created_at if job is not None else _now(),
            "updated_at": _now(),
            "system_prompt": request.get("prompt"),
            "image_url": f"https://cdn.example/{agent_id}.jpg" if ready else None,
            "video_url": f"https://cdn.example/{agent_id}.mp4" if ready else None,
            "name": f"agent {agent_id}",
            "model_url": f"https://cdn.example/{agent_id}.imx" if ready else None,
        }
        if job is not None:
            job.polls += 1
        return web.json_response({"success": True, "data": data})

    def _generate_dynamics(self, body: Any) -> web.Response:
        fields = self._fields(body, ("agent_id",), ("image_url", "model"))
        agent_id = fields["agent_id"]
        if "image_url" in fields and URL(fields["image_url"]).scheme not in ("http", "https"):
            raise _Refused(400, "VALIDATION_ERROR", "image_url must be an http(s) URL")
        duration = fields.get("duration")
        if duration is not None and (
            isinstance(duration, bool)
            or not isinstance(duration, int | float)
            or not 0 < duration <= 60
        ):
            raise _Refused(400, "VALIDATION_ERROR", "duration must be a number of seconds")
        if "model" in fields and fields["model"] not in DYNAMICS_MODELS:
            raise _Refused(400, "VALIDATION_ERROR", "model must be quality, speed or auto")
        job = self.generated.get(agent_id)
        if job is None and agent_id not in self.known_agents:
            raise _Refused(404, "AGENT_NOT_FOUND", f"agent {agent_id} not found")
        if job is not None and job.status != "ready":
            raise _Refused(409, "AGENT_PROCESSING", "agent is still generating")
        self._spend()
        self.dynamics_jobs[agent_id] = self.dynamics_polls
        return web.json_response(
            {
                "success": True,
                "message": "Dynamics generation started",
                "agent_id": agent_id,
                "status": "processing",
            }
        )

    def _context(self, code: str, kind: str, body: Any) -> web.Response:
        def invalid(message: str) -> _Refused:
            return _Refused(400, "VALIDATION_ERROR", message, flat=True)

        if not isinstance(body, dict):
            raise invalid("the body must be a JSON object")
        name = "message" if kind == "speak" else "context"
        text = body.get(name)
        if not isinstance(text, str) or not text.strip():
            raise invalid(f"{name} is required")
        room_id = body.get("room_id")
        if room_id is not None and not isinstance(room_id, str):
            raise invalid("room_id must be a string")
        context_type = "speak" if kind == "speak" else body.get("type", "add_context")
        if context_type not in ("speak", "add_context"):
            raise invalid("Invalid type. Must be one of: speak, add_context")
        known = code in self.known_agents or code in self.generated or code in self.live_rooms
        if not known:
            raise _Refused(404, "AGENT_NOT_FOUND", f"Agent with code '{code}' not found", flat=True)
        live = self.live_rooms.get(code, [])
        rooms = tuple(room for room in live if room_id is None or room == room_id)
        if not rooms:
            raise _Refused(404, "NO_ACTIVE_ROOMS", "No active sessions found for agent", flat=True)
        self.context_commands.append(ContextCommand(code, context_type, text, rooms))
        data: dict[str, Any] = {"agent_code": code, "delivered_to_rooms": len(rooms)}
        if kind == "add-context":
            data["context_type"] = context_type
        data["timestamp"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        said = kind == "speak"
        message = "Speech triggered successfully" if said else "Context added successfully"
        return web.json_response({"success": True, "message": message, "data": data})

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        self.requests.append(Recorded(request.method, request.path, dict(request.headers), body))
        if request.path in self.delays:
            await asyncio.sleep(self.delays[request.path])
        route = request.match_info.route.name
        try:
            scoped = self._authenticate(request, flat=route in ("speak", "add-context"))
            failure = self._take_failure(request.path)
            if failure is not None:
                return web.json_response(
                    failure.body, status=failure.status, headers=failure.headers
                )
            if request.path in self.answers:
                status, answer = self.answers[request.path]
                return web.json_response(answer, status=status)
            match route:
                case "mint":
                    return self._mint(body)
                case "session":
                    return self._session_request(body, scoped)
                case "generate":
                    return self._generate(body)
                case "status":
                    return self._status(request.match_info["agent_id"])
                case "dynamics-generate":
                    return self._generate_dynamics(body)
                case "speak" | "add-context":
                    return self._context(request.match_info["code"], route, body)
                case _:
                    return self._dynamics(request.match_info["agent_id"])
        except _Refused as refused:
            return refused.response

    async def __aenter__(self) -> Self:
        # room for bitHuman's largest media as base64 (the limits are checked per field)
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_post(MINT, self._handle, name="mint")
        app.router.add_post(SESSION_REQUEST, self._handle, name="session")
        app.router.add_post(GENERATE, self._handle, name="generate")
        app.router.add_get(status_path("{agent_id}"), self._handle, name="status")
        app.router.add_post(DYNAMICS_GENERATE, self._handle, name="dynamics-generate")
        app.router.add_get(dynamics_path("{agent_id}"), self._handle, name="dynamics")
        app.router.add_post(speak_path("{code}"), self._handle, name="speak")
        app.router.add_post(add_context_path("{code}"), self._handle, name="add-context")
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
