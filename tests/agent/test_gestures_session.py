"""The whole path of a gesture: a spoken user turn on the OpenAI Realtime stand-in, its scripted
transcript, the keyword match, one `trigger_dynamics` RPC to the avatar, and the reply."""

from __future__ import annotations

import json

from livekit.agents import Agent
from livekit.plugins import bithuman, silero

from agent.avatar import start_gestures
from agent.dynamics import DynamicsSettings
from agent.session import build_session
from agent.settings import AgentSettings
from devkit.bithuman_api import BithumanStub
from devkit.dynamics_standins import RecordingParticipant, StandInRoom, settle
from devkit.openai_realtime import FakeRealtimeServer
from tests.fakes.session_io import Microphone, SessionEvents, Speaker, pcm_frames

AVATAR = "bithuman-avatar-agent"


async def test_a_funny_remark_makes_the_avatar_laugh_once_and_the_reply_arrives(
    realtime_server: FakeRealtimeServer, bithuman_api: BithumanStub
) -> None:
    realtime_server.script.transcripts.append("that's so funny")
    settings = AgentSettings(
        _env_file=None,  # type: ignore[call-arg]
        openai_api_key="sk-test",
        openai_base_url=realtime_server.base_url,
        bithuman_api_secret=bithuman_api.secret,
        bithuman_avatar_id="A12BCD3456",
        bithuman_rest_url=bithuman_api.url,
    )
    dynamics = DynamicsSettings(
        _env_file=None,  # type: ignore[call-arg]
        bithuman_api_secret=bithuman_api.secret,
        bithuman_rest_url=bithuman_api.url,
        dynamics_map_path=None,
    )
    participant = RecordingParticipant(identity="agent-1")
    room = StandInRoom(participant, present=["user-1", AVATAR])
    avatar = bithuman.AvatarSession(avatar_id="A12BCD3456", api_secret="scoped-token")

    session = build_session(settings, vad_model=silero.VAD.load())
    events = SessionEvents(session)
    speaker, mic = Speaker(), Microphone()
    session.output.audio = speaker
    await session.start(Agent(instructions="You are a test avatar."))
    gestures = await start_gestures(session, room, avatar, settings, dynamics)  # type: ignore[arg-type]
    try:
        assert gestures is not None and gestures.active
        session.input.audio = mic
        await mic.speak(pcm_frames(800, 440) + pcm_frames(900, 0))
        await events.wait(lambda: events.said("assistant") == ["You said: that's so funny."])
        await settle()
    finally:
        await gestures.aclose() if gestures else None
        await session.aclose()
        await speaker.aclose()
        await session.llm.aclose()  # type: ignore[union-attr]

    (call,) = participant.calls
    assert call.destination_identity == AVATAR and call.method == "trigger_dynamics"
    body = json.loads(call.payload)
    assert body["action"] == "laugh_react" and body["identity"] == "agent-1"
    assert body["timestamp"].endswith(("Z", "+00:00"))
    assert [r.path for r in bithuman_api.requests] == ["/v1/dynamics/A12BCD3456"]
