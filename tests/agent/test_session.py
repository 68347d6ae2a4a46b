"""The agent's own session (persona, greeting, realtime settings, turn handling) against the
OpenAI Realtime stand-in, driven through the real livekit-agents client with no room."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from livekit import rtc
from livekit.agents import Agent, AgentSession, APIError
from livekit.agents.testing import fake_job_context
from livekit.plugins import silero

from agent.entrypoint import watch
from agent.session import build_agent, build_session
from agent.settings import AgentSettings
from agent.usage import UsageTracker
from devkit.openai_realtime import GREETING, FakeRealtimeServer
from tests.fakes.session_io import Microphone, SessionEvents, Speaker, pcm_frames

PERSONA = "You are Ada, the avatar of the test suite."
GREETING_INSTRUCTIONS = "Welcome the tester by name."


def settings_for(server: FakeRealtimeServer, **overrides: Any) -> AgentSettings:
    values: dict[str, Any] = {
        "openai_api_key": "sk-test",
        "openai_base_url": server.base_url,
        "openai_voice": "cedar",
        "agent_prompt": PERSONA,
        "agent_greeting": GREETING_INSTRUCTIONS,
    }
    return AgentSettings(_env_file=None, **(values | overrides))  # type: ignore[call-arg]


@asynccontextmanager
async def running(
    settings: AgentSettings, agent: Agent | None = None, **session_kw: Any
) -> AsyncIterator[tuple[AgentSession[None], SessionEvents, Speaker]]:
    session = build_session(settings, **({"vad_model": None} | session_kw))
    events = SessionEvents(session)
    speaker = Speaker()
    session.output.audio = speaker
    await session.start(agent or build_agent(settings))
    try:
        yield session, events, speaker
    finally:
        with contextlib.suppress(APIError):  # 1.8.9 re-raises an unrecoverable realtime error
            await session.aclose()
        await speaker.aclose()
        await session.llm.aclose()  # type: ignore[union-attr]  (outside a job: our http session)


async def test_greets_once_then_answers_a_user_turn_with_audio(
    realtime_server: FakeRealtimeServer,
) -> None:
    realtime_server.script.replies.extend([GREETING, "It is sunny in the test suite."])
    async with running(settings_for(realtime_server)) as (session, events, speaker):
        await events.wait(lambda: events.said("assistant") == [GREETING])
        (greeting_request,) = realtime_server.received_of("response.create")
        # livekit adds the greeting's instructions to the persona's for this one response
        instructions = greeting_request["response"]["instructions"]
        assert instructions.startswith(PERSONA) and instructions.endswith(GREETING_INSTRUCTIONS)

        result = await session.run(user_input="How is the weather?")
        reply = result.expect.next_event().is_message(role="assistant").event().item
        assert reply.text_content == "It is sunny in the test suite."
        await events.wait(lambda: speaker.played_ms >= 1000)
        assert speaker.frames[0].sample_rate == 24_000

    update = realtime_server.connections[0].session  # every session.update, merged
    assert update["instructions"] == PERSONA
    assert update["audio"]["output"]["voice"] == "cedar"
    transcription = update["audio"]["input"]["transcription"]
    assert transcription["model"] == "gpt-4o-mini-transcribe"
    assert realtime_server.connections[0].query["model"] == "gpt-realtime"
    assert len(realtime_server.received_of("response.create")) == 2, "greeted exactly once"


async def test_spoken_turn_is_transcribed_and_answered(
    realtime_server: FakeRealtimeServer,
) -> None:
    realtime_server.script.transcripts.append("that's so funny")
    settings = settings_for(realtime_server)
    mic = Microphone()
    # a plain persona without greeting: the agent's first words would start the echo-cancel
    # warm-up, during which the session sends the model silence instead of the microphone
    async with running(settings, Agent(instructions=PERSONA), vad_model=silero.VAD.load()) as (
        session,
        events,
        _,
    ):
        session.input.audio = mic
        await mic.speak(pcm_frames(800, 440) + pcm_frames(900, 0))
        await events.wait(lambda: any(t.is_final for t in events.transcripts))
        final = next(t for t in events.transcripts if t.is_final)
        assert final.transcript == "that's so funny"
        await events.wait(lambda: events.said("assistant") == ["You said: that's so funny."])


async def test_a_realtime_disconnect_mid_reply_is_survived(
    realtime_server: FakeRealtimeServer,
) -> None:
    realtime_server.script.replies.extend([GREETING, "This reply will be cut off mid-way."])
    async with running(settings_for(realtime_server)) as (session, events, _):
        await events.wait(lambda: events.said("assistant") == [GREETING])
        realtime_server.script.drop_mid_response = 2
        await session.run(user_input="Tell me something long.")
        await realtime_server.wait_for_connections(2)
        result = await session.run(user_input="Are you still there?")
        reply = result.expect.next_event().is_message(role="assistant").event().item
        assert reply.text_content == "You said: Are you still there?."
        assert events.closes == []
        assert all(e.error.recoverable for e in events.errors)


async def test_an_unrecoverable_realtime_error_ends_the_job_with_a_logged_reason(
    realtime_server: FakeRealtimeServer, caplog: pytest.LogCaptureFixture
) -> None:
    realtime_server.script.api_key = "the-only-valid-key"  # ours is refused: invalid_api_key
    settings = settings_for(realtime_server)
    shutdowns: list[str] = []
    shut = asyncio.Event()

    def on_shutdown(reason: str) -> None:
        shutdowns.append(reason)
        shut.set()

    with fake_job_context(room=rtc.Room()) as ctx:
        ctx._on_shutdown = on_shutdown  # what the job process would be told
        session = build_session(settings, vad_model=None)
        watch(ctx, session, UsageTracker(session))
        with caplog.at_level(logging.INFO):
            await session.start(Agent(instructions=PERSONA))
            await asyncio.wait_for(shut.wait(), 10)
    assert shutdowns == ["unrecoverable RealtimeModel error"]
    errors = [r for r in caplog.records if r.getMessage() == "session error"]
    assert errors and errors[-1].recoverable is False  # type: ignore[attr-defined]
    assert "invalid_api_key" in errors[-1].error or "API key" in errors[-1].error  # type: ignore[attr-defined]
    assert "sk-test" not in caplog.text


async def test_usage_counts_tokens_speech_and_duration(
    realtime_server: FakeRealtimeServer,
) -> None:
    ticks = itertools.count()  # a clock that moves one second per reading
    async with running(settings_for(realtime_server)) as (session, events, _):
        usage = UsageTracker(session, clock=lambda: float(next(ticks)))
        await events.wait(lambda: len(events.said("assistant")) == 1)
        await session.run(user_input="Count this turn, please.")
        summary = usage.summary()
    assert summary["input_tokens"] > 0 and summary["output_tokens"] > 0
    assert summary["output_audio_tokens"] > 0
    assert summary["duration_s"] > 0
    # the speaking states reached the tracker: the reply's start and end were clocked
    assert summary["agent_speech_s"] >= 1


def test_speech_clock_adds_up_speaking_intervals() -> None:
    from agent.usage import SpeechClock

    now = [0.0]
    clock = SpeechClock(lambda: now[0])
    for at, speaking in [(1.0, True), (3.5, False), (4.0, False), (10.0, True)]:
        now[0] = at
        clock.update(speaking)
    now[0] = 11.0
    assert clock.total() == pytest.approx(3.5)
