"""A local stand-in for a LiveKit server, for offline tests of the worker and the API clients.

One aiohttp server on 127.0.0.1, port 0, speaking what our code and livekit's clients use:

- `/agent`: the agent-dispatch websocket a livekit-agents worker registers on
  (`livekit_dispatch`): registration, job offers, assignments with real room tokens,
  status reports, termination.
- `/rtc/v1`, `/rtc` and their `/validate` checks: where a job's `ctx.connect()` lands
  (`livekit_signal`): the attempt is recorded with the token's room and identity, then refused.
- `/twirp/livekit.RoomService/*` (`livekit_room_service`) and
  `/twirp/livekit.AgentDispatchService/CreateDispatch`, over `livekit_twirp`.

Every request is authenticated with the instance's random API key and secret exactly as the
real server does (livekit-api's `TokenVerifier`). Not implemented: media (no WebRTC, nobody
ever joins a room), room and participant events, webhooks, egress, ingress, SIP, the other
Twirp methods (`bad_route`), job re-dispatch after a worker leaves, load-based balancing
beyond "least loaded available worker first", and simulate/migrate job requests (recorded
only). See docs/testing-livekit-fakes.md.

Use the `livekit_server` fixture, or `async with FakeLiveKitServer() as server:`; a worker in
another process finds it through `server.env()` (LIVEKIT_URL, LIVEKIT_API_KEY,
LIVEKIT_API_SECRET).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import pytest_asyncio
from aiohttp import web
from livekit import api
from livekit.protocol import agent, agent_dispatch

from tests.fakes.livekit_auth import Credentials, has_room_admin
from tests.fakes.livekit_changes import Changes
from tests.fakes.livekit_dispatch import AgentDispatcher, DispatchedJob, WorkerConnection
from tests.fakes.livekit_room_service import RoomServiceStub
from tests.fakes.livekit_rooms import Clock, Rooms
from tests.fakes.livekit_signal import RoomConnectAttempt, SignalEndpoint
from tests.fakes.livekit_twirp import TwirpRouter
from tests.fakes.subprocesses import terminate, unless_exited

JOB_ENDED = (agent.JobStatus.JS_SUCCESS, agent.JobStatus.JS_FAILED)


class FakeLiveKitServer:
    def __init__(
        self,
        *,
        credentials: Credentials | None = None,
        host: str = "127.0.0.1",
        clock: Clock = time.time,
    ) -> None:
        self.credentials = credentials or Credentials.random()
        self._host = host
        changes = Changes()
        self.rooms = Rooms(clock)
        self.dispatcher = AgentDispatcher(self.credentials, self.rooms, changes, clock=clock)
        self.signal = SignalEndpoint(self.credentials, changes)
        self.twirp = TwirpRouter(self.credentials, changes)
        self.room_service = RoomServiceStub(self.rooms, self.twirp)
        self.twirp.add(
            "AgentDispatchService",
            "CreateDispatch",
            agent_dispatch.CreateAgentDispatchRequest,
            self._create_dispatch,
            lambda request, claims: has_room_admin(claims, request.room),
        )
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """What LIVEKIT_URL holds: the websocket base URL."""
        return f"ws://{self._host}:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def env(self) -> dict[str, str]:
        """The variables a worker or API client needs to reach this server."""
        return {
            "LIVEKIT_URL": self.url,
            "LIVEKIT_API_KEY": self.credentials.api_key,
            "LIVEKIT_API_SECRET": self.credentials.api_secret,
        }

    def token(self, grants: api.VideoGrants, *, identity: str = "") -> str:
        """A JWT this server accepts, e.g. for a test client joining a room."""
        return (
            api.AccessToken(self.credentials.api_key, self.credentials.api_secret)
            .with_identity(identity)
            .with_grants(grants)
            .to_jwt()
        )

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/agent", self.dispatcher.handle)
        app.router.add_routes(self.signal.routes())
        app.router.add_routes([self.twirp.route()])
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.dispatcher.url = self.url

    async def aclose(self) -> None:
        await self.dispatcher.aclose()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeLiveKitServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _create_dispatch(
        self, request: agent_dispatch.CreateAgentDispatchRequest
    ) -> agent_dispatch.AgentDispatch:
        return self.dispatcher.create_dispatch(
            request.room, agent_name=request.agent_name, metadata=request.metadata
        )


@pytest_asyncio.fixture
async def livekit_server() -> AsyncIterator[FakeLiveKitServer]:
    """A started stand-in on a free port, closed after the test."""
    async with FakeLiveKitServer() as server:
        yield server


@dataclass
class OneJob:
    """What a worker process did with one dispatched job, and how it exited afterwards."""

    worker: WorkerConnection
    job: DispatchedJob
    attempt: RoomConnectAttempt
    exit_status: int


async def run_one_job(
    server: FakeLiveKitServer,
    process: asyncio.subprocess.Process,
    log_path: Path,
    room: str,
    *,
    agent_name: str = "",
    metadata: str = "",
) -> OneJob:
    """Wait for the worker `process` to register, dispatch it one job for `room`, wait for the
    job's room connection attempt and its end, then SIGTERM the worker. On any failure (bound
    the call with `asyncio.timeout`) the worker is stopped and the tail of its log is attached
    to the error."""
    try:
        worker = await unless_exited(process, server.dispatcher.wait_for_worker(agent_name))
        job = await unless_exited(
            process, server.dispatcher.dispatch(room, agent_name=agent_name, metadata=metadata)
        )
        attempt = await unless_exited(
            process, server.signal.wait_for_attempt(room, identity=job.identity)
        )
        await unless_exited(process, server.dispatcher.wait_for_job_status(job.job.id, *JOB_ENDED))
        exit_status = await terminate(process)
    except BaseException as exc:
        await terminate(process)
        log = await asyncio.to_thread(log_path.read_text, errors="replace")
        exc.add_note("worker log:\n" + log[-6000:])
        raise
    return OneJob(worker, job, attempt, exit_status)
