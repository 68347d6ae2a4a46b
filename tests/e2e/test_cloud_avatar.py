"""The cloud avatar through the real LiveKit server: bitHuman's avatar service is a stand-in
participant (devkit/bithuman_avatar.py) that joins with the token the plugin sent, takes the
agent's voice over the data stream and publishes it with video."""

from __future__ import annotations

import asyncio
import signal

import pytest
from livekit import api

from devkit.bithuman_api import MINT, SESSION_REQUEST
from devkit.harness import User, agent_identity
from devkit.openai_realtime import GREETING, FunctionCall
from tests.e2e.conftest import AVATAR_ID, AVATAR_IDENTITY, Stack

pytestmark = pytest.mark.e2e


async def avatar_greets(stack: Stack, user: User) -> None:
    """The avatar joined, publishes video, and the greeting reaches the user in its voice."""
    await user.until(lambda: user.voiced(AVATAR_IDENTITY) >= 25, within=45)
    await user.until(lambda: GREETING in user.final_texts())
    await user.until(lambda: user.seen.get(AVATAR_IDENTITY, None) is not None)
    await user.until(lambda: user.seen[AVATAR_IDENTITY].frames >= 25)


async def participants(stack: Stack, room: str) -> set[str]:
    async with api.LiveKitAPI(
        stack.livekit.http_url, stack.livekit.api_key, stack.livekit.api_secret
    ) as lkapi:
        found = await lkapi.room.list_participants(api.ListParticipantsRequest(room=room))
    return {p.identity for p in found.participants}


async def test_the_user_hears_and_sees_the_avatar_and_no_echo(stack: Stack) -> None:
    await stack.start_agent(stack.avatar_settings())
    user = await stack.join()
    await avatar_greets(stack, user)

    # one voice in the room: the avatar's; the agent publishes no audio of its own
    assert user.audio_publishers() == {AVATAR_IDENTITY}
    assert agent_identity(user) is not None
    seen = user.seen[AVATAR_IDENTITY]
    assert len(set(round(luma) for luma in seen.lumas)) > 1, "video frames change while speaking"

    # what every participant can read on the avatar: the scoped token, never the account secret
    session = stack.avatar.session(user.room.name)
    avatar = user.room.remote_participants[AVATAR_IDENTITY]
    assert avatar.attributes.get("api_secret") == session.scoped_token
    assert session.scoped_token and session.scoped_token != stack.bithuman.secret
    assert not any(stack.bithuman.secret in value for value in avatar.attributes.values())
    assert avatar.attributes.get("lk.publish_on_behalf") == agent_identity(user)

    # what bitHuman was sent: a mint with the account secret, for this room, agent and server;
    # the session request with the scoped token and a LiveKit token for the avatar alone
    (mint,) = stack.bithuman.calls(MINT)
    assert mint.headers["api-secret"] == stack.bithuman.secret
    assert mint.body == {
        "agent_code": AVATAR_ID,
        "scope": "livekit-cloud",
        "room_name": user.room.name,
        "livekit_url": stack.livekit.url,
    }
    (request,) = stack.bithuman.calls(SESSION_REQUEST)
    assert request.headers["api-secret"] == session.scoped_token
    assert request.body["agent_id"] == AVATAR_ID and request.body["mode"] == "cpu"
    claims = api.TokenVerifier(stack.livekit.api_key, stack.livekit.api_secret).verify(
        request.body["livekit_token"]
    )
    assert claims.identity == AVATAR_IDENTITY and claims.kind == "agent"
    assert claims.video is not None and claims.video.room == user.room.name
    assert stack.livekit.api_secret not in str(request.body) + str(request.headers)


@pytest.mark.parametrize("failure", ["mint refused", "session request refused", "api hangs"])
async def test_an_avatar_that_cannot_start_leaves_the_agent_voice(
    stack: Stack, failure: str
) -> None:
    if failure == "mint refused":
        stack.bithuman.fail(MINT, 401, body={"error": "Invalid API secret", "code": "UNAUTHORIZED"})
    elif failure == "session request refused":
        stack.bithuman.fail(SESSION_REQUEST, 400, times=10)
    else:
        stack.bithuman.delays[SESSION_REQUEST] = 30
    agent = await stack.start_agent(stack.avatar_settings(AVATAR_START_TIMEOUT="2"))
    user = await stack.join()
    await user.until(lambda: GREETING in user.final_texts(), within=45)
    speaker = agent_identity(user)
    assert speaker is not None
    await user.until(lambda: user.voiced(speaker) >= 25)
    assert user.audio_publishers() == {speaker}
    (fallback,) = agent.logged("avatar unavailable, continuing audio-only")
    assert fallback["stage"] == "start"
    assert stack.bithuman.secret not in agent.text()


async def test_a_keyword_gives_exactly_one_gesture_through_the_sfu(stack: Stack) -> None:
    stack.realtime.script.transcripts.append("haha that's so funny")
    await stack.start_agent(stack.avatar_settings())
    user = await stack.join()
    await avatar_greets(stack, user)
    session = stack.avatar.session(user.room.name)

    await user.open_mic()
    await user.say(1.0)
    await session.wait_gestures(1, within=30)
    # the reply plays out fully, and no second gesture follows
    await user.until(lambda: "You said: haha that's so funny." in user.final_texts(), within=30)
    assert [(g.action, g.triggered) for g in session.gestures] == [("laugh_react", True)]
    assert session.gestures[0].caller_identity == agent_identity(user)


async def test_an_interruption_clears_the_avatar_and_later_turns_still_reach_it(
    stack: Stack,
) -> None:
    long_reply = "Let me tell you a long story about the sea and the stars. " * 6
    stack.realtime.script.replies.extend([GREETING, long_reply, "Short answer."])
    stack.realtime.script.transcripts.extend(["tell me a story", "stop please"])
    await stack.start_agent(stack.avatar_settings())
    user = await stack.join()
    await avatar_greets(stack, user)
    session = stack.avatar.session(user.room.name)
    await user.open_mic()

    await user.say(1.0)
    await session.wait_audio(seconds=session.audio_seconds + 1.0, within=30)
    # speak over the story: the realtime model's VAD barges in and the agent interrupts
    await user.say(1.0)
    await session.wait_clear_buffer(1, within=30)
    after_clear = session.audio_seconds
    # the next reply still streams to the avatar (0.26 s of audio) and reaches the user
    await session.wait_audio(seconds=after_clear + 0.2, within=30)
    await user.until(lambda: "Short answer." in user.final_texts(), within=30)
    assert long_reply.strip() not in user.final_texts(), "the story was cut short"


async def test_an_avatar_that_never_joins_leaves_the_agent_voice(stack: Stack) -> None:
    stack.avatar.never_join = True
    agent = await stack.start_agent(stack.avatar_settings(AVATAR_JOIN_TIMEOUT="3"))
    user = await stack.join()
    await user.until(lambda: GREETING in user.final_texts(), within=45)
    speaker = agent_identity(user)
    assert speaker is not None
    await user.until(lambda: user.voiced(speaker) >= 25)
    assert AVATAR_IDENTITY not in user.room.remote_participants
    (fallback,) = agent.logged("avatar unavailable, continuing audio-only")
    assert fallback["stage"] == "join" and fallback["reason"] == "timed out"


async def test_an_avatar_that_leaves_mid_session_gives_the_voice_back(stack: Stack) -> None:
    agent = await stack.start_agent(stack.avatar_settings())
    user = await stack.join()
    await avatar_greets(stack, user)

    await stack.avatar.leave(user.room.name)
    await agent.wait_for_log("avatar left the room, continuing audio-only")
    speaker = agent_identity(user)
    assert speaker is not None
    await user.open_mic()
    await user.say(1.0)
    await user.until(lambda: "You said: hello." in user.final_texts(speaker), within=30)
    await user.until(lambda: user.voiced(speaker) >= 25, within=30)
    assert user.audio_publishers() == {speaker}


async def test_two_sessions_in_a_row_then_sigterm_drains_the_second(stack: Stack) -> None:
    """Nothing leaks between jobs of one worker: both get the avatar's voice and gestures,
    and each avatar leaves with its user."""
    stack.realtime.script.transcripts.extend(["haha that's so funny", "haha that's so funny"])
    agent = await stack.start_agent(stack.avatar_settings())

    for turn in range(2):
        user = await stack.join()
        room = user.room.name
        await avatar_greets(stack, user)
        session = stack.avatar.session(room)
        await user.open_mic()
        await user.say(1.0)
        await session.wait_gestures(1, within=30)
        assert [(g.action, g.triggered) for g in session.gestures] == [("laugh_react", True)]

        if turn == 1:  # a deploy: the worker drains, the conversation in progress goes on
            agent.process.send_signal(signal.SIGTERM)
            await agent.wait_for_log("draining worker")
            assert agent.process.returncode is None
        await user.leave()
        stack.users.remove(user)
        await session.wait_ended(within=30)
        assert AVATAR_IDENTITY not in await participants(stack, room)

    async with asyncio.timeout(60):
        assert await agent.process.wait() == 0
    assert len(agent.logged("session usage")) == 2


async def test_the_model_gestures_through_its_tool(stack: Stack) -> None:
    """The optional gesture tool, called by the realtime model itself (a scripted function
    call), reaches the avatar as one `trigger_dynamics`; the reply after the tool is spoken."""
    stack.realtime.script.transcripts.append("wave at me please")
    await stack.start_agent(stack.avatar_settings(DYNAMICS_FUNCTION_TOOL="true"))
    user = await stack.join()
    await avatar_greets(stack, user)
    session = stack.avatar.session(user.room.name)
    # the tool joins the agent once the session runs: script the call only now
    stack.realtime.script.replies.extend(
        [FunctionCall(name="perform_gesture", arguments={"gesture": "mini_wave_hello"}), "Hi!"]
    )

    await user.open_mic()
    await user.say(1.0)
    await session.wait_gestures(1, within=30)
    await user.until(lambda: "Hi!" in user.final_texts(), within=30)
    assert [(g.action, g.triggered) for g in session.gestures] == [("mini_wave_hello", True)]
    (output,) = [
        e["item"]
        for e in stack.realtime.received_of("conversation.item.create")
        if e["item"]["type"] == "function_call_output"
    ]
    assert output["output"].startswith("Done")
