"""An audio-only conversation through the real LiveKit server: dispatch by the user's token,
greeting audio and transcript, a spoken turn and its reply, and the webhooks it causes."""

from __future__ import annotations

import pytest

from devkit.harness import agent_identity
from devkit.openai_realtime import GREETING
from tests.e2e.conftest import WEBHOOK_SECRET, Stack
from webhooks.signatures import verify_bithuman_signature

pytestmark = pytest.mark.e2e


async def test_greeting_then_a_spoken_turn_and_its_webhooks(stack: Stack) -> None:
    stack.realtime.script.transcripts.append("what is the weather like")
    await stack.start_agent()
    user = await stack.join()

    await user.until(lambda: agent_identity(user) is not None, within=30)
    agent = agent_identity(user)
    assert agent is not None

    # the greeting: real audio on the agent's own track, and its words on the text stream
    await user.until(lambda: user.voiced(agent) >= 25, within=30)
    await user.until(lambda: GREETING in user.final_texts(agent))

    await user.open_mic()
    heard_before = user.voiced(agent)
    await user.say(1.2)
    reply = "You said: what is the weather like."
    await user.until(lambda: reply in user.final_texts(agent), within=30)
    await user.until(lambda: user.voiced(agent) >= heard_before + 25, within=30)
    # the user's own words come back as a transcript too (input transcription is on)
    await user.until(lambda: "what is the weather like" in user.final_texts(user.identity))
    assert user.audio_publishers() == {agent}
    assert stack.bithuman.requests == [], "no avatar configured: bitHuman is never called"

    # webhooks: one room.join for the one human, and the three messages, all signed
    await stack.receiver.wait_for(4, within=30)
    events = [r.json for r in stack.receiver.requests]
    for received in stack.receiver.requests:
        signature = received.headers.get("X-bitHuman-Signature")
        assert verify_bithuman_signature(WEBHOOK_SECRET, received.body, signature)
    joins = [e for e in events if e["event_type"] == "room.join"]
    assert len(joins) == 1
    assert joins[0]["data"]["participant_count"] == 1
    assert joins[0]["data"]["room_name"] == user.room.name
    chats = [
        (e["data"]["role"], e["data"]["message"]) for e in events if e["event_type"] == "chat.push"
    ]
    assert ("assistant", GREETING) in chats
    assert ("user", "what is the weather like") in chats
    assert ("assistant", reply) in chats
