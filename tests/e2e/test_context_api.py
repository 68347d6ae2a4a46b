"""The Agent Context API end to end: our service (in-process, like the token server) finds the
agents through the real LiveKit server and reaches them by server-side RPC (or SendData), and
agents started from a written `.env` speak and take context; users are real rtc clients."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from livekit import api, rtc

from context_api import ContextApiSettings, create_app
from context_api.rooms import LiveKitRooms
from context_api.wire import (
    METHOD,
    TOPIC,
    Command,
    CommandSigner,
    new_command_id,
)
from devkit.harness import User, agent_identity
from devkit.openai_realtime import GREETING, ReplyContext, default_reply
from tests.e2e.conftest import AVATAR_ID, AVATAR_IDENTITY, WEBHOOK_SECRET, Stack
from webhooks.signatures import verify_bithuman_signature

pytestmark = pytest.mark.e2e

API_SECRET = "context-e2e-secret-0123456789"


@dataclass
class ContextApi:
    url: str
    http: aiohttp.ClientSession

    async def post(
        self, path: str, body: Any, *, secret: str | None = API_SECRET, **headers: str
    ) -> tuple[int, dict[str, Any]]:
        if secret is not None:
            headers["api-secret"] = secret
        async with self.http.post(f"{self.url}{path}", json=body, headers=headers) as response:
            return response.status, await response.json()

    async def speak(self, code: str, body: Any) -> tuple[int, dict[str, Any]]:
        return await self.post(f"/v1/agent/{code}/speak", body)

    async def add_context(self, code: str, body: Any) -> tuple[int, dict[str, Any]]:
        return await self.post(f"/v1/agent/{code}/add-context", body)


@pytest.fixture
async def context_api(stack: Stack) -> AsyncIterator[Callable[..., Awaitable[ContextApi]]]:
    """Starts our context API against the test's LiveKit server (`livekit_url` overrides it)."""
    servers: list[TestServer] = []

    async def start(livekit_url: str | None = None, **overrides: str) -> ContextApi:
        env = stack.livekit.env()
        if livekit_url is not None:
            env["LIVEKIT_URL"] = livekit_url
        settings = ContextApiSettings(**env, CONTEXT_API_SECRET=API_SECRET, **overrides)
        server = TestServer(create_app(settings), host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return ContextApi(str(server.make_url("")).rstrip("/"), stack.http)

    yield start
    for server in servers:
        await server.close()


async def greeted(stack: Stack) -> tuple[User, str]:
    """A user in a new room, once the agent's greeting has reached them."""
    user = await stack.join()
    await user.until(lambda: agent_identity(user) is not None, within=45)
    agent = agent_identity(user)
    assert agent is not None
    await user.until(lambda: GREETING in user.final_texts(agent), within=45)
    return user, agent


def system_items(stack: Stack) -> list[str]:
    """The text of the system items in the realtime conversations, as the model holds them."""
    return [
        part.get("text", "")
        for conn in stack.realtime.connections
        for item in conn.items
        if item.get("role") == "system"
        for part in item.get("content") or []
    ]


def system_texts(stack: Stack) -> list[str]:
    """The text of every system item the agents created in the realtime conversation."""
    return [
        part.get("text", "")
        for event in stack.realtime.received_of("conversation.item.create")
        if (event.get("item") or {}).get("role") == "system"
        for part in event["item"].get("content") or []
    ]


async def until_events(
    stack: Stack, condition: Callable[[list[dict[str, Any]]], bool], within: float = 20
) -> None:
    """Wait until the webhook events the receiver got satisfy `condition`."""
    async with asyncio.timeout(within):
        count = 1
        while not condition([r.json for r in stack.receiver.requests]):
            await stack.receiver.wait_for(count, within=within)
            count = len(stack.receiver.requests) + 1


def said_in(events: list[dict[str, Any]], text: str) -> int:
    return sum(
        1
        for e in events
        if e["event_type"] == "chat.push"
        and e["data"]["role"] == "assistant"
        and e["data"]["message"] == text
    )


def heard(user: User, agent: str, text: str) -> Callable[[], bool]:
    return lambda: text in user.final_texts(agent)


async def test_speak_reaches_every_live_room_or_the_one_named(
    stack: Stack, context_api: Callable[..., Awaitable[ContextApi]]
) -> None:
    await stack.start_agent()
    service = await context_api()
    (first, first_agent), (second, second_agent) = await asyncio.gather(
        greeted(stack), greeted(stack)
    )
    before = {first: first.voiced(first_agent), second: second.voiced(second_agent)}

    everyone = "Attention please: the shop closes in ten minutes."
    status, body = await service.speak(stack.agent_name, {"message": everyone})
    assert status == 200, body
    assert body["success"] is True
    assert body["message"] == "Speech triggered successfully"
    data = body["data"]
    assert data["agent_code"] == stack.agent_name
    assert data["delivered_to_rooms"] == 2
    assert {r["room_id"] for r in data["rooms"]} == {first.room.name, second.room.name}
    assert {r["agent_identity"] for r in data["rooms"]} == {first_agent, second_agent}
    assert all(r["via"] == "rpc" and r["acknowledged"] for r in data["rooms"])
    assert all(r["result"] == "accepted" for r in data["rooms"])
    assert data["rooms_skipped"] == data["rooms_failed"] == []

    # each user hears it: the words on the agent's transcript, audio on the agent's track,
    # and the stand-in's speech endpoint was asked for exactly these words (verbatim)
    for user, agent in ((first, first_agent), (second, second_agent)):
        await user.until(heard(user, agent, everyone), within=30)
        await user.until(lambda u=user, a=agent: u.voiced(a) >= before[u] + 25, within=30)
    assert [r.input for r in stack.realtime.speech_requests] == [everyone, everyone]
    # what is said is a conversation message like any other: a chat.push per room
    await until_events(stack, lambda events: said_in(events, everyone) == 2)

    # room_id: that room only
    only = "This is for the first room only."
    status, body = await service.speak(
        stack.agent_name, {"message": only, "room_id": first.room.name}
    )
    assert status == 200, body
    assert body["data"]["delivered_to_rooms"] == 1
    assert [r["room_id"] for r in body["data"]["rooms"]] == [first.room.name]
    await first.until(heard(first, first_agent, only), within=30)
    await asyncio.sleep(1.0)
    assert only not in second.final_texts(second_agent)
    assert [r.input for r in stack.realtime.speech_requests][2:] == [only]


async def test_add_context_changes_the_next_reply_and_deletes_nothing(
    stack: Stack, context_api: Callable[..., Awaitable[ContextApi]]
) -> None:
    realtime = stack.realtime

    def reply(ctx: ReplyContext) -> Any:
        """Replies name the context the model holds, so a reply shows what the model had."""
        notes = system_items(stack)
        if ctx.user_text and notes:
            return f"Noted: {notes[-1]} You said: {ctx.user_text}."
        return default_reply(ctx)

    realtime.script.reply_rule = reply
    realtime.script.transcripts.append("who am I")
    realtime.script.delta_delay_s = 0.15  # a greeting long enough to add context while it plays
    await stack.start_agent(stack.settings(WEBHOOK_EVENTS="room.join,chat.push,context.command"))
    service = await context_api()
    user = await stack.join()
    await user.until(lambda: agent_identity(user) is not None, within=45)
    agent = agent_identity(user)
    assert agent is not None

    # while the agent is still saying its greeting: the greeting must survive the update
    await user.until(lambda: user.voiced(agent) >= 5, within=45)
    fact = "The user's name is Ada and she prefers short answers."
    status, body = await service.add_context(
        stack.agent_name, {"context": fact, "type": "add_context"}
    )
    assert status == 200, body
    assert body["message"] == "Context added successfully"
    assert body["data"]["context_type"] == "add_context"
    assert body["data"]["delivered_to_rooms"] == 1

    created = [e["item"] for e in realtime.received_of("conversation.item.create") if e.get("item")]
    assert any(
        item.get("role") == "system" and item["content"][0].get("text") == fact for item in created
    ), created
    await user.until(lambda: GREETING in user.final_texts(agent), within=30)
    assert realtime.received_of("conversation.item.delete") == []
    assert realtime.speech_requests == [], "context is silent: nothing is said"

    # the next reply is made with the context
    await user.open_mic()
    await user.say(1.2)
    await user.until(heard(user, agent, f"Noted: {fact} You said: who am I."), within=30)

    # WEBHOOK_EVENTS names context.command: the accepted command is reported, signed
    def reported(events: list[dict[str, Any]]) -> bool:
        return any(e["event_type"] == "context.command" for e in events)

    await until_events(stack, reported)
    [event] = [r for r in stack.receiver.requests if r.json["event_type"] == "context.command"]
    assert verify_bithuman_signature(
        WEBHOOK_SECRET, event.body, event.headers["X-bitHuman-Signature"]
    )
    data = event.json["data"]
    assert data["context_type"] == "add_context" and data["message"] == fact
    assert data["room_name"] == user.room.name
    assert data["command_id"] == body["data"]["command_id"]
    assert event.json["agent_id"] == stack.agent_name


async def test_context_and_speak_sent_before_the_avatar_joined(
    stack: Stack, context_api: Callable[..., Awaitable[ContextApi]]
) -> None:
    """While the cloud avatar is still joining: context goes into the session's first context
    (the greeting knows it), speech waits and is then said through the avatar."""
    realtime = stack.realtime

    def reply(ctx: ReplyContext) -> Any:
        notes = system_items(stack)
        if ctx.user_text is None and notes:
            return f"Welcome back. {notes[-1]}"
        return default_reply(ctx)

    realtime.script.reply_rule = reply
    stack.avatar.join_delay = 6.0
    await stack.start_agent(stack.avatar_settings())
    service = await context_api()
    user = await stack.join()
    code = AVATAR_ID  # the agent code is the cloud avatar's

    # sent as soon as the agent participant takes commands (the API sees it at once; users see
    # attributes of a participant that publishes nothing only in the server's next batch)
    fact = "Ada ordered the blue kettle."
    for _ in range(300):
        status, body = await service.add_context(code, {"context": fact})
        if status != 404:
            break
        await asyncio.sleep(0.1)
    assert status == 200, body
    line = "Your kettle ships tomorrow."
    status, body = await service.speak(code, {"message": line})
    assert status == 200, body
    assert AVATAR_IDENTITY not in user.room.remote_participants, "answered before the avatar"

    await user.until(lambda: f"Welcome back. {fact}" in user.final_texts(), within=45)
    await user.until(lambda: line in user.final_texts(), within=45)
    session = stack.avatar.session(user.room.name)
    await session.wait_audio(seconds=1.0, within=20)
    assert user.audio_publishers() == {AVATAR_IDENTITY}, "the speech came in the avatar's voice"
    assert [r.input for r in realtime.speech_requests] == [line]


async def test_context_api_errors_unauthorized_not_found_no_rooms_validation(
    stack: Stack, context_api: Callable[..., Awaitable[ContextApi]]
) -> None:
    service = await context_api(CONTEXT_API_AGENT_CODES=f"{stack.agent_name},A00OTHER01")
    code = stack.agent_name
    path = f"/v1/agent/{code}/speak"

    def error(body: dict[str, Any], name: str, status: int) -> None:
        assert body["success"] is False
        assert body["error"] == name
        assert body["status_code"] == status
        assert isinstance(body["message"], str) and body["message"]

    status, body = await service.post(path, {"message": "hi"}, secret=None)
    assert status == 401
    error(body, "UNAUTHORIZED", 401)
    status, body = await service.post(path, {"message": "hi"}, secret="wrong-" + API_SECRET)
    assert status == 401
    assert body["message"] == "Invalid api-secret"

    status, body = await service.speak("A99UNKNOWN", {"message": "hi"})
    assert status == 404
    error(body, "AGENT_NOT_FOUND", 404)
    assert "A99UNKNOWN" in body["message"]

    status, body = await service.speak("A00OTHER01", {"message": "hi"})
    assert status == 404
    error(body, "NO_ACTIVE_ROOMS", 404)
    # a room that exists (a user is in it) but holds no agent with that code
    lonely = await stack.join()
    status, body = await service.speak(code, {"message": "hi", "room_id": lonely.room.name})
    assert status == 404
    error(body, "NO_ACTIVE_ROOMS", 404)

    for bad in (
        {},
        {"message": ""},
        {"message": 42},
        {"message": "hi", "room_id": 7},
        {"message": "x" * 4097},
        ["message"],
    ):
        status, body = await service.speak(code, bad)
        assert status == 400, bad
        error(body, "VALIDATION_ERROR", 400)
    status, body = await service.add_context(code, {"context": "hi", "type": "shout"})
    assert status == 400
    assert body["message"] == "Invalid type. Must be one of: speak, add_context"


async def test_forged_context_commands_from_a_participant_are_refused(
    stack: Stack, context_api: Callable[..., Awaitable[ContextApi]]
) -> None:
    agent_process = await stack.start_agent()
    user, agent = await greeted(stack)
    room = user.room.name
    livekit = stack.livekit
    command = Command(
        id=new_command_id(),
        type="speak",
        text="I was forged.",
        agent_code=stack.agent_name,
        room=room,
        to=agent,
        issued_at=int(time.time() * 1000),
    )
    wrong_secret = CommandSigner(livekit.api_key, "not-the-livekit-secret-0123456789")
    elsewhere = command.model_copy(update={"room": "some-other-room"})
    expired = CommandSigner(livekit.api_key, livekit.api_secret, ttl_seconds=5).envelope(
        command, now=time.time() - 120
    )
    participant_token = json.loads(
        CommandSigner(livekit.api_key, livekit.api_secret).envelope(command)
    )
    participant_token["proof"] = (
        api.AccessToken(livekit.api_key, livekit.api_secret)
        .with_identity(user.identity)
        .with_grants(api.VideoGrants(room_join=True, room=room))
        .to_jwt()
    )
    forgeries = {
        "payload is not JSON": "say I was forged",
        "proof invalid": wrong_secret.envelope(command),
        "command is for another room, agent or code": CommandSigner(
            livekit.api_key, livekit.api_secret
        ).envelope(elsewhere),
        "proof expired": expired,
        "proof does not match the command": json.dumps(participant_token),
    }
    for reason, payload in forgeries.items():
        for _ in range(2):  # the second of a kind is not logged at WARNING again
            with pytest.raises(rtc.RpcError) as refused:
                await user.room.local_participant.perform_rpc(
                    destination_identity=agent, method=METHOD, payload=payload
                )
            assert refused.value.message == reason
            assert refused.value.code in (4400, 4401, 4403)
    # and the same on the data topic, which has nobody to answer
    await user.room.local_participant.publish_data(
        wrong_secret.envelope(command), topic=TOPIC, destination_identities=[agent]
    )

    for reason in forgeries:
        [record] = await agent_process.wait_for_log("context command refused", reason=reason)
        assert record["level"].lower() == "warning"
        assert record["sender"] == user.identity
    await asyncio.sleep(0.5)
    for reason in forgeries:
        assert len(agent_process.logged("context command refused", reason=reason)) == 1
    assert stack.realtime.speech_requests == []
    assert "I was forged." not in user.final_texts(agent)
    assert agent_process.logged("context command accepted") == []


async def test_the_same_speak_command_delivered_twice_is_spoken_once(stack: Stack) -> None:
    await stack.start_agent()
    user, agent = await greeted(stack)
    livekit = stack.livekit
    text = "Said once, however often it arrives."
    command = Command(
        id=new_command_id(),
        type="speak",
        text=text,
        agent_code=stack.agent_name,
        room=user.room.name,
        to=agent,
        issued_at=int(time.time() * 1000),
    )
    # as livekit-api's Twirp client replays a request: the same command, each time signed anew
    signer = CommandSigner(livekit.api_key, livekit.api_secret)
    rooms = LiveKitRooms(livekit.url, livekit.api_key, livekit.api_secret, session=stack.http)
    answers = [
        json.loads(
            await rooms.perform_rpc(
                user.room.name, agent, METHOD, signer.envelope(command), within=5
            )
        )
        for _ in range(2)
    ]
    assert [a["result"] for a in answers] == ["accepted", "duplicate"]
    assert {a["id"] for a in answers} == {command.id}
    await rooms.send_data(
        user.room.name,
        agent,
        TOPIC,
        signer.envelope(command).encode(),
        nonce=b"\x01" * 16,
        within=5,
    )
    await user.until(heard(user, agent, text), within=30)
    await asyncio.sleep(1.5)
    assert user.final_texts(agent).count(text) == 1
    assert [r.input for r in stack.realtime.speech_requests] == [text]


@pytest.fixture
async def livekit_without_perform_rpc(stack: Stack) -> AsyncIterator[str]:
    """LiveKit's API as a server older than 1.9.2 answers it: everything but PerformRpc, which
    is a Twirp `bad_route`; other requests pass through to the real server unchanged. Set up
    before `context_api` in a test's arguments, so that it closes after the API."""
    upstream = stack.livekit.http_url

    async def forward(request: web.Request) -> web.Response:
        if request.match_info["method"] == "PerformRpc":
            return web.json_response(
                {"code": "bad_route", "msg": f"no handler for path {request.path!r}"}, status=404
            )
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with stack.http.post(
            upstream + request.path, data=await request.read(), headers=headers
        ) as answer:
            return web.Response(
                status=answer.status, body=await answer.read(), content_type=answer.content_type
            )

    app = web.Application()
    app.router.add_post("/twirp/livekit.RoomService/{method}", forward)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


async def test_speak_falls_back_to_send_data_without_perform_rpc(
    stack: Stack,
    livekit_without_perform_rpc: str,
    context_api: Callable[..., Awaitable[ContextApi]],
) -> None:
    agent_process = await stack.start_agent()
    service = await context_api(livekit_url=livekit_without_perform_rpc)
    user, agent = await greeted(stack)
    text = "Delivered as a data packet."
    status, body = await service.speak(stack.agent_name, {"message": text})
    assert status == 200, body
    [room] = body["data"]["rooms"]
    assert (room["via"], room["acknowledged"], room["result"]) == ("data", False, "sent")
    await user.until(heard(user, agent, text), within=30)
    async with stack.http.get(f"{service.url}/healthz") as health:
        assert (await health.json())["delivery"] == "data"
    # add-context goes the same way (unacknowledged: the test waits for the agent to take it)
    status, body = await service.add_context(stack.agent_name, {"context": "The sky is green."})
    assert status == 200, body
    await agent_process.wait_for_log("context command accepted", type="add_context", via="data")
    assert "The sky is green." in system_texts(stack)
