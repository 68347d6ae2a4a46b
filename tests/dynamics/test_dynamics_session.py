"""Dynamics on a real AgentSession: which events trigger, pacing, the tool, clean shutdown.

Typed text and agent replies take the session's real path (`session.run` with a scripted LLM);
speech transcripts are emitted as the session's own `user_input_transcribed` events, which is
what a realtime model's transcription produces.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from livekit.agents import Agent, AgentSession, llm
from livekit.agents.llm import ChatMessage, ChatRole
from livekit.agents.voice.events import ConversationItemAddedEvent, UserInputTranscribedEvent
from livekit.agents.voice.run_result import RunResult

from agent.dynamics import AVATAR_IDENTITY, AvatarRpc, Dynamics, DynamicsSettings
from agent.dynamics.catalog import CatalogCache
from agent.dynamics.stats import Outcome
from agent.dynamics.tool import TOOL_NAME
from devkit.bithuman_api import BithumanStub, dynamics_path
from devkit.dynamics_cases import LAUGH, NOD, WAVE
from devkit.dynamics_standins import (
    GESTURES,
    ManualClock,
    RecordingParticipant,
    ScriptedLLM,
    StandInRoom,
    dynamics_body,
    fails,
    never,
    settle,
)
from tests.dynamics.conftest import lines


@pytest.fixture
async def stub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[BithumanStub]:
    monkeypatch.chdir(tmp_path)  # no config/gestures.yaml here: the derived map applies
    async with BithumanStub() as running:
        running.answers[dynamics_path("A1")] = (200, dynamics_body(GESTURES))
        yield running


class Harness:
    def __init__(self, stub: BithumanStub) -> None:
        self.stub = stub
        self.participant = RecordingParticipant(identity="agent-1")
        self.room = StandInRoom(self.participant, present=["user-1", AVATAR_IDENTITY])
        self.clock = ManualClock()

    async def start(self, session: AgentSession[Any], **overrides: Any) -> Dynamics:
        settings = DynamicsSettings(
            bithuman_api_secret=self.stub.secret,
            bithuman_rest_url=self.stub.url,
            **overrides,
        )
        return await Dynamics.start(
            session=session,
            target=AvatarRpc(self.room, response_timeout=1.0),
            settings=settings,
            agent_id="A1",
            cache=CatalogCache(),
            clock=self.clock,
        )

    def sent(self) -> list[str]:
        return [call.body["action"] for call in self.participant.calls]


@pytest.fixture
def harness(stub: BithumanStub) -> Harness:
    return Harness(stub)


def speech(text: str, *, final: bool = True) -> UserInputTranscribedEvent:
    return UserInputTranscribedEvent(transcript=text, is_final=final)


def message(role: ChatRole, text: str, confidence: float | None) -> ConversationItemAddedEvent:
    item = ChatMessage(role=role, content=[text], transcript_confidence=confidence)
    return ConversationItemAddedEvent(item=item)


async def test_final_speech_fires_exactly_one_gesture_to_the_avatar(harness: Harness) -> None:
    session: AgentSession[Any] = AgentSession()
    dynamics = await harness.start(session)
    assert dynamics.active
    session.emit("user_input_transcribed", speech("that's so", final=False))
    session.emit("user_input_transcribed", speech("that's so funny"))
    # the same speech then lands in the chat history, with a transcript confidence
    session.emit("conversation_item_added", message("user", "that's so funny", 1.0))
    await settle()
    assert harness.sent() == [LAUGH]
    assert {call.destination_identity for call in harness.participant.calls} == {AVATAR_IDENTITY}
    assert dynamics.stats.counts == {Outcome.PERFORMED: 1}
    await dynamics.aclose()


async def test_typed_text_fires_through_the_real_session(harness: Harness) -> None:
    session: AgentSession[Any] = AgentSession(llm=ScriptedLLM(llm.ChoiceDelta(content="Haha!")))
    await session.start(Agent(instructions="Be brief."))
    dynamics = await harness.start(session)
    result: RunResult[None] = await session.run(user_input="Hello there")
    result.expect.next_event().is_message(role="assistant")
    await settle()
    assert harness.sent() == [WAVE]  # the agent's "Haha!" does not count by default
    await dynamics.aclose()
    await session.aclose()


async def test_agent_utterances_fire_when_enabled(harness: Harness) -> None:
    session: AgentSession[Any] = AgentSession(llm=ScriptedLLM(llm.ChoiceDelta(content="Haha!")))
    await session.start(Agent(instructions="Be brief."))
    dynamics = await harness.start(session, dynamics_agent_utterances=True, dynamics_min_gap=0)
    await session.run(user_input="Hello there")
    await settle()
    assert harness.sent() == [WAVE, LAUGH]
    await dynamics.aclose()
    await session.aclose()


async def test_triggers_before_the_avatar_joined_are_dropped_not_queued(harness: Harness) -> None:
    del harness.room.remote_participants[AVATAR_IDENTITY]
    session: AgentSession[Any] = AgentSession()
    dynamics = await harness.start(session)
    session.emit("user_input_transcribed", speech("hello"))
    await settle()
    assert harness.sent() == []
    harness.room.remote_participants[AVATAR_IDENTITY] = object()
    session.emit("user_input_transcribed", speech("yes"))
    await settle()
    assert harness.sent() == [NOD]
    assert dynamics.stats.counts == {Outcome.NOT_JOINED: 1, Outcome.PERFORMED: 1}
    await dynamics.aclose()


async def test_cooldown_and_gap_apply_across_events(harness: Harness) -> None:
    session: AgentSession[Any] = AgentSession()
    dynamics = await harness.start(session, dynamics_cooldown=3.0, dynamics_min_gap=1.0)
    for text, advance in [("haha", 0), ("hello", 0.5), ("lol", 1.0), ("hi", 1.0), ("haha", 1.0)]:
        harness.clock.advance(advance)
        session.emit("user_input_transcribed", speech(text))
    await settle()
    # t=0 laugh; 0.5 wave inside the gap; 1.5 laugh in cooldown; 2.5 wave; 3.5 laugh again
    assert harness.sent() == [LAUGH, WAVE, LAUGH]
    assert dynamics.stats.counts[Outcome.PACED] == 2
    await dynamics.aclose()


async def test_failed_sends_never_reach_the_conversation(harness: Harness) -> None:
    harness.participant.answer = fails(1401)
    session: AgentSession[Any] = AgentSession(llm=ScriptedLLM(llm.ChoiceDelta(content="Sure.")))
    await session.start(Agent(instructions="Be brief."))
    dynamics = await harness.start(session)
    result: RunResult[None] = await session.run(user_input="yes please")
    result.expect.next_event().is_message(role="assistant")
    await settle()
    assert dynamics.stats.counts == {Outcome.RECIPIENT_NOT_FOUND: 1}
    await dynamics.aclose()
    await session.aclose()


async def test_aclose_detaches_and_cancels_everything(harness: Harness) -> None:
    harness.participant.answer = never
    session: AgentSession[Any] = AgentSession()
    dynamics = await harness.start(session)
    session.emit("user_input_transcribed", speech("hello"))
    await harness.participant.called.wait()
    await dynamics.aclose()
    assert harness.participant.cancelled == 1
    assert not dynamics.active
    harness.clock.advance(60)
    session.emit("user_input_transcribed", speech("haha"))
    session.emit("conversation_item_added", message("user", "haha", None))
    await settle()
    assert harness.sent() == [WAVE]
    await dynamics.aclose()


async def test_the_tool_is_offered_to_the_running_agent_and_performs(harness: Harness) -> None:
    call = llm.FunctionToolCall(
        name=TOOL_NAME, arguments='{"gesture": "blow_kiss_heart"}', call_id="call-1"
    )
    session: AgentSession[Any] = AgentSession(
        llm=ScriptedLLM(llm.ChoiceDelta(role="assistant", tool_calls=[call]))
    )
    await session.start(Agent(instructions="Be brief."))
    dynamics = await harness.start(session, dynamics_function_tool=True)
    assert dynamics.tool is not None
    assert [tool.id for tool in session.current_agent.tools] == [TOOL_NAME]
    schema = dynamics.tool.info.raw_schema["parameters"]["properties"]["gesture"]
    assert schema["enum"] == GESTURES
    result: RunResult[None] = await session.run(user_input="blow me a kiss")
    result.expect.next_event().is_function_call(name=TOOL_NAME)
    result.expect.next_event().is_function_call_output()
    result.expect.next_event().is_message(role="assistant")
    await settle()
    assert harness.sent() == ["blow_kiss_heart"]
    await dynamics.aclose()
    await session.aclose()


async def test_the_tool_refuses_unknown_gestures_and_reports_pacing(harness: Harness) -> None:
    session: AgentSession[Any] = AgentSession()
    dynamics = await harness.start(session, dynamics_function_tool=True)
    assert dynamics.tool is not None
    with pytest.raises(llm.ToolError, match="unknown gesture 'moonwalk'"):
        await dynamics.tool(raw_arguments={"gesture": "moonwalk"})
    assert "performing" in await dynamics.tool(raw_arguments={"gesture": LAUGH})
    assert "Skipped" in await dynamics.tool(raw_arguments={"gesture": LAUGH})
    await settle()
    assert harness.sent() == [LAUGH]
    await dynamics.aclose()


async def test_no_tool_unless_enabled(harness: Harness) -> None:
    session: AgentSession[Any] = AgentSession(llm=ScriptedLLM())
    await session.start(Agent(instructions="Be brief."))
    dynamics = await harness.start(session)
    assert dynamics.tool is None and session.current_agent.tools == []
    await dynamics.aclose()
    await session.aclose()


class BrokenTarget:
    def is_ready(self) -> bool:
        raise RuntimeError("broken target")

    async def perform(self, gesture: str) -> Outcome:
        raise AssertionError("never reached")


async def test_a_failing_trigger_is_logged_once_and_never_raised(
    stub: BithumanStub, logged: pytest.LogCaptureFixture
) -> None:
    session: AgentSession[Any] = AgentSession()
    dynamics = await Dynamics.start(
        session=session,
        target=BrokenTarget(),
        settings=DynamicsSettings(bithuman_api_secret=stub.secret, bithuman_rest_url=stub.url),
        agent_id="A1",
        cache=CatalogCache(),
    )
    session.emit("user_input_transcribed", speech("hello"))
    session.emit("user_input_transcribed", speech("haha"))
    assert dynamics.react("hello again", source="user_speech") is None
    assert lines(logged) == ["gesture trigger failed"]
    await dynamics.aclose()
