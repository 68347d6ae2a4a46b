"""Stand-in for LiveKit's agent-dispatch websocket (`/agent`), in livekit-protocol messages.

What a livekit-agents worker does against a real server, and what this side answers:

1. `GET /agent` websocket upgrade with `Authorization: Bearer <JWT>`: the JWT is issued by the
   API key, signed with the secret and carries the `agent` video grant. Anything else is
   refused with HTTP 401 before the upgrade (recorded in `refused`).
2. Binary `WorkerMessage.register` (agent name, job type, permissions, SDK version) ->
   `ServerMessage.register` with a worker id and server info.
3. For each `dispatch()`: `ServerMessage.availability` (the job) to a registered, available
   worker whose agent name equals the job's (empty name = automatic dispatch), then on an
   `available` answer `ServerMessage.assignment` carrying this server's URL and a room token
   minted for the identity, name, metadata and attributes the worker answered with. A refusal
   moves on to the next matching worker.
4. The worker then reports `update_job` (running, success, failed), `update_worker` (load,
   available or full) and may `ping` (answered with `pong`); everything is recorded per worker.
5. `terminate()` sends `ServerMessage.termination`; `disconnect()` drops a worker's socket.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web
from google.protobuf.message import DecodeError
from livekit.api.access_token import Claims
from livekit.protocol import agent, agent_dispatch, models

from common.logs import get_logger
from tests.fakes.livekit_auth import AuthError, Credentials, bearer_token, mint_agent_token
from tests.fakes.livekit_changes import Changes
from tests.fakes.livekit_rooms import Clock, Rooms, new_sid

log = get_logger("tests.fakes.livekit_dispatch")

REGISTER_TIMEOUT = 10.0
JOB_TOKEN_TTL = datetime.timedelta(hours=1)
SERVER_INFO = models.ServerInfo(
    edition=models.ServerInfo.Edition.Standard,
    version="0.0.0-standin",
    protocol=16,
    region="local",
    node_id="ND_standin",
)


@dataclass
class WorkerConnection:
    """One registered worker and everything it sent after registering."""

    id: str
    register: agent.RegisterWorkerRequest
    claims: Claims
    ws: web.WebSocketResponse = field(repr=False)
    status: agent.WorkerStatus = agent.WorkerStatus.WS_AVAILABLE
    load: float = 0.0
    job_count: int = 0
    connected: bool = True
    messages: list[agent.WorkerMessage] = field(default_factory=list, repr=False)

    @property
    def agent_name(self) -> str:
        return self.register.agent_name

    @property
    def availability(self) -> list[agent.AvailabilityResponse]:
        return [m.availability for m in self.messages if m.HasField("availability")]

    def can_take(self, agent_name: str) -> bool:
        return (
            self.connected
            and self.agent_name == agent_name
            and self.register.type == agent.JobType.JT_ROOM
            and self.status == agent.WorkerStatus.WS_AVAILABLE
        )


@dataclass
class DispatchedJob:
    """A job a worker accepted, with the assignment it received and its status reports."""

    job: agent.Job
    worker_id: str
    answer: agent.AvailabilityResponse
    identity: str  # the job participant's, as its room token says
    url: str
    token: str = field(repr=False)
    updates: list[agent.UpdateJobStatus] = field(default_factory=list)

    @property
    def room(self) -> str:
        return self.job.room.name

    @property
    def status(self) -> agent.JobStatus:
        return self.updates[-1].status if self.updates else agent.JobStatus.JS_PENDING


class AgentDispatcher:
    def __init__(
        self,
        credentials: Credentials,
        rooms: Rooms,
        changes: Changes,
        *,
        clock: Clock = time.time,
        token_ttl: datetime.timedelta = JOB_TOKEN_TTL,
    ) -> None:
        self._credentials = credentials
        self._rooms = rooms
        self._changes = changes
        self._clock = clock
        self._token_ttl = token_ttl
        self.url = ""  # set once the server listens: assignments carry it
        self.workers: dict[str, WorkerConnection] = {}
        self.jobs: dict[str, DispatchedJob] = {}
        self.refused: list[str] = []
        self._answers: dict[str, tuple[str, asyncio.Future[agent.AvailabilityResponse | None]]] = {}
        self._background: set[asyncio.Task[None]] = set()

    # -- the websocket a worker holds -------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            claims = self._credentials.verify(bearer_token(request))
            if not (claims.video and claims.video.agent):
                raise AuthError("access token lacks the agent grant")
        except AuthError as exc:
            self.refused.append(str(exc))
            await self._changes.notify()
            raise web.HTTPUnauthorized(text=str(exc)) from None

        ws = web.WebSocketResponse()
        await ws.prepare(request)
        worker = await self._register(ws, claims)
        if worker is None:
            return ws
        try:
            async for msg in ws:
                if msg.type != WSMsgType.BINARY:
                    continue
                try:
                    message = agent.WorkerMessage.FromString(msg.data)
                except DecodeError:
                    await ws.close(code=1002, message=b"malformed worker message")
                    break
                await self._on_message(worker, message)
        finally:
            worker.connected = False
            for worker_id, answer in self._answers.values():
                if worker_id == worker.id and not answer.done():
                    answer.set_result(None)
            await self._changes.notify()
        return ws

    async def _register(self, ws: web.WebSocketResponse, claims: Claims) -> WorkerConnection | None:
        message = agent.WorkerMessage()
        try:
            first = await ws.receive(timeout=REGISTER_TIMEOUT)
            if first.type == WSMsgType.BINARY:
                message.ParseFromString(first.data)
        except (TimeoutError, DecodeError):
            pass  # refused below, like any other first message that is not a register
        if not message.HasField("register"):
            self.refused.append("first message was not a register request")
            await ws.close(code=1002, message=b"expected a register request")
            return None
        worker = WorkerConnection(new_sid("AW_"), message.register, claims, ws)
        self.workers[worker.id] = worker
        answer = agent.RegisterWorkerResponse(worker_id=worker.id, server_info=SERVER_INFO)
        await ws.send_bytes(agent.ServerMessage(register=answer).SerializeToString())
        log.info("worker registered", worker_id=worker.id, agent_name=worker.agent_name)
        await self._changes.notify()
        return worker

    async def _on_message(self, worker: WorkerConnection, message: agent.WorkerMessage) -> None:
        worker.messages.append(message)
        kind = message.WhichOneof("message")
        if kind == "availability":
            pending = self._answers.get(message.availability.job_id)
            if pending and pending[0] == worker.id and not pending[1].done():
                pending[1].set_result(message.availability)
        elif kind == "update_worker":
            update = message.update_worker
            if update.HasField("status"):
                worker.status = update.status
            worker.load, worker.job_count = update.load, update.job_count
        elif kind == "update_job":
            job = self.jobs.get(message.update_job.job_id)
            if job is not None:
                job.updates.append(message.update_job)
        elif kind == "ping":
            pong = agent.WorkerPong(
                last_timestamp=message.ping.timestamp, timestamp=int(self._clock() * 1000)
            )
            await worker.ws.send_bytes(agent.ServerMessage(pong=pong).SerializeToString())
        await self._changes.notify()

    # -- what tests drive -------------------------------------------------------------------

    async def dispatch(
        self, room: str, *, agent_name: str = "", metadata: str = "", dispatch_id: str = ""
    ) -> DispatchedJob:
        """Offer a job for `room` to matching workers until one accepts and is assigned it.

        Like a real server's dispatch, it waits for a matching worker for as long as it takes
        (a refusal moves on to the next one): bound it with `asyncio.timeout(...)`.
        """
        now = self._clock()
        job = agent.Job(
            id=new_sid("AJ_"),
            dispatch_id=dispatch_id or new_sid("AD_"),
            type=agent.JobType.JT_ROOM,
            room=self._rooms.ensure(room),
            metadata=metadata,
            agent_name=agent_name,
            state=agent.JobState(status=agent.JobStatus.JS_PENDING, updated_at=int(now * 1000)),
        )
        offered: set[str] = set()

        def next_worker() -> WorkerConnection | None:
            fresh = [
                w for w in self.workers.values() if w.can_take(agent_name) and w.id not in offered
            ]
            return min(fresh, key=lambda w: w.load) if fresh else None

        while True:
            worker = await self._changes.wait_for(next_worker)
            offered.add(worker.id)
            answer = await self._offer(worker, job)
            if answer is not None and answer.available:
                return await self._assign(worker, job, answer)

    async def _offer(
        self, worker: WorkerConnection, job: agent.Job
    ) -> agent.AvailabilityResponse | None:
        answer: asyncio.Future[agent.AvailabilityResponse | None] = (
            asyncio.get_running_loop().create_future()
        )
        self._answers[job.id] = (worker.id, answer)
        try:
            request = agent.AvailabilityRequest(job=job)
            await worker.ws.send_bytes(
                agent.ServerMessage(availability=request).SerializeToString()
            )
            return await answer
        except ConnectionError:
            return None  # the worker left while being asked: ask the next one
        finally:
            del self._answers[job.id]

    async def _assign(
        self, worker: WorkerConnection, job: agent.Job, answer: agent.AvailabilityResponse
    ) -> DispatchedJob:
        identity = answer.participant_identity or f"agent-{job.id}"
        token = mint_agent_token(
            self._credentials,
            room=job.room.name,
            identity=identity,
            name=answer.participant_name,
            metadata=answer.participant_metadata,
            attributes=dict(answer.participant_attributes),
            permission=worker.register.allowed_permissions,
            ttl=self._token_ttl,
        )
        dispatched = DispatchedJob(job, worker.id, answer, identity, self.url, token)
        self.jobs[job.id] = dispatched
        assignment = agent.JobAssignment(job=job, url=self.url, token=token)
        await worker.ws.send_bytes(agent.ServerMessage(assignment=assignment).SerializeToString())
        log.info("job assigned", job_id=job.id, room=job.room.name, worker_id=worker.id)
        await self._changes.notify()
        return dispatched

    def create_dispatch(
        self, room: str, *, agent_name: str, metadata: str
    ) -> agent_dispatch.AgentDispatch:
        """What AgentDispatchService.CreateDispatch does: answer at once, dispatch behind."""
        record = agent_dispatch.AgentDispatch(
            id=new_sid("AD_"), agent_name=agent_name, room=room, metadata=metadata
        )
        record.state.created_at = int(self._clock() * 1e9)
        task = asyncio.create_task(self._dispatch_behind(record))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return record

    async def _dispatch_behind(self, record: agent_dispatch.AgentDispatch) -> None:
        await self.dispatch(
            record.room,
            agent_name=record.agent_name,
            metadata=record.metadata,
            dispatch_id=record.id,
        )

    async def terminate(self, job_id: str) -> None:
        """Tell the job's worker to end it, as the server does when a room closes."""
        job = self.jobs[job_id]
        termination = agent.JobTermination(job_id=job_id)
        await self.workers[job.worker_id].ws.send_bytes(
            agent.ServerMessage(termination=termination).SerializeToString()
        )

    async def disconnect(self, worker_id: str) -> None:
        await self.workers[worker_id].ws.close(code=1001, message=b"server going away")

    async def wait_for_worker(self, agent_name: str = "") -> WorkerConnection:
        """The first connected worker registered under `agent_name`."""
        return await self._changes.wait_for(
            lambda: next(
                (w for w in self.workers.values() if w.connected and w.agent_name == agent_name),
                None,
            )
        )

    async def wait_for_job_status(
        self, job_id: str, *statuses: agent.JobStatus
    ) -> agent.UpdateJobStatus:
        """The first update of the job reporting one of `statuses`."""
        job = self.jobs[job_id]
        return await self._changes.wait_for(
            lambda: next((u for u in job.updates if u.status in statuses), None)
        )

    async def aclose(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        for worker in self.workers.values():
            if worker.connected:
                await worker.ws.close(code=1001, message=b"server shutting down")
