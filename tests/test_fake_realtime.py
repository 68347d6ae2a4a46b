"""The OpenAI Realtime stand-in, exercised through the real livekit-agents client.

Every test drives `livekit.plugins.openai.realtime.RealtimeModel` (and mostly a real
`AgentSession`) against the fake on a local port, so they also pin down how the client reacts to
errors and disconnects: that is what the agent's own tests and code build on.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from livekit.agents import Agent, AgentSession, APIConnectOptions, APIError, llm
from livekit.agents.metrics.usage import LLMModelUsage, STTModelUsage
from livekit.agents.types import NOT_GIVEN, NotGivenOr
from livekit.agents.vad import VAD
from livekit.agents.voice import io
from livekit.agents.voice.events import (
    CloseReason,
    ErrorEvent,
)
from livekit.agents.voice.run_result import RunResult
from livekit.plugins import silero
from livekit.plugins.openai.realtime import RealtimeModel
from openai.types.realtime import AudioTranscription
from openai.types.realtime.realtime_server_event import RealtimeServerEvent
from pydantic import TypeAdapter

from tests.fakes.openai_realtime import (
    GREETING,
    SAMPLE_RATE,
    WAIT_TIMEOUT_S,
    FakeRealtimeServer,
    ReplyContext,
    ScriptedError,
)
from tests.fakes.session_io import Microphone, SessionEvents, Speaker, pcm_frames

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVER_EVENT = TypeAdapter[Any](RealtimeServerEvent)


# -- helpers: a real AgentSession wired to the fake, and what it emits ----------------------


def model_for(server: FakeRealtimeServer, **options: Any) -> RealtimeModel:
    return RealtimeModel(base_url=server.base_url, api_key="test", **options)


@asynccontextmanager
async def agent_session(
    server: FakeRealtimeServer,
    *,
    instructions: str = "You are a test agent.",
    vad: VAD | None = None,
    audio_output: io.AudioOutput | None = None,
    fatal: bool = False,
    aec_warmup_duration: NotGivenOr[float | None] = NOT_GIVEN,
    **model_options: Any,
) -> AsyncIterator[tuple[AgentSession[None], SessionEvents]]:
    """A started session with a RealtimeModel on the fake (`model_options` go to the model).

    `fatal`: the test ends the realtime session with an unrecoverable error, which
    livekit-agents 1.8.9 re-raises from whichever close runs first (the session's own or ours),
    so `aclose()` may raise it. During `aec_warmup_duration` (3 s from the agent's first word by
    default) the session forwards silence to the model instead of the user's audio.
    """
    model = model_for(server, **model_options)
    session: AgentSession[None] = AgentSession(
        llm=model, vad=vad, aec_warmup_duration=aec_warmup_duration
    )
    events = SessionEvents(session)
    if audio_output is not None:
        session.output.audio = audio_output
    await session.start(Agent(instructions=instructions))
    try:
        yield session, events
    finally:
        try:
            await session.aclose()
        except APIError:
            if not fatal:
                raise
        await model.aclose()


def next_reply(result: RunResult[None]) -> llm.ChatMessage:
    """The run's next event, which must be an assistant message."""
    return result.expect.next_event().is_message(role="assistant").event().item


def error_code(event: ErrorEvent) -> str | None:
    """The `code` of the OpenAI error body the client attached to its APIError."""
    error = event.error.error
    assert isinstance(error, APIError)
    code: str | None = getattr(error.body, "code", None)
    return code


def assert_speaks_openai_protocol(server: FakeRealtimeServer) -> None:
    """Every event the fake sent validates against the openai package's server event types."""
    for conn in server.connections:
        for event in conn.sent:
            SERVER_EVENT.validate_python(event)


# -- conversation ---------------------------------------------------------------------------


async def test_text_turn_gets_the_scripted_reply(realtime_server: FakeRealtimeServer) -> None:
    realtime_server.script.replies.append("Hi there, nice to meet you.")
    async with agent_session(realtime_server) as (session, events):
        first: RunResult[None] = await session.run(user_input="hello")
        assert next_reply(first).text_content == "Hi there, nice to meet you."
        first.expect.no_more_events()

        second: RunResult[None] = await session.run(user_input="how are you")
        reply = next_reply(second)
        assert reply.text_content == "You said: how are you."  # the default rule
        assert events.said("user") == ["hello", "how are you"]

    created = realtime_server.received_of("conversation.item.create")
    assert [c["item"]["content"] for c in created] == [
        [{"type": "input_text", "text": "hello"}],
        [{"type": "input_text", "text": "how are you"}],
    ]
    assert len(realtime_server.received_of("response.create")) == 2
    assert_speaks_openai_protocol(realtime_server)


async def test_connection_and_session_settings_reach_the_server(
    realtime_server: FakeRealtimeServer,
) -> None:
    async with agent_session(
        realtime_server,
        instructions="Speak like a pirate.",
        model="gpt-realtime-mini",
        voice="cedar",
        input_audio_transcription=AudioTranscription(model="gpt-4o-transcribe"),
    ):
        await realtime_server.wait_for("session.update", count=2)

    conn = realtime_server.connections[0]
    assert conn.query == {"model": "gpt-realtime-mini"}
    assert conn.headers["Authorization"] == "Bearer test"
    first_update = conn.received[0]["session"]
    assert first_update["model"] == "gpt-realtime-mini"
    assert first_update["audio"]["output"]["voice"] == "cedar"
    assert first_update["audio"]["input"]["transcription"]["model"] == "gpt-4o-transcribe"
    assert first_update["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert first_update["audio"]["input"]["turn_detection"]["type"] == "semantic_vad"
    # instructions follow in their own update; the merged session has them all
    assert conn.session["instructions"] == "Speak like a pirate."
    assert conn.session["audio"]["output"]["voice"] == "cedar"
    assert realtime_server.sent_of("session.created")
    assert realtime_server.sent_of("session.updated")[-1]["session"] == conn.session


async def test_greeting_from_generate_reply(realtime_server: FakeRealtimeServer) -> None:
    async with agent_session(realtime_server, instructions="Be brief.") as (session, events):
        await session.generate_reply(instructions="Greet the user warmly.")
        assert events.said("assistant") == [GREETING]

    request = realtime_server.received_of("response.create")[0]
    assert request["response"]["instructions"] == "Be brief.\nGreet the user warmly."
    assert request["response"]["metadata"]["client_event_id"] == request["event_id"]
    created = realtime_server.sent_of("response.created")[0]["response"]
    assert created["metadata"] == request["response"]["metadata"]


async def test_reply_rule_sees_user_text_and_instructions(
    realtime_server: FakeRealtimeServer,
) -> None:
    seen: list[ReplyContext] = []

    def rule(ctx: ReplyContext) -> str:
        seen.append(ctx)
        return f"reply {ctx.response_number}"

    realtime_server.script.reply_rule = rule
    async with agent_session(realtime_server, instructions="Persona.") as (session, events):
        await session.generate_reply(instructions="Greet.")
        await session.run(user_input="question")

    assert [(c.user_text, c.instructions) for c in seen] == [
        (None, "Persona.\nGreet."),
        ("question", "Persona."),
    ]
    assert events.said("assistant") == ["reply 1", "reply 2"]


async def test_reply_audio_is_pcm_of_the_scripted_length(
    realtime_server: FakeRealtimeServer,
) -> None:
    realtime_server.script.replies.append("Twelve chars")
    speaker = Speaker()
    try:
        async with agent_session(realtime_server, audio_output=speaker) as (session, _):
            await session.run(user_input="hello")
    finally:
        await speaker.aclose()

    assert speaker.played_ms == 12 * realtime_server.script.ms_per_char
    assert {(f.sample_rate, f.num_channels) for f in speaker.frames} == {(SAMPLE_RATE, 1)}
    pcm = np.frombuffer(b"".join(bytes(f.data) for f in speaker.frames), dtype="<i2")
    assert np.abs(pcm).max() > 5000  # the tone, not silence
    deltas = realtime_server.sent_of("response.output_audio.delta")
    assert sum(len(base64.b64decode(d["delta"])) for d in deltas) == pcm.nbytes


async def test_interrupting_the_agent_cancels_the_response(
    realtime_server: FakeRealtimeServer,
) -> None:
    realtime_server.script.replies.append(" ".join(["word"] * 40))
    realtime_server.script.delta_delay_s = 0.05  # leave room to interrupt mid-stream
    speaker = Speaker()
    try:
        async with agent_session(realtime_server, audio_output=speaker) as (session, events):
            handle = session.generate_reply()
            await asyncio.wait_for(speaker.frame_arrived.wait(), WAIT_TIMEOUT_S)
            handle.interrupt()
            await handle
            await realtime_server.wait_for("conversation.item.truncate")
            await realtime_server.wait_for_sent("response.done")
    finally:
        await speaker.aclose()

    assert realtime_server.received_of("response.cancel")
    done = realtime_server.sent_of("response.done")[0]["response"]
    assert done["status"] == "cancelled"
    assert done["status_details"]["reason"] == "client_cancelled"
    [message] = events.messages
    assert message.interrupted
    assert 0 < len(message.text_content or "") < len(" ".join(["word"] * 40))
    assert_speaks_openai_protocol(realtime_server)


# -- audio input: server VAD and scripted transcription --------------------------------------


async def test_spoken_turn_is_transcribed_then_answered(
    realtime_server: FakeRealtimeServer,
) -> None:
    realtime_server.script.transcripts.append("what time is it")
    microphone = Microphone()
    async with agent_session(realtime_server, vad=silero.VAD.load()) as (session, events):
        session.input.audio = microphone
        await microphone.speak(pcm_frames(600, 300) + pcm_frames(900, 0))
        await events.wait(lambda: bool(events.said("assistant")))

    finals = [t for t in events.transcripts if t.is_final]
    assert [t.transcript for t in finals] == ["what time is it"]
    assert events.said("user") == ["what time is it"]
    assert events.said("assistant") == ["You said: what time is it."]

    [started] = realtime_server.sent_of("input_audio_buffer.speech_started")
    [stopped] = realtime_server.sent_of("input_audio_buffer.speech_stopped")
    assert started["audio_start_ms"] == 0
    # 600 ms of tone, then the fake's 500 ms of silence for semantic_vad (the client's default);
    # 10 ms windows and resampler latency blur it a little
    assert 1080 <= stopped["audio_end_ms"] <= 1120
    [committed] = realtime_server.sent_of("input_audio_buffer.committed")
    assert started["item_id"] == stopped["item_id"] == committed["item_id"]
    # the reply was the server's own (server VAD answers by itself), not a response.create
    assert realtime_server.received_of("response.create") == []
    stt = [u for u in events.usage[-1].usage.model_usage if isinstance(u, STTModelUsage)]
    assert stt[0].model == "gpt-4o-mini-transcribe"
    assert stt[0].audio_duration == pytest.approx(stopped["audio_end_ms"] / 1000, abs=0.1)
    assert_speaks_openai_protocol(realtime_server)


async def test_speaking_over_the_agent_cancels_its_reply(
    realtime_server: FakeRealtimeServer,
) -> None:
    realtime_server.script.replies.append(" ".join(["word"] * 40))
    realtime_server.script.delta_delay_s = 0.05
    realtime_server.script.transcripts.append("stop please")
    microphone, speaker = Microphone(), Speaker()
    try:
        # no echo-cancellation warm-up: the model hears the user from the agent's first word
        async with agent_session(
            realtime_server, audio_output=speaker, aec_warmup_duration=None
        ) as (session, events):
            session.input.audio = microphone
            session.generate_reply()
            await asyncio.wait_for(speaker.frame_arrived.wait(), WAIT_TIMEOUT_S)
            await microphone.speak(pcm_frames(400, 300))
            # the client cancels on speech start; let that settle before the turn ends, as the
            # user's remaining 500 ms of speech and silence would in real time
            await events.wait(lambda: any(m.interrupted for m in events.messages))
            await microphone.speak(pcm_frames(700, 0))
            await events.wait(lambda: len(events.said("assistant")) == 2)
    finally:
        await speaker.aclose()

    first = realtime_server.sent_of("response.done")[0]["response"]
    assert first["status"] == "cancelled"
    assert first["status_details"]["reason"] == "turn_detected"
    cut, answer = [m for m in events.messages if m.role == "assistant"]
    assert cut.interrupted
    assert answer.text_content == "You said: stop please."
    assert events.said("user") == ["stop please"]


async def test_text_modality_streams_text(realtime_server: FakeRealtimeServer) -> None:
    async with agent_session(realtime_server, modalities=["text"]) as (session, _):
        result: RunResult[None] = await session.run(user_input="hello")
        reply = next_reply(result)
        assert reply.text_content == "You said: hello."

    assert realtime_server.connections[0].session["output_modalities"] == ["text"]
    assert realtime_server.sent_of("response.output_audio.delta") == []
    assert len(realtime_server.sent_of("response.output_text.delta")) == 3
    assert_speaks_openai_protocol(realtime_server)


async def test_manual_commit_without_server_vad(realtime_server: FakeRealtimeServer) -> None:
    realtime_server.script.transcripts.append("manual turn")
    model = model_for(realtime_server, turn_detection=None)
    rt = model.session()
    transcripts: list[llm.InputTranscriptionCompleted] = []
    rt.on("input_audio_transcription_completed", transcripts.append)
    try:
        rt.commit_audio()  # nothing pushed yet: the client itself holds it back
        for frame in pcm_frames(300, 300):
            rt.push_audio(frame)
        rt.commit_audio()
        await realtime_server.wait_for("input_audio_buffer.commit")
        generation = await rt.generate_reply()
        message = await anext(aiter(generation.message_stream))
        text = "".join([chunk async for chunk in message.text_stream])
    finally:
        await rt.aclose()
        await model.aclose()

    assert [t.transcript for t in transcripts if t.is_final] == ["manual turn"]
    assert text == "You said: manual turn."
    assert realtime_server.sent_of("input_audio_buffer.speech_started") == []
    assert len(realtime_server.received_of("input_audio_buffer.commit")) == 1


# -- usage ------------------------------------------------------------------------------------


async def test_usage_from_response_done_reaches_the_session(
    realtime_server: FakeRealtimeServer,
) -> None:
    async with agent_session(realtime_server) as (session, events):
        await session.run(user_input="hello")
        await session.run(user_input="again")
        await events.wait(lambda: len(events.usage) >= 2)
        final_usage = session.usage

    sent = [d["response"]["usage"] for d in realtime_server.sent_of("response.done")]
    [usage] = [u for u in final_usage.model_usage if isinstance(u, LLMModelUsage)]
    assert usage.model == "gpt-realtime"
    assert usage.provider == realtime_server.base_url.split("//")[1].removesuffix("/v1")
    assert usage.input_tokens == sum(u["input_tokens"] for u in sent)
    assert usage.output_tokens == sum(u["output_tokens"] for u in sent)
    assert usage.output_audio_tokens == sum(u["output_token_details"]["audio_tokens"] for u in sent)
    assert usage.input_text_tokens == sum(u["input_token_details"]["text_tokens"] for u in sent)
    # the second response also reads the first exchange, so it costs more input
    assert sent[1]["input_tokens"] > sent[0]["input_tokens"] > 0
    assert events.usage[-1].usage.model_usage == final_usage.model_usage


# -- errors and disconnects -------------------------------------------------------------------


async def test_error_event_is_reported_and_the_session_carries_on(
    realtime_server: FakeRealtimeServer,
) -> None:
    async with agent_session(realtime_server) as (session, events):
        await realtime_server.wait_for_connections(1)
        await realtime_server.send_error(
            type="invalid_request_error", code="unknown_parameter", message="Unknown parameter."
        )
        await events.wait(lambda: bool(events.errors))
        result: RunResult[None] = await session.run(user_input="still there?")
        next_reply(result)

    [error] = events.errors
    assert error.error.recoverable is True
    assert error_code(error) == "unknown_parameter"
    assert [c.reason for c in events.closes] == [CloseReason.USER_INITIATED]
    assert len(realtime_server.connections) == 1


async def test_rejected_response_create_fails_the_turn(
    realtime_server: FakeRealtimeServer,
) -> None:
    realtime_server.script.fail_responses.append(
        ScriptedError(type="invalid_request_error", code="invalid_value", message="Bad request.")
    )
    async with agent_session(realtime_server) as (session, events):
        with pytest.raises(llm.RealtimeError, match=r"^Bad request\.$"):
            await session.run(user_input="hello")
        result: RunResult[None] = await session.run(user_input="hello again")
        next_reply(result)

    assert [e.error.recoverable for e in events.errors] == [True]
    error = realtime_server.sent_of("error")[0]["error"]
    assert error["event_id"] == realtime_server.received_of("response.create")[0]["event_id"]


async def test_failed_response_is_a_recoverable_error(
    realtime_server: FakeRealtimeServer,
) -> None:
    realtime_server.script.fail_responses.append(
        ScriptedError(code="rate_limit_exceeded", type="server_error", as_failed_response=True)
    )
    async with agent_session(realtime_server) as (session, events):
        failed: RunResult[None] = await session.run(user_input="hello")
        assert failed.events == []
        retried: RunResult[None] = await session.run(user_input="hello again")
        next_reply(retried)

    [error] = events.errors
    assert error.error.recoverable is True
    assert "server_error" in str(error.error.error)
    assert events.said("assistant") == ["You said: hello again."]


async def test_drop_mid_response_reconnects_and_replays_history(
    realtime_server: FakeRealtimeServer,
) -> None:
    words = " ".join(f"w{i}" for i in range(12))
    realtime_server.script.replies.append(words)
    realtime_server.script.drop_mid_response = 2
    async with agent_session(realtime_server, instructions="Persona.") as (session, events):
        first: RunResult[None] = await session.run(user_input="hello")
        await realtime_server.wait_for_connections(2)
        await realtime_server.wait_for("conversation.item.create", count=2)
        second: RunResult[None] = await session.run(user_input="are you back?")

    # the client keeps what arrived before the drop, unflagged, and reconnects at once
    cut = next_reply(first)
    assert cut.text_content == "w0 w1 w2 " and not cut.interrupted
    assert next_reply(second).text_content == "You said: are you back?."
    [error] = events.errors
    assert error.error.recoverable is True
    assert "closed unexpectedly" in str(error.error.error)
    assert [c.reason for c in events.closes] == [CloseReason.USER_INITIATED]
    # the new connection gets the session and the confirmed history (the cut reply is not)
    replay = realtime_server.connections[1].received
    assert replay[0]["type"] == "session.update"
    assert replay[0]["session"]["instructions"] == "Persona."
    assert replay[1]["type"] == "conversation.item.create"
    assert replay[1]["item"]["content"] == [{"type": "input_text", "text": "hello"}]


async def test_drop_between_turns_is_survived(realtime_server: FakeRealtimeServer) -> None:
    async with agent_session(realtime_server) as (session, events):
        await session.run(user_input="hello")
        realtime_server.drop_connections()
        await realtime_server.wait_for_connections(2)
        # the replay confirms both items of the first exchange before the next turn
        await realtime_server.wait_for("conversation.item.create", count=3)
        result: RunResult[None] = await session.run(user_input="still there?")
        next_reply(result)

    replayed = [e["item"]["role"] for e in realtime_server.connections[1].received[1:3]]
    assert replayed == ["user", "assistant"]
    assert events.said("assistant") == ["You said: hello.", "You said: still there?."]
    assert [e.error.recoverable for e in events.errors] == [True]


async def test_refused_handshake_is_retried(realtime_server: FakeRealtimeServer) -> None:
    realtime_server.script.fail_connections = 1
    async with agent_session(realtime_server) as (session, events):
        result: RunResult[None] = await session.run(user_input="hello")
        next_reply(result)

    assert realtime_server.refused_connections == 1
    assert len(realtime_server.connections) == 1
    [error] = events.errors
    assert error.error.recoverable is True
    assert "503" in str(error.error.error.__cause__)


async def test_retries_exhausted_is_unrecoverable(realtime_server: FakeRealtimeServer) -> None:
    realtime_server.script.fail_connections = 10
    retry_fast = APIConnectOptions(max_retry=2, retry_interval=0.0)
    async with agent_session(realtime_server, conn_options=retry_fast, fatal=True) as (_, events):
        await events.wait(lambda: any(not e.error.recoverable for e in events.errors))

    assert [e.error.recoverable for e in events.errors] == [True, True, False]
    assert realtime_server.refused_connections == 3
    # livekit-agents 1.8.9: closing re-raises the realtime failure before `close` is emitted,
    # so no `close` event ever comes; the agent has to act on the unrecoverable `error` itself
    assert events.closes == []


async def test_fatal_error_stops_the_client_without_reconnecting(
    realtime_server: FakeRealtimeServer,
) -> None:
    async with agent_session(realtime_server, fatal=True) as (_, events):
        await realtime_server.wait_for_connections(1)
        await realtime_server.send_error(
            type="insufficient_quota", code="insufficient_quota", message="Quota exceeded."
        )
        await events.wait(lambda: bool(events.errors))

    [error] = events.errors
    assert error.error.recoverable is False
    assert error_code(error) == "insufficient_quota"
    # the unrecoverable error is emitted as the reconnect loop exits: nothing follows it
    assert len(realtime_server.connections) == 1
    assert events.closes == []  # see test_retries_exhausted_is_unrecoverable


async def test_wrong_api_key_is_fatal(realtime_server: FakeRealtimeServer) -> None:
    realtime_server.script.api_key = "the-right-key"
    async with agent_session(realtime_server, fatal=True) as (_, events):
        await events.wait(lambda: bool(events.errors))

    [error] = events.errors
    assert error.error.recoverable is False
    assert error_code(error) == "invalid_api_key"
    assert len(realtime_server.connections) == 1
    assert events.closes == []


# -- the stand-in as a subprocess --------------------------------------------------------------


async def test_subprocess_prints_its_url_and_follows_a_script_file(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"replies": ["From the script file."], "ms_per_char": 5}))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.openai_realtime",
        "--port",
        "0",
        "--script",
        str(script),
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            base_url = (await proc.stdout.readline()).decode().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        model = RealtimeModel(base_url=base_url, api_key="test")
        session: AgentSession[None] = AgentSession(llm=model)
        await session.start(Agent(instructions="Be brief."))
        try:
            result: RunResult[None] = await session.run(user_input="hello")
            reply = next_reply(result)
            assert reply.text_content == "From the script file."
        finally:
            await session.aclose()
            await model.aclose()
    finally:
        proc.terminate()
        async with asyncio.timeout(10):
            returncode = await proc.wait()
    assert returncode == 0
