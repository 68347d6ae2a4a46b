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

import aiohttp
import numpy as np
import pytest
from livekit.agents import Agent, AgentSession, APIConnectOptions, APIError, function_tool, llm
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
from openai.types.realtime import AudioTranscription, RealtimeReasoning
from openai.types.realtime.realtime_audio_input_turn_detection import ServerVad
from openai.types.realtime.realtime_server_event import RealtimeServerEvent
from pydantic import TypeAdapter, ValidationError

from devkit.openai_realtime import (
    GREETING,
    SAMPLE_RATE,
    WAIT_TIMEOUT_S,
    FakeRealtimeServer,
    FunctionCall,
    ReplyContext,
    Script,
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
    agent: Agent | None = None,
    vad: VAD | None = None,
    audio_output: io.AudioOutput | None = None,
    fatal: bool = False,
    aec_warmup_duration: NotGivenOr[float | None] = NOT_GIVEN,
    **model_options: Any,
) -> AsyncIterator[tuple[AgentSession[None], SessionEvents]]:
    """A started session with a RealtimeModel on the fake (`model_options` go to the model),
    running `agent` (default: a plain Agent with `instructions`).

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
    await session.start(agent or Agent(instructions=instructions))
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


class RawClient:
    """A bare websocket client: sends events as given, reads the server's events one by one."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []  # everything read so far

    async def send(self, event: dict[str, Any]) -> None:
        await self.ws.send_json(event)

    async def next(self, type: str | None = None) -> dict[str, Any]:
        """The next server event (of `type`, skipping others); fails after WAIT_TIMEOUT_S."""
        async with asyncio.timeout(WAIT_TIMEOUT_S):
            while True:
                event: dict[str, Any] = await self.ws.receive_json()
                self.events.append(event)
                if type is None or event["type"] == type:
                    return event

    async def until(self, type: str) -> list[dict[str, Any]]:
        """Every server event up to and including the next one of `type`."""
        start = len(self.events)
        await self.next(type)
        return self.events[start:]


@asynccontextmanager
async def raw_client(server: FakeRealtimeServer) -> AsyncIterator[RawClient]:
    """Connected as the real client connects, with `session.created` already read."""
    url = server.base_url.replace("http://", "ws://") + "/realtime?model=gpt-realtime"
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(url, headers={"Authorization": "Bearer test"}) as ws,
    ):
        client = RawClient(ws)
        await client.next("session.created")
        yield client


class WeatherAgent(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="Answer weather questions with the tool.")
        self.calls: list[tuple[str, int]] = []

    @function_tool
    async def get_weather(self, city: str, days: int) -> str:
        """Look up the weather forecast for a city.

        Args:
            city: The city.
            days: How many days ahead.
        """
        self.calls.append((city, days))
        return f"Sunny in {city} for {days} days"


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


# -- session.update validation, as the GA service does it -----------------------------------------


@pytest.mark.parametrize(
    ("bad_update", "param"),
    [
        ({"voice": "cedar"}, "session.voice"),  # a beta-era field: GA has audio.output.voice
        (
            {"audio": {"input": {"turn_detection": {"type": "server_vad", "silence_ms": 300}}}},
            "session.audio.input.turn_detection.silence_ms",
        ),
        (
            {"tools": [{"type": "function", "name": "f", "parameters": {}, "meta": {}}]},
            "session.tools[0].meta",  # what livekit-agents 1.2.6 once sent (agents#3210)
        ),
    ],
)
async def test_unknown_session_field_is_refused_and_nothing_applied(
    realtime_server: FakeRealtimeServer, bad_update: dict[str, Any], param: str
) -> None:
    async with raw_client(realtime_server) as client:
        await client.send(
            {
                "type": "session.update",
                "event_id": "evt_bad_update",
                "session": {"type": "realtime", "instructions": "Never applied.", **bad_update},
            }
        )
        error = await client.next()
        # the session is still open and takes a valid update afterwards
        await client.send(
            {"type": "session.update", "session": {"type": "realtime", "instructions": "Applied."}}
        )
        updated = await client.next()

    assert error == {
        "type": "error",
        "event_id": error["event_id"],  # the server's own id for the error event
        "error": {
            "type": "invalid_request_error",
            "code": "unknown_parameter",
            "message": f"Unknown parameter: '{param}'.",
            "param": param,
            "event_id": "evt_bad_update",
        },
    }
    assert updated["type"] == "session.updated"
    session = realtime_server.connections[0].session
    assert updated["session"] == session
    assert session["instructions"] == "Applied."
    assert "voice" not in session and session["tools"] == []
    assert session["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 200  # default
    assert "silence_ms" not in session["audio"]["input"]["turn_detection"]
    assert len(realtime_server.sent_of("session.updated")) == 1  # only the valid update's
    assert_speaks_openai_protocol(realtime_server)


@pytest.mark.parametrize(
    ("session", "code", "message"),
    [
        ({"instructions": "No type."}, "missing_required_parameter", "Missing required parameter"),
        ({"type": "transcription"}, "invalid_value", "Invalid value: 'transcription'"),
    ],
)
async def test_session_update_needs_type_realtime(
    realtime_server: FakeRealtimeServer, session: dict[str, Any], code: str, message: str
) -> None:
    async with raw_client(realtime_server) as client:
        await client.send({"type": "session.update", "event_id": "evt_1", "session": session})
        error = (await client.next("error"))["error"]
        await client.send({"type": "session.update", "session": {"type": "realtime"}})
        await client.next("session.updated")  # still open

    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error",
        code,
        "session.type",
    )
    assert error["message"].startswith(message) and error["event_id"] == "evt_1"
    assert realtime_server.connections[0].session["instructions"] == ""  # not applied


async def test_everything_livekit_sends_is_accepted(realtime_server: FakeRealtimeServer) -> None:
    """The client's session.update and item events, with most options set, pass validation."""
    agent = WeatherAgent()
    async with agent_session(
        realtime_server,
        agent=agent,
        model="gpt-realtime-mini",
        voice="cedar",
        modalities=["text"],
        input_audio_transcription=AudioTranscription(model="gpt-4o-transcribe", language="en"),
        input_audio_noise_reduction="near_field",
        turn_detection=ServerVad(
            type="server_vad", threshold=0.6, prefix_padding_ms=200, silence_duration_ms=400
        ),
        tool_choice="auto",
        speed=1.1,
        tracing="auto",
        truncation="disabled",
        reasoning=RealtimeReasoning(effort="low"),
    ) as (session, _):
        await session.run(user_input="hello")
        await agent.update_instructions("New instructions.")
        await realtime_server.wait_for_sent("session.updated", count=4)

    updates = realtime_server.received_of("session.update")
    assert len(updates) == 4  # options, tools, instructions, our update
    assert realtime_server.sent_of("error") == []
    assert len(realtime_server.sent_of("session.updated")) == 4
    session_state = realtime_server.connections[0].session
    assert [t["name"] for t in session_state["tools"]] == ["get_weather"]
    assert session_state["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 400
    assert session_state["instructions"] == "New instructions."


# -- scripted function calls -------------------------------------------------------------------


async def test_scripted_function_call_runs_the_tool_then_replies(
    realtime_server: FakeRealtimeServer,
) -> None:
    realtime_server.script.replies.extend(
        [
            FunctionCall(name="get_weather", arguments={"city": "Paris", "days": 3}),
            "It will be sunny in Paris.",
        ]
    )
    agent = WeatherAgent()
    async with agent_session(realtime_server, agent=agent) as (session, _):
        result: RunResult[None] = await session.run(user_input="Weather in Paris?")

    assert agent.calls == [("Paris", 3)]
    result.expect.next_event().is_function_call(
        name="get_weather", arguments={"city": "Paris", "days": 3}
    )
    result.expect.next_event().is_function_call_output(output="Sunny in Paris for 3 days")
    assert next_reply(result).text_content == "It will be sunny in Paris."
    result.expect.no_more_events()

    # the call streamed as the service streams one
    sent = realtime_server.connections[0].sent
    first_done = next(i for i, e in enumerate(sent) if e["type"] == "response.done")
    first_created = next(i for i, e in enumerate(sent) if e["type"] == "response.created")
    kinds = [e["type"] for e in sent[first_created : first_done + 1]]
    deltas = [e for e in sent if e["type"] == "response.function_call_arguments.delta"]
    assert kinds == [
        "response.created",
        "response.output_item.added",
        "conversation.item.added",
        *["response.function_call_arguments.delta"] * len(deltas),
        "response.function_call_arguments.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
    ]
    assert len(deltas) > 1
    assert json.loads("".join(d["delta"] for d in deltas)) == {"city": "Paris", "days": 3}
    added = realtime_server.sent_of("response.output_item.added")[0]["item"]
    assert (added["type"], added["name"], added["status"]) == (
        "function_call",
        "get_weather",
        "in_progress",
    )
    call = sent[first_done]["response"]["output"]
    assert [(c["type"], c["status"], c["call_id"]) for c in call] == [
        ("function_call", "completed", added["call_id"])
    ]
    # the tool's output went back under that call id, then the client asked for the reply
    received = realtime_server.connections[0].received
    output_at, output = next(
        (i, e["item"])
        for i, e in enumerate(received)
        if e["type"] == "conversation.item.create" and e["item"]["type"] == "function_call_output"
    )
    assert output["call_id"] == added["call_id"]
    assert output["output"] == "Sunny in Paris for 3 days"
    creates = [i for i, e in enumerate(received) if e["type"] == "response.create"]
    assert len(creates) == 2 and creates[0] < output_at < creates[1]
    assert realtime_server.sent_of("error") == []
    assert_speaks_openai_protocol(realtime_server)


async def test_parallel_calls_and_function_call_output_checks(
    realtime_server: FakeRealtimeServer,
) -> None:
    realtime_server.script.replies.append(
        [
            FunctionCall(name="lookup", arguments={"q": "a"}, call_id="call_a"),
            FunctionCall(name="lookup", arguments='{"q": "b"}'),
        ]
    )
    async with raw_client(realtime_server) as client:
        await client.send({"type": "response.create"})
        events = await client.until("response.done")

        async def create(item: dict[str, Any], event_id: str) -> dict[str, Any]:
            await client.send(
                {"type": "conversation.item.create", "event_id": event_id, "item": item}
            )
            return await client.next()

        unknown = await create(
            {"type": "function_call_output", "call_id": "call_nope", "output": "x"}, "evt_unknown"
        )
        no_output = await create(
            {"type": "function_call_output", "call_id": "call_a"}, "evt_no_out"
        )
        first = await create(
            {"type": "function_call_output", "call_id": "call_a", "output": "1"}, "evt_a"
        )
        second_id = events[-1]["response"]["output"][1]["call_id"]
        await create({"type": "function_call_output", "call_id": second_id, "output": "2"}, "evt_b")
        await client.send({"type": "response.create"})
        reply = await client.next("response.done")

    done = [e for e in events if e["type"] == "response.output_item.done"]
    assert [(d["output_index"], d["item"]["arguments"]) for d in done] == [
        (0, '{"q": "a"}'),
        (1, '{"q": "b"}'),
    ]
    assert done[0]["item"]["call_id"] == "call_a"
    assert second_id.startswith("call_") and second_id != "call_a"
    assert [o["call_id"] for o in events[-1]["response"]["output"]] == ["call_a", second_id]
    assert unknown["error"] == {
        "type": "invalid_request_error",
        "code": "invalid_tool_call_id",
        "message": "Tool call ID 'call_nope' not found in conversation.",
        "param": None,
        "event_id": "evt_unknown",
    }
    assert no_output["error"]["code"] == "missing_required_parameter"
    assert no_output["error"]["param"] == "item.output"
    assert no_output["error"]["event_id"] == "evt_no_out"
    assert first["type"] == "conversation.item.added"
    assert first["item"]["call_id"] == "call_a"
    # the refused outputs never entered the conversation
    outputs = [
        i for i in realtime_server.connections[0].items if i["type"] == "function_call_output"
    ]
    assert [o["output"] for o in outputs] == ["1", "2"]
    # with nothing scripted, the reply reports what the tools returned
    [message] = reply["response"]["output"]
    assert message["content"][0]["transcript"] == "The tool said: 1; 2."
    assert_speaks_openai_protocol(realtime_server)


def test_script_file_syntax_for_function_calls(tmp_path: Path) -> None:
    path = tmp_path / "script.json"
    path.write_text(
        json.dumps(
            {
                "replies": [
                    {"name": "get_weather", "arguments": {"city": "Paris", "days": 3}},
                    "It will be sunny in Paris.",
                    [{"name": "a"}, {"name": "b", "arguments": "{}", "call_id": "call_b"}],
                ]
            }
        )
    )
    script = Script.from_file(path)
    assert list(script.replies) == [
        FunctionCall(name="get_weather", arguments='{"city": "Paris", "days": 3}'),
        "It will be sunny in Paris.",
        [FunctionCall(name="a"), FunctionCall(name="b", call_id="call_b")],
    ]
    # a misspelt key, an empty list of calls, a call without a name
    bad_entries: list[Any] = [{"name": "f", "argument": {}}, [], {"arguments": "{}"}]
    for bad in bad_entries:
        path.write_text(json.dumps({"replies": [bad]}))
        with pytest.raises(ValidationError):
            Script.from_file(path)


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
        "devkit.openai_realtime",
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
