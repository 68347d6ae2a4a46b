"""The agent's hooks: a session on the OpenAI Realtime stand-in, in a room where a user joins,
produces signed `room.join` and `chat.push` webhooks with the documented envelope."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from livekit import rtc

from agent.session import build_agent, build_session
from agent.settings import AgentSettings
from agent.webhook_events import ConversationEvents
from devkit.openai_realtime import GREETING, FakeRealtimeServer
from tests.fakes.session_io import SessionEvents, Speaker
from tests.webhooks.conftest import SECRET, RecordingReceiver, sender_settings
from webhooks.signatures import verify_bithuman_signature


@dataclass
class Participant:
    identity: str
    kind: int


class Room(rtc.EventEmitter[str]):
    """The parts of `rtc.Room` the hooks read: name, remote participants and their events."""

    def __init__(self, name: str, *present: Participant) -> None:
        super().__init__()
        self.name = name
        self.remote_participants: dict[str, Participant] = {p.identity: p for p in present}

    def join(self, participant: Participant) -> None:
        self.remote_participants[participant.identity] = participant
        self.emit("participant_connected", participant)


async def test_a_session_emits_room_join_and_every_final_message(
    realtime_server: FakeRealtimeServer, receiver: RecordingReceiver, tmp_path: Path
) -> None:
    settings = AgentSettings(
        _env_file=None,  # type: ignore[call-arg]
        openai_api_key="sk-test",
        openai_base_url=realtime_server.base_url,
        bithuman_api_secret="fake-bithuman-secret",
        bithuman_avatar_id="A12BCD3456",
    )
    room = Room(
        "demo-room",
        Participant("bithuman-avatar-agent", rtc.ParticipantKind.PARTICIPANT_KIND_AGENT),
    )
    session = build_session(settings, vad_model=None)
    recorded = SessionEvents(session)
    speaker = Speaker()
    session.output.audio = speaker
    events = await ConversationEvents.start(
        room,
        session,
        settings,
        sender_settings(tmp_path, [receiver.url]),
        session_id="AJ_session_1",
        deliver_here=True,
    )
    assert events is not None
    try:
        room.join(Participant("user-1", rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD))
        await session.start(build_agent(settings))
        await recorded.wait(lambda: recorded.said("assistant") == [GREETING])
        await session.run(user_input="hello there")
        received = await receiver.wait_for(4)
    finally:
        await events.aclose()
        await session.aclose()
        await speaker.aclose()
        await session.llm.aclose()  # type: ignore[union-attr]

    bodies: list[dict[str, Any]] = []
    for request in received:
        assert verify_bithuman_signature(
            SECRET, request.body, request.headers["X-bitHuman-Signature"]
        )
        assert request.headers["webhook-id"]
        bodies.append(json.loads(request.body))
    assert {b["agent_id"] for b in bodies} == {"A12BCD3456"}
    joins = [b["data"] for b in bodies if b["event_type"] == "room.join"]
    assert joins == [
        {"room_name": "demo-room", "participant_count": 1, "session_id": "AJ_session_1"}
    ], "the avatar is not a user: one join, counting one user"
    chats = sorted(
        (b["data"] for b in bodies if b["event_type"] == "chat.push"), key=lambda d: d["timestamp"]
    )
    assert [(c["role"], c["message"]) for c in chats] == [
        ("assistant", GREETING),
        ("user", "hello there"),
        ("assistant", "You said: hello there."),
    ]
    assert all(c["session_id"] == "AJ_session_1" for c in chats)
    assert all(set(b) == {"agent_id", "event_type", "data", "timestamp"} for b in bodies)
