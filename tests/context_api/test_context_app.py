"""The context API's app against the real LiveKit server, with lightweight agent participants
(devkit/context_agents.py) standing in for full sessions: routing by agent code and room,
per-room results when rooms fail, refuse or time out, and the documented answers."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from livekit import rtc

from context_api.wire import ATTR_ACCEPTS, ATTR_AGENT_CODE, METHOD
from devkit.context_agents import StandInAgent, agent_token
from devkit.livekit_server import LiveKitServer
from tests.context_api.conftest import API_SECRET, headers, make_settings

Serve = Callable[..., Awaitable[TestClient[Any, Any]]]
StandIn = Callable[..., Awaitable[StandInAgent]]


def room() -> str:
    return f"ctx-{secrets.token_hex(4)}"


async def post(client: TestClient[Any, Any], path: str, body: Any, **extra: str) -> Any:
    response = await client.post(path, data=json.dumps(body), headers=headers(**extra))
    return response.status, await response.json()


@pytest.fixture
async def raw_agents(livekit_server: LiveKitServer) -> AsyncIterator[Callable[..., Any]]:
    """Agent participants with a hand-written RPC handler (or none), for the failure cases."""
    rooms: list[rtc.Room] = []

    async def join(
        name: str, attributes: dict[str, str], handler: Callable[..., Any] | None = None
    ) -> rtc.Room:
        joined = rtc.Room()
        token = agent_token(
            livekit_server.api_key, livekit_server.api_secret, name, f"agent-{name}", attributes
        )
        await joined.connect(livekit_server.url, token)
        if handler is not None:
            joined.local_participant.register_rpc_method(METHOD, handler)
        rooms.append(joined)
        return joined

    yield join
    for joined in rooms:
        await joined.disconnect()


async def test_speak_reaches_each_room_of_the_agent_and_only_those(
    serve: Serve, stand_in: StandIn, agent_code: str, raw_agents: Any
) -> None:
    client = await serve()
    first, second, other = room(), room(), room()
    a = await stand_in(first, agent_code=agent_code)
    b = await stand_in(second, agent_code=agent_code)
    stranger = await stand_in(other, agent_code=agent_code + "X")
    off = room()  # the agent is there but does not take commands (CONTEXT_COMMANDS=false)
    await raw_agents(off, {ATTR_AGENT_CODE: agent_code})

    status, body = await post(client, f"/v1/agent/{agent_code}/speak", {"message": "Hi all."})

    assert status == 200, body
    assert body["success"] is True and body["message"] == "Speech triggered successfully"
    data = body["data"]
    assert data["agent_code"] == agent_code and data["context_type"] == "speak"
    assert data["delivered_to_rooms"] == 2
    assert data["command_id"].startswith("cmd_")
    assert data["timestamp"].endswith("Z")
    assert sorted((r["room_id"], r["agent_identity"]) for r in data["rooms"]) == sorted(
        [(first, a.identity), (second, b.identity)]
    )
    assert all(
        r["via"] == "rpc" and r["acknowledged"] and r["result"] == "accepted" for r in data["rooms"]
    )
    assert [r["room_id"] for r in data["rooms_skipped"]] == [off]
    assert "CONTEXT_COMMANDS" in data["rooms_skipped"][0]["reason"]
    assert data["rooms_failed"] == []
    assert a.session.said == b.session.said == ["Hi all."]
    assert stranger.session.said == []

    status, body = await post(
        client,
        f"/v1/agent/{agent_code}/add-context",
        {"context": "VIP customer.", "type": "add_context", "room_id": second},
    )
    assert status == 200, body
    assert body["message"] == "Context added successfully"
    assert body["data"]["context_type"] == "add_context"
    assert [r["room_id"] for r in body["data"]["rooms"]] == [second]
    assert b.context() == ["VIP customer."] and a.context() == []

    # the unified endpoint with type speak, and the interrupt flag
    status, body = await post(
        client,
        f"/v1/agent/{agent_code}/add-context",
        {"context": "Now!", "type": "speak", "room_id": first, "interrupt": True},
    )
    assert status == 200, body
    assert body["message"] == "Speech triggered successfully"
    assert a.session.said == ["Hi all.", "Now!"] and a.session.interrupts == 1


async def test_one_room_failing_never_fails_the_others(
    serve: Serve, stand_in: StandIn, agent_code: str, raw_agents: Any
) -> None:
    client = await serve(CONTEXT_API_ROOM_TIMEOUT_SECONDS="1.5")
    fine, slow, refusing, mute = room(), room(), room(), room()
    advertised = {ATTR_AGENT_CODE: agent_code, ATTR_ACCEPTS: "1"}

    async def hang(_: rtc.RpcInvocationData) -> str:
        await asyncio.sleep(30)
        return "{}"

    async def refuse(_: rtc.RpcInvocationData) -> str:
        raise rtc.RpcError(4401, "proof invalid")

    agent = await stand_in(fine, agent_code=agent_code)
    await raw_agents(slow, advertised, hang)
    await raw_agents(refusing, advertised, refuse)
    await raw_agents(mute, advertised)  # advertises, but registered no method

    started = time.monotonic()
    status, body = await post(client, f"/v1/agent/{agent_code}/speak", {"message": "Still here."})
    elapsed = time.monotonic() - started

    assert status == 200, body
    data = body["data"]
    assert [r["room_id"] for r in data["rooms"]] == [fine]
    assert agent.session.said == ["Still here."]
    failed = {r["room_id"]: r["reason"] for r in data["rooms_failed"]}
    assert set(failed) == {slow, refusing, mute}
    assert "did not answer" in failed[slow]
    assert "proof invalid" in failed[refusing]
    assert "no context command handler" in failed[mute]
    assert elapsed < 1.5 + 2.0, "rooms run concurrently, each within its own deadline"


async def test_no_room_delivered_is_a_502_with_every_room(
    serve: Serve, agent_code: str, raw_agents: Any
) -> None:
    client = await serve()
    name = room()

    async def refuse(_: rtc.RpcInvocationData) -> str:
        raise rtc.RpcError(4503, "the session has ended")

    await raw_agents(name, {ATTR_AGENT_CODE: agent_code, ATTR_ACCEPTS: "1"}, refuse)
    status, body = await post(client, f"/v1/agent/{agent_code}/speak", {"message": "Hello?"})

    assert status == 502
    assert body["success"] is False and body["error"] == "DELIVERY_FAILED"
    assert body["data"]["delivered_to_rooms"] == 0
    [failed] = body["data"]["rooms_failed"]
    assert failed["room_id"] == name and "session has ended" in failed["reason"]


async def test_only_rooms_without_commands_is_no_active_rooms(
    serve: Serve, agent_code: str, raw_agents: Any
) -> None:
    client = await serve()
    name = room()
    await raw_agents(name, {ATTR_AGENT_CODE: agent_code})
    status, body = await post(client, f"/v1/agent/{agent_code}/speak", {"message": "Hello?"})

    assert status == 404
    assert body["error"] == "NO_ACTIVE_ROOMS"
    assert [r["room_id"] for r in body["data"]["rooms_skipped"]] == [name]


async def test_livekit_unreachable_is_a_503_not_a_crash() -> None:
    from aiohttp.test_utils import TestServer

    from context_api import create_app

    client: TestClient[Any, Any] = TestClient(TestServer(create_app(make_settings())))
    await client.start_server()
    try:
        status, body = await post(client, "/v1/agent/A1/speak", {"message": "Hello?"})
        assert status == 503
        assert body["error"] == "LIVEKIT_UNAVAILABLE"
        # a named room goes straight to that room: its failure is the room's
        status, body = await post(client, "/v1/agent/A1/speak", {"message": "x", "room_id": "r"})
        assert status == 502
        assert "LiveKit unreachable" in body["data"]["rooms_failed"][0]["reason"]
    finally:
        await client.close()


async def test_idempotency_key_makes_a_client_retry_a_duplicate(
    serve: Serve, stand_in: StandIn, agent_code: str
) -> None:
    client = await serve()
    agent = await stand_in(room(), agent_code=agent_code)
    path = f"/v1/agent/{agent_code}/speak"
    answers = [
        await post(client, path, {"message": "Once."}, **{"Idempotency-Key": "order-42"})
        for _ in range(2)
    ]
    assert [a[1]["data"]["rooms"][0]["result"] for a in answers] == ["accepted", "duplicate"]
    assert answers[0][1]["data"]["command_id"] == answers[1][1]["data"]["command_id"]
    assert agent.session.said == ["Once."]
    # without the key, each request is a new command
    await post(client, path, {"message": "Once."})
    assert agent.session.said == ["Once.", "Once."]


async def test_health_and_metrics(serve: Serve, stand_in: StandIn, agent_code: str) -> None:
    client = await serve(CONTEXT_API_AGENT_CODES=f"{agent_code},B2")
    await stand_in(room(), agent_code=agent_code)
    await post(client, f"/v1/agent/{agent_code}/speak", {"message": "Counted."})

    health = await client.get("/healthz")
    assert health.status == 200
    answer = await health.json()
    assert answer == {
        "status": "ok",
        "livekit_url": answer["livekit_url"],
        "delivery": "rpc",
        "agent_codes": 2,
    }
    assert answer["livekit_url"].startswith("ws://127.0.0.1:")
    metrics = await (await client.get("/metrics")).text()
    assert 'context_api_commands_total{result="delivered",type="speak"} 1.0' in metrics
    assert 'context_api_room_results_total{outcome="delivered",via="rpc"} 1.0' in metrics
    assert "context_api_room_seconds_bucket" in metrics
    assert 'context_api_requests_total{route="/v1/agent/{code}/speak",status="200"} 1.0' in metrics
    assert API_SECRET not in metrics
