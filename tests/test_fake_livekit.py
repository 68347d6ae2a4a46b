"""The LiveKit stand-ins, reached only through the real clients: a livekit-agents worker (as a
`start` subprocess and in-process), livekit rtc's `Room.connect`, and livekit-api's Twirp client.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import os
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from livekit import api, rtc
from livekit.agents import AgentServer, JobContext, JobExecutorType
from livekit.agents import __version__ as agents_version
from livekit.api.access_token import Claims
from livekit.protocol import agent, models
from livekit.protocol import rtc as rtc_proto

from tests.fakes.livekit_room_service import rpc_error
from tests.fakes.livekit_server import JOB_ENDED, FakeLiveKitServer, run_one_job
from tests.fakes.livekit_signal import decode_join_request
from tests.fakes.livekit_twirp import TwirpError

T = TypeVar("T")

AGENT_NAME_VARIABLES = ("LIVEKIT_AGENT_NAME", "LIVEKIT_AGENT_NAME_OVERRIDE")

# The smallest production worker: one warm job process, no health port clash, and a load
# function that ignores the CPU (the default would refuse jobs on a busy CI machine).
WORKER_APP = textwrap.dedent(
    """
    from livekit.agents import AgentServer, JobContext, cli

    server = AgentServer(num_idle_processes=1, port=0, load_fnc=lambda: 0.0)


    @server.rtc_session()
    async def entrypoint(ctx: JobContext) -> None:
        await ctx.connect()


    if __name__ == "__main__":
        cli.run_app(server)
    """
)


def _job_token_claims(server: FakeLiveKitServer, token: str) -> Claims:
    creds = server.credentials
    return api.TokenVerifier(creds.api_key, creds.api_secret).verify(token)


async def test_started_worker_registers_and_runs_one_job_up_to_the_room_connection(
    livekit_server: FakeLiveKitServer, tmp_path: Path
) -> None:
    script = tmp_path / "worker_app.py"
    script.write_text(WORKER_APP)
    env = {**os.environ, **livekit_server.env()}
    for name in AGENT_NAME_VARIABLES:
        env.pop(name, None)
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(script), "start", cwd=tmp_path, env=env, stdout=log_file,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
    async with asyncio.timeout(60):
        done = await run_one_job(
            livekit_server, process, log_path, "demo-room", metadata='{"persona": "tester"}'
        )
    worker, job, attempt, exit_status = done.worker, done.job, done.attempt, done.exit_status

    assert worker.claims.video is not None and worker.claims.video.agent
    assert worker.register.version == agents_version
    assert worker.register.type == agent.JobType.JT_ROOM
    assert worker.register.allowed_permissions.agent
    assert [a.job_id for a in worker.availability] == [job.job.id]
    assert job.answer.available and job.worker_id == worker.id
    assert job.url == livekit_server.url

    claims = _job_token_claims(livekit_server, job.token)
    assert claims.video is not None and claims.video.room_join and claims.video.agent
    assert claims.video.room == "demo-room"
    assert (claims.identity, claims.kind) == (job.identity, "agent")

    assert attempt.authorized and attempt.path == "/rtc/v1"
    assert attempt.join_request is not None
    assert attempt.join_request.client_info.sdk == models.ClientInfo.SDK.PYTHON
    assert agent.JobStatus.JS_RUNNING in [u.status for u in job.updates]
    assert job.status in JOB_ENDED
    assert exit_status == 0


@asynccontextmanager
async def in_process_worker(
    server: FakeLiveKitServer, monkeypatch: pytest.MonkeyPatch, agent_name: str
) -> AsyncIterator[AgentServer]:
    """A real AgentServer in this process, its jobs in threads: fast, and same protocol."""
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)  # run() exports these; monkeypatch restores them
    for name in AGENT_NAME_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    worker = AgentServer(
        job_executor_type=JobExecutorType.THREAD,
        num_idle_processes=0,
        port=0,
        load_fnc=lambda: 0.0,
    )
    worker.rtc_session(_connect_to_room, agent_name=agent_name)
    running = asyncio.create_task(worker.run(devmode=False))
    try:
        yield worker
    finally:
        await worker.aclose()
        await running


async def _connect_to_room(ctx: JobContext) -> None:
    await ctx.connect()


async def test_explicit_dispatch_goes_only_to_the_worker_registered_under_that_name(
    livekit_server: FakeLiveKitServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    dispatcher = livekit_server.dispatcher
    async with (
        in_process_worker(livekit_server, monkeypatch, "x"),
        in_process_worker(livekit_server, monkeypatch, ""),
        asyncio.timeout(20),
    ):
        named = await dispatcher.wait_for_worker("x")
        automatic = await dispatcher.wait_for_worker("")

        job = await dispatcher.dispatch("room-x", agent_name="x", metadata="for x")
        attempt = await livekit_server.signal.wait_for_attempt("room-x", identity=job.identity)
        assert job.worker_id == named.id
        assert job.job.agent_name == "x" and job.job.metadata == "for x"
        assert job.answer.participant_attributes["lk.agent.name"] == "x"
        assert attempt.authorized
        assert automatic.availability == []

        other = await dispatcher.dispatch("room-auto")
        await livekit_server.signal.wait_for_attempt("room-auto", identity=other.identity)
        assert other.worker_id == automatic.id
        assert len(named.availability) == 1


async def test_dropped_worker_registers_again(
    livekit_server: FakeLiveKitServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    dispatcher = livekit_server.dispatcher
    async with in_process_worker(livekit_server, monkeypatch, "x"), asyncio.timeout(20):
        first = await dispatcher.wait_for_worker("x")
        await dispatcher.disconnect(first.id)
        again = await dispatcher.wait_for_worker("x")
    assert again.id != first.id and not first.connected


async def test_agent_dispatch_api_dispatches_to_the_named_worker(
    livekit_server: FakeLiveKitServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with (
        in_process_worker(livekit_server, monkeypatch, "x"),
        asyncio.timeout(20),
        api.LiveKitAPI(
            livekit_server.url,
            livekit_server.credentials.api_key,
            livekit_server.credentials.api_secret,
        ) as lkapi,
    ):
        dispatch = await lkapi.agent_dispatch.create_dispatch(
            api.CreateAgentDispatchRequest(agent_name="x", room="api-room", metadata="hello")
        )
        attempt = await livekit_server.signal.wait_for_attempt("api-room")

    job = next(j for j in livekit_server.dispatcher.jobs.values() if j.room == "api-room")
    assert dispatch.id.startswith("AD_") and dispatch.agent_name == "x"
    assert job.job.dispatch_id == dispatch.id and job.job.metadata == "hello"
    assert attempt.identity == job.identity


async def _register_raw_worker(
    session: aiohttp.ClientSession, server: FakeLiveKitServer, agent_name: str
) -> aiohttp.ClientWebSocketResponse:
    token = server.token(api.VideoGrants(agent=True))
    ws = await session.ws_connect(
        f"{server.url}/agent", headers={"Authorization": f"Bearer {token}"}
    )
    register = agent.RegisterWorkerRequest(type=agent.JobType.JT_ROOM, agent_name=agent_name)
    await ws.send_bytes(agent.WorkerMessage(register=register).SerializeToString())
    answer = agent.ServerMessage.FromString(await ws.receive_bytes())
    assert answer.register.worker_id.startswith("AW_")
    return ws


async def _next_server_message(ws: aiohttp.ClientWebSocketResponse) -> agent.ServerMessage:
    return agent.ServerMessage.FromString(await ws.receive_bytes())


async def test_refused_offer_moves_on_and_pings_and_terminations_flow(
    livekit_server: FakeLiveKitServer,
) -> None:
    async with aiohttp.ClientSession() as session, asyncio.timeout(10):
        first = await _register_raw_worker(session, livekit_server, "raw")
        second = await _register_raw_worker(session, livekit_server, "raw")
        dispatching = asyncio.create_task(
            livekit_server.dispatcher.dispatch("raw-room", agent_name="raw")
        )

        offer = await _next_server_message(first)
        refusal = agent.AvailabilityResponse(job_id=offer.availability.job.id, available=False)
        await first.send_bytes(agent.WorkerMessage(availability=refusal).SerializeToString())

        offer = await _next_server_message(second)
        assert offer.availability.job.room.name == "raw-room"
        accept = agent.AvailabilityResponse(
            job_id=offer.availability.job.id, available=True, participant_identity="raw-agent"
        )
        await second.send_bytes(agent.WorkerMessage(availability=accept).SerializeToString())
        assignment = (await _next_server_message(second)).assignment
        job = await dispatching
        assert assignment.job.id == job.job.id and assignment.token == job.token
        assert _job_token_claims(livekit_server, assignment.token).identity == "raw-agent"

        ping = agent.WorkerMessage(ping=agent.WorkerPing(timestamp=1234))
        await second.send_bytes(ping.SerializeToString())
        assert (await _next_server_message(second)).pong.last_timestamp == 1234

        await livekit_server.dispatcher.terminate(job.job.id)
        assert (await _next_server_message(second)).termination.job_id == job.job.id
        running = agent.UpdateJobStatus(job_id=job.job.id, status=agent.JobStatus.JS_RUNNING)
        await second.send_bytes(agent.WorkerMessage(update_job=running).SerializeToString())
        await livekit_server.dispatcher.wait_for_job_status(job.job.id, agent.JobStatus.JS_RUNNING)


@pytest.mark.parametrize(
    ("grants", "secret", "reason"),
    [
        (api.VideoGrants(agent=True), "not-the-secret-" * 3, "invalid access token"),
        (api.VideoGrants(room_list=True), None, "lacks the agent grant"),
    ],
)
async def test_agent_socket_refuses_tokens_the_server_would_refuse(
    livekit_server: FakeLiveKitServer, grants: api.VideoGrants, secret: str | None, reason: str
) -> None:
    key = livekit_server.credentials.api_key
    token = (
        api.AccessToken(key, secret or livekit_server.credentials.api_secret)
        .with_grants(grants)
        .to_jwt()
    )
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(
                f"{livekit_server.url}/agent", headers={"Authorization": f"Bearer {token}"}
            )
    assert refused.value.status == 401
    assert reason in livekit_server.dispatcher.refused[0]
    assert livekit_server.dispatcher.workers == {}


async def test_room_connect_is_recorded_with_room_and_identity_then_refused(
    livekit_server: FakeLiveKitServer,
) -> None:
    token = livekit_server.token(api.VideoGrants(room_join=True, room="sig-room"), identity="u1")
    with pytest.raises(rtc.ConnectError, match="no media server"):
        await rtc.Room().connect(livekit_server.url, token)

    connect, validate = livekit_server.signal.attempts
    assert (connect.path, connect.room, connect.identity) == ("/rtc/v1", "sig-room", "u1")
    assert connect.authorized and not connect.validation
    assert validate.path == "/rtc/v1/validate" and validate.validation


async def test_room_connect_with_a_forged_token_is_refused_as_unauthorized(
    livekit_server: FakeLiveKitServer,
) -> None:
    forged = (
        api.AccessToken(livekit_server.credentials.api_key, "forged-secret-" * 3)
        .with_identity("u1")
        .with_grants(api.VideoGrants(room_join=True, room="sig-room"))
        .to_jwt()
    )
    with pytest.raises(rtc.ConnectError, match="401"):
        await rtc.Room().connect(livekit_server.url, forged)
    assert livekit_server.signal.attempts[0].error is not None
    assert livekit_server.signal.attempts[0].error.startswith("invalid access token")


async def test_signal_endpoint_answers_a_malformed_join_request_with_400(
    livekit_server: FakeLiveKitServer,
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{livekit_server.http_url}/rtc/v1?join_request=%%%") as response,
    ):
        assert response.status == 400
    assert livekit_server.signal.attempts == []


@given(metadata=st.text(), compress=st.booleans())
def test_join_request_query_decodes_with_or_without_compression(
    metadata: str, compress: bool
) -> None:
    request = rtc_proto.JoinRequest(metadata=metadata)
    payload = request.SerializeToString()
    wrapped = rtc_proto.WrappedJoinRequest(
        compression=rtc_proto.WrappedJoinRequest.GZIP
        if compress
        else rtc_proto.WrappedJoinRequest.NONE,
        join_request=gzip.compress(payload) if compress else payload,
    )
    encoded = base64.urlsafe_b64encode(wrapped.SerializeToString()).rstrip(b"=").decode()
    assert decode_join_request(encoded) == request


def _api(server: FakeLiveKitServer) -> api.LiveKitAPI:
    creds = server.credentials
    return api.LiveKitAPI(server.url, creds.api_key, creds.api_secret)


async def test_room_service_lists_and_removes_participants(
    livekit_server: FakeLiveKitServer,
) -> None:
    rooms = livekit_server.rooms
    rooms.add_participant("r", "user-1")
    rooms.add_participant(
        "r", "bithuman-avatar-agent", kind=models.ParticipantInfo.Kind.AGENT, attributes={"a": "b"}
    )
    async with _api(livekit_server) as lkapi:
        listed = await lkapi.room.list_participants(api.ListParticipantsRequest(room="r"))
        await lkapi.room.remove_participant(
            api.RoomParticipantIdentity(room="r", identity="bithuman-avatar-agent")
        )
        after = await lkapi.room.list_participants(api.ListParticipantsRequest(room="r"))
        with pytest.raises(api.ServerError) as missing:
            await lkapi.room.remove_participant(
                api.RoomParticipantIdentity(room="r", identity="bithuman-avatar-agent")
            )

    by_identity = {p.identity: p for p in listed.participants}
    assert by_identity["bithuman-avatar-agent"].kind == models.ParticipantInfo.Kind.AGENT
    assert dict(by_identity["bithuman-avatar-agent"].attributes) == {"a": "b"}
    assert [p.identity for p in after.participants] == ["user-1"]
    assert (missing.value.code, missing.value.status) == ("not_found", 404)
    removals = livekit_server.twirp.calls_to("RemoveParticipant")
    assert [c.error.code if c.error else None for c in removals] == [None, "not_found"]


async def test_room_service_manages_rooms_and_participant_details(
    livekit_server: FakeLiveKitServer,
) -> None:
    livekit_server.rooms.add_participant("r", "user-1", attributes={"keep": "1", "drop": "2"})
    update = api.UpdateParticipantRequest(
        room="r", identity="user-1", metadata="m", attributes={"drop": "", "new": "3"}
    )
    async with _api(livekit_server) as lkapi:
        rooms = await lkapi.room.list_rooms(api.ListRoomsRequest(names=["r"]))
        updated = await lkapi.room.update_participant(update)
        fetched = await lkapi.room.get_participant(
            api.RoomParticipantIdentity(room="r", identity="user-1")
        )
        await lkapi.room.delete_room(api.DeleteRoomRequest(room="r"))
        with pytest.raises(api.ServerError) as gone:
            await lkapi.room.delete_room(api.DeleteRoomRequest(room="r"))

    assert [(room.name, room.num_participants) for room in rooms.rooms] == [("r", 1)]
    assert updated == fetched
    assert (fetched.metadata, dict(fetched.attributes)) == ("m", {"keep": "1", "new": "3"})
    assert gone.value.code == "not_found"
    assert livekit_server.rooms.names() == []


async def test_room_service_records_send_data(livekit_server: FakeLiveKitServer) -> None:
    request = api.SendDataRequest(
        room="r",
        data=b'{"speak": "hi"}',
        kind=models.DataPacket.Kind.RELIABLE,
        topic="lk.context",
        destination_identities=["agent-1"],
    )
    async with _api(livekit_server) as lkapi:
        await lkapi.room.send_data(request)
    (call,) = livekit_server.twirp.calls_to("SendData")
    assert call.request == request and call.error is None


async def test_room_service_checks_credentials_and_room_grants(
    livekit_server: FakeLiveKitServer,
) -> None:
    wrong = api.LiveKitAPI(livekit_server.url, livekit_server.credentials.api_key, "x" * 40)
    other_room = livekit_server.token(api.VideoGrants(room_admin=True, room="other"))
    foreign = api.LiveKitAPI.with_token(other_room, livekit_server.url)
    request = api.ListParticipantsRequest(room="r")
    async with wrong, foreign:
        with pytest.raises(api.ServerError) as unauthenticated:
            await wrong.room.list_participants(request)
        with pytest.raises(api.ServerError) as denied:
            await foreign.room.list_participants(request)
    assert (unauthenticated.value.code, unauthenticated.value.status) == ("unauthenticated", 401)
    assert (denied.value.code, denied.value.status) == ("permission_denied", 403)


async def test_room_service_answers_injected_errors_once(
    livekit_server: FakeLiveKitServer,
) -> None:
    livekit_server.twirp.fail_next("ListParticipants", TwirpError("unavailable", "try later"))
    async with _api(livekit_server) as lkapi:
        with pytest.raises(api.ServerError) as failed:
            await lkapi.room.list_participants(api.ListParticipantsRequest(room="r"))
        recovered = await lkapi.room.list_participants(api.ListParticipantsRequest(room="r"))
    assert (failed.value.code, failed.value.message, failed.value.status) == (
        "unavailable",
        "try later",
        503,
    )
    assert list(recovered.participants) == []


async def _perform_rpc(
    server: FakeLiveKitServer, body: dict[str, str], *, binary: bool = False
) -> tuple[int, dict[str, str]]:
    """POST the raw route (livekit-api 1.2 has no wrapper), as JSON or as protobuf."""
    token = server.token(api.VideoGrants(room_admin=True, room=body.get("room", "")))
    url = f"{server.http_url}/twirp/livekit.RoomService/PerformRpc"
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as session:
        if not binary:
            async with session.post(url, json=body, headers=headers) as response:
                return response.status, await response.json()
        request = api.PerformRpcRequest(
            room=body["room"],
            destination_identity=body["destinationIdentity"],
            method=body["method"],
            payload=body["payload"],
        )
        headers["Content-Type"] = "application/protobuf"
        async with session.post(url, data=request.SerializeToString(), headers=headers) as response:
            assert response.status == 200
            reply = api.PerformRpcResponse.FromString(await response.read())
            return response.status, {"payload": reply.payload}


def _failing_handler(_: api.PerformRpcRequest) -> str:
    raise rpc_error(1500, "boom")


async def test_perform_rpc_answers_from_scripted_handlers_and_maps_rpc_errors(
    livekit_server: FakeLiveKitServer,
) -> None:
    livekit_server.rooms.add_participant("r", "agent-1", kind=models.ParticipantInfo.Kind.AGENT)
    livekit_server.room_service.on_rpc(
        "agent-1", "speak", lambda request: f"said {request.payload}"
    )
    livekit_server.room_service.on_rpc("agent-1", "explode", _failing_handler)
    call = {"room": "r", "destinationIdentity": "agent-1", "method": "speak", "payload": "hi"}

    assert await _perform_rpc(livekit_server, call) == (200, {"payload": "said hi"})
    assert await _perform_rpc(livekit_server, call, binary=True) == (200, {"payload": "said hi"})
    status, error = await _perform_rpc(livekit_server, {**call, "method": "dance"})
    assert (status, error["code"]) == (400, "invalid_argument")
    assert error["msg"].startswith("RpcError 1400")
    status, error = await _perform_rpc(livekit_server, {**call, "method": "explode"})
    assert (status, error["code"], error["msg"]) == (500, "internal", "RpcError 1500: boom")
    status, error = await _perform_rpc(livekit_server, {**call, "destinationIdentity": "ghost"})
    assert (status, error["code"]) == (404, "not_found")
    requests = [c.request for c in livekit_server.twirp.calls_to("PerformRpc")]
    methods = [r.method for r in requests if isinstance(r, api.PerformRpcRequest)]
    assert methods == ["speak", "speak", "dance", "explode", "speak"]


async def test_twirp_routes_answer_unknown_methods_and_bad_bodies_with_twirp_errors(
    livekit_server: FakeLiveKitServer,
) -> None:
    token = livekit_server.token(api.VideoGrants(room_admin=True, room="r"))
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/protobuf"}
    base = f"{livekit_server.http_url}/twirp/livekit.RoomService"
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.post(f"{base}/MutePublishedTrack", data=b"") as response:
            unknown = (response.status, (await response.json())["code"])
        async with session.post(f"{base}/ListParticipants", data=b"\xff\xff") as response:
            malformed = (response.status, (await response.json())["code"])
        async with session.get(f"{base}/ListParticipants") as response:
            not_post = (response.status, (await response.json())["code"])
    assert unknown == not_post == (404, "bad_route")
    assert malformed == (400, "malformed")
    assert livekit_server.twirp.calls == []
