"""A stand-in for the OpenAI Realtime API: a local websocket server speaking its GA event protocol.

The real client (`livekit.plugins.openai.realtime.RealtimeModel`, protocol engine in
`livekit.agents.llm._realtime.openai`) talks to it through `base_url`, exactly as it talks to
api.openai.com: it connects to `{base_url}/realtime?model=...` with a bearer key and exchanges
JSON events. Nothing on the client side is replaced.

In-process (pytest; the fixture `realtime_server` is in tests/conftest.py)::

    async def test_turn(realtime_server: FakeRealtimeServer) -> None:
        realtime_server.script.replies.append("Hi there.")
        model = RealtimeModel(base_url=realtime_server.base_url, api_key="test")
        ...
        update = await realtime_server.wait_for("session.update")

As a subprocess (prints the base URL on the first line of stdout, then serves until SIGTERM)::

    python -m devkit.openai_realtime --port 0 [--script script.json]
    OPENAI_BASE_URL=<printed url> OPENAI_API_KEY=test python -m agent console --text

What it implements (one conversation per websocket, as on the real service):

- `session.created` on connect; `session.update` is merged into the session and answered with
  `session.updated` carrying the whole session. It is checked first, as the GA service checks it,
  against the request types of the installed `openai` package (`RealtimeSessionCreateRequestParam`
  and the TypedDicts it nests, through unions, lists and `type` discriminators): a key they do not
  declare gets `error` {type `invalid_request_error`, code `unknown_parameter`, param the dotted
  path such as `session.voice`, `session.audio.input.turn_detection.x`, `session.tools[0].meta`,
  message "Unknown parameter: '<param>'.", event_id the client's}; `session.type` is required
  (`missing_required_parameter`) and must be "realtime" (`invalid_value`: transcription sessions
  are not served). A refused update changes nothing and the connection stays open.
- `conversation.item.create` / `.delete` / `.truncate` -> `conversation.item.added` + `.done`,
  `.deleted`, `.truncated`; errors for duplicate or unknown ids, for a key the item's type
  requires (`missing_required_parameter`, e.g. `item.call_id`, `item.output`, `item.content`),
  and for a `function_call_output` whose `call_id` names no `function_call` in the conversation
  (`invalid_tool_call_id`, "Tool call ID '<id>' not found in conversation.", param null).
- `input_audio_buffer.append` with server VAD (an energy gate on the PCM16 24 kHz audio, using the
  session's `silence_duration_ms` and `prefix_padding_ms`): `speech_started`, `speech_stopped`,
  `committed`, the user item, then the scripted input transcription (`...transcription.delta` /
  `.completed` with duration usage) when transcription is on, then an automatic response when
  `create_response` is on. Manual `commit` / `clear` work too (commit under 100 ms is refused).
- `response.create` -> `response.created`, `output_item.added`, `conversation.item.added`,
  `content_part.added`, interleaved `response.output_audio_transcript.delta` and
  `response.output_audio.delta` (GA names; the client ignores the beta `response.audio.*`), the
  `..._done` events, `conversation.item.done` and `response.done` with usage. Text modality
  streams `response.output_text.delta` instead. `response.cancel` ends the active response with
  status `cancelled`; new speech does the same while `interrupt_response` is on.
- A scripted function call instead: `response.created`, then per call `response.output_item.added`
  (item type `function_call`, `name`, `call_id`, status `in_progress`, arguments ""),
  `conversation.item.added`, `response.function_call_arguments.delta` (8 characters each),
  `.done` (name, call_id, arguments), `response.output_item.done` (the item `completed` with its
  arguments) and `conversation.item.done`; then `response.done` whose `output` lists the calls.
  The client answers with `conversation.item.create` {item: {type `function_call_output`,
  call_id, output}} and `response.create`, which gets the next reply.

Scripting (mutate `server.script`, a `Script`, at any time; the subprocess loads it from JSON):

- `replies`: canned replies, used first in order; then `reply_rule(ReplyContext)` (default
  `default_reply`: "The tool said: <outputs joined by '; '>." right after function outputs,
  "You said: <text>." for an unanswered user turn, else `GREETING`). A reply is one of
    - a string: the words of a spoken (or text) reply;
    - a function call, `FunctionCall(name=..., arguments=..., call_id=None)`, in JSON
      `{"name": "get_weather", "arguments": {"city": "Paris"}}`: `arguments` is a JSON object
      (serialized by the stand-in) or a string sent verbatim; `call_id` defaults to `call_...`;
    - a non-empty list of function calls: one response with several calls (output_index 0, 1...).
  So `{"replies": [{"name": "get_weather", "arguments": {"city": "Paris"}}, "Sunny in Paris."]}`
  calls the tool on the first turn and speaks once its output is back. The rule may return any
  of these; `ReplyContext.function_outputs` holds the outputs answered since the last message.
- `transcripts`: transcriptions of committed audio, in order; then `default_transcript`.
- `ms_per_char` (reply audio length), `chunk_ms` (audio per delta), `tone_hz` (0 = silence),
  `delta_delay_s` (pause between deltas, to leave room for interruptions).
- `fail_connections`: refuse the next N websocket handshakes with HTTP 503.
- `fail_responses`: `ScriptedError`s answering the next `response.create`s, as an `error` event
  (default) or as a response that ends `failed`.
- `drop_mid_response`: drop the socket after this many audio deltas of the next response
  (a response of function calls leaves it for the next spoken one).
- `api_key`: when set, any other bearer key gets an `invalid_api_key` error and a close (and a
  401 in OpenAI's `{error: {type, code, message, param}}` shape on the HTTP routes).

`GET {base_url}/models` answers the model list (`{object: "list", data: [{id, object: "model",
created, owned_by}]}`) behind the same key check: the cheap authenticated call of `python -m
agent doctor`.

At any time: `await server.send_error(...)` pushes an `error` event to every open connection and
`server.drop_connections()` aborts them all (TCP reset, no close frame).

Records: `server.connections` (per connection: request `headers` and `query`, the merged
`session`, `items`, and every event `received` and `sent`), `server.received` (client events of
all connections), `received_of(type)`, `sent_of(type)`, `refused_connections`; and waits that
fail after WAIT_TIMEOUT_S instead of sleeping: `await server.wait_for(type, count=1)` (client
events), `wait_for_sent(type, count=1)` (server events), `wait_for_connections(n)`.

Text to speech, for `session.say()` (the plugin's `openai.TTS` pointed at the same base URL):
`POST {base_url}/audio/speech` takes the JSON body of OpenAI's speech endpoint, checked against
the installed `openai` package's `SpeechCreateParams` like the service checks it (Bearer key as
on the websocket; a key it does not declare: 400 "Unrecognized request argument supplied: x";
`input`, `model`, `voice` required; `input` at most 4096 characters; `speed` 0.25-4.0;
`stream_format` "sse" refused for tts-1 / tts-1-hd). It answers the tone of the script's
`tone_hz` for `ms_per_char` per character of `input`, 24 kHz 16-bit mono: as `audio/pcm` bytes
(`stream_format` "audio", the default) or as server-sent `speech.audio.delta` events ending with
`speech.audio.done` and its usage ("sse"). Stricter than the service in one way: only
`response_format` "pcm" is served (the others are a 400 naming the stand-in), because nothing
here decodes mp3. Each accepted request is recorded in `server.speech_requests` (`headers`,
`body`); `await server.wait_for_speech(count)` waits for them.

Usage in `response.done` is deterministic: text is 1 token per 4 characters (rounded up), input
audio 10 tokens per second, output audio 20 tokens per second; input counts the conversation and
instructions at response time (function call arguments and outputs count as text).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections.abc
import contextlib
import copy
import functools
import itertools
import json
import math
import re
import signal
import types
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, TypeAlias, Union

import numpy as np
import typing_extensions
from aiohttp import WSMsgType, web
from openai.types.audio.speech_create_params import SpeechCreateParams
from openai.types.realtime import RealtimeSessionCreateRequestParam
from openai.types.realtime.conversation_item_param import ConversationItemParam
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

SAMPLE_RATE = 24_000
BYTES_PER_MS = SAMPLE_RATE * 2 // 1000  # PCM16 mono
MIN_COMMIT_MS = 100  # the service refuses to commit less
VAD_WINDOW_MS = 10
VAD_RMS_THRESHOLD = 0.01  # of full scale, about -40 dBFS
TONE_AMPLITUDE = 0.3
GREETING = "Hello! How can I help you today?"
DEFAULT_MODEL = "gpt-realtime"
WAIT_TIMEOUT_S = 5.0
ARGUMENTS_DELTA_CHARS = 8  # function call arguments per `response.function_call_arguments.delta`
MAX_CALL_ID_CHARS = 32  # the service's limit on call ids

Event = dict[str, Any]

MAX_SPEECH_INPUT_CHARS = 4096  # the speech endpoint's limit on `input`
SPEECH_VOICES = (
    "alloy",
    "ash",
    "ballad",
    "coral",
    "echo",
    "sage",
    "shimmer",
    "verse",
    "marin",
    "cedar",
    "fable",
    "onyx",
    "nova",
)
AUDIO_STREAM_ONLY_MODELS = ("tts-1", "tts-1-hd")  # no `stream_format: "sse"` for these


@dataclass(frozen=True)
class ReplyContext:
    """What a reply rule sees: the user's unanswered text (None for a greeting), instructions,
    and the outputs of the function calls answered since the last message (in order)."""

    user_text: str | None
    instructions: str | None
    response_number: int
    function_outputs: tuple[str, ...] = ()


class FunctionCall(BaseModel):
    """A scripted tool call: the response calls `name` with `arguments` instead of speaking.

    `arguments` is a JSON object (the stand-in serializes it) or a string sent verbatim (normally
    JSON text; anything else scripts a malformed call). `call_id` defaults to a fresh `call_...`.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    arguments: str = "{}"
    call_id: str | None = Field(default=None, min_length=1, max_length=MAX_CALL_ID_CHARS)

    @field_validator("arguments", mode="before")
    @classmethod
    def _serialize_object(cls, value: Any) -> Any:
        return json.dumps(value) if isinstance(value, dict) else value


Reply: TypeAlias = str | FunctionCall | Annotated[list[FunctionCall], Field(min_length=1)]
"""One response: spoken (or text) words, one function call, or several calls in one response."""


def default_reply(ctx: ReplyContext) -> Reply:
    if ctx.function_outputs:
        return f"The tool said: {'; '.join(ctx.function_outputs)}."
    return f"You said: {ctx.user_text}." if ctx.user_text else GREETING


class ScriptedError(BaseModel):
    """An error the server answers with, shaped like OpenAI's `error` object."""

    model_config = ConfigDict(extra="forbid")

    type: str = "server_error"
    code: str | None = None
    message: str = "The server had an error while processing your request."
    param: str | None = None
    as_failed_response: bool = False
    """False: an `error` event answers the request; True: the response starts, then ends failed."""


class Script(BaseModel):
    """How the server behaves; tests mutate it freely, one-shot knobs reset once used."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    replies: deque[Reply] = Field(default_factory=deque)
    reply_rule: Callable[[ReplyContext], Reply] = Field(default=default_reply, exclude=True)
    transcripts: deque[str] = Field(default_factory=deque)
    default_transcript: str = "hello"
    ms_per_char: int = Field(default=20, ge=1)
    chunk_ms: int = Field(default=100, ge=10)
    tone_hz: float = Field(default=440.0, ge=0)
    delta_delay_s: float = Field(default=0.0, ge=0)
    fail_connections: int = Field(default=0, ge=0)
    fail_responses: deque[ScriptedError] = Field(default_factory=deque)
    drop_mid_response: int | None = Field(default=None, ge=0)
    api_key: str | None = None

    @classmethod
    def from_file(cls, path: Path) -> Script:
        return cls.model_validate_json(path.read_text())

    def next_reply(self, ctx: ReplyContext) -> str | list[FunctionCall]:
        """The next reply: words, or the function calls of one response (never an empty list)."""
        reply = self.replies.popleft() if self.replies else self.reply_rule(ctx)
        if isinstance(reply, FunctionCall):
            return [reply]
        if isinstance(reply, list) and not reply:
            raise ValueError("a reply of function calls needs at least one FunctionCall")
        return reply

    def next_transcript(self) -> str:
        return self.transcripts.popleft() if self.transcripts else self.default_transcript

    def audio_ms(self, reply: str) -> int:
        return max(len(reply), 1) * self.ms_per_char


def text_tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def audio_tokens(ms: int, per_second: int) -> int:
    return math.ceil(ms * per_second / 1000)


def tone(ms: int, hz: float, *, rate: int = SAMPLE_RATE) -> bytes:
    """Deterministic PCM16 mono: a sine at `hz`, or silence when `hz` is 0."""
    t = np.arange(ms * rate // 1000) / rate
    wave = np.sin(2 * np.pi * hz * t) * TONE_AMPLITUDE * 32767
    return wave.astype("<i2").tobytes()


def _words(text: str) -> list[str]:
    return re.findall(r"\S+\s*", text) or [text]


def _merge(into: dict[str, Any], update: dict[str, Any]) -> None:
    """Apply a partial session update: nested objects merge, unless their `type` changes."""
    for key, value in update.items():
        current = into.get(key)
        if (
            isinstance(value, dict)
            and isinstance(current, dict)
            and value.get("type", current.get("type")) == current.get("type")
        ):
            _merge(current, value)
        else:
            into[key] = copy.deepcopy(value)


# -- request validation, against the request shapes of the installed `openai` package ---------
#
# The package's `...Param` TypedDicts are generated from OpenAI's API specification, so their keys
# are the parameters the service knows. Walking them (through unions, lists and nested objects)
# finds what the service would answer `unknown_parameter` or `missing_required_parameter` to.

_MAPPINGS = (dict, collections.abc.Mapping, collections.abc.MutableMapping)
_SEQUENCES = (list, collections.abc.Sequence, collections.abc.Iterable)
_QUALIFIERS = (typing_extensions.Required, typing_extensions.NotRequired, Annotated)
_FREE_FORM = (Any, object, dict)


@dataclass(frozen=True)
class _Field:
    annotation: Any
    required: bool


@functools.cache
def _fields(shape: type) -> dict[str, _Field]:
    """A TypedDict's keys, in declaration order, with their annotations and requiredness."""
    hints = typing_extensions.get_type_hints(shape, include_extras=True)
    fields: dict[str, _Field] = {}
    for key, hint in hints.items():
        required = bool(getattr(shape, "__total__", True))
        origin: Any = typing_extensions.get_origin(hint)
        while origin in _QUALIFIERS:
            if origin is typing_extensions.Required:
                required = True
            elif origin is typing_extensions.NotRequired:
                required = False
            hint = typing_extensions.get_args(hint)[0]
            origin = typing_extensions.get_origin(hint)
        fields[key] = _Field(hint, required)
    return fields


def _members(annotation: Any) -> list[Any]:
    """The alternatives of a Union / Optional (the annotation itself otherwise)."""
    if typing_extensions.get_origin(annotation) in (Union, types.UnionType):
        return [m for arg in typing_extensions.get_args(annotation) for m in _members(arg)]
    return [annotation]


def _accepts(shape: type, key: str, value: Any) -> bool:
    """Whether `shape` declares `key` as a Literal that admits `value` (a discriminator)."""
    declared = _fields(shape).get(key)
    if declared is None:
        return False
    literals = [
        m for m in _members(declared.annotation) if typing_extensions.get_origin(m) is Literal
    ]
    return any(value in typing_extensions.get_args(lit) for lit in literals)


def _narrow(value: dict[str, Any], shapes: list[type]) -> list[type]:
    """The shapes `value` can be, told apart by its `type` (and, for messages, `role`)."""
    for key in ("type", "role"):
        if key in value and (matching := [s for s in shapes if _accepts(s, key, value[key])]):
            shapes = matching
    return shapes


def _unknown_parameter(value: Any, annotation: Any, path: str) -> str | None:
    """The path (`session.audio.input.x`, `session.tools[0].x`) of the first key in `value`
    that its annotation does not declare, or None. Free-form parts (`object`, `Dict[str, ...]`)
    are not looked into."""
    return _unknown_in(value, _members(annotation), path)


def _unknown_in(value: Any, members: list[Any], path: str) -> str | None:
    if isinstance(value, dict):
        if any(m in _FREE_FORM or typing_extensions.get_origin(m) in _MAPPINGS for m in members):
            return None
        shapes = [m for m in members if typing_extensions.is_typeddict(m)]
        return _unknown_in_object(value, _narrow(value, shapes), path) if shapes else None
    if isinstance(value, list):
        elements = [
            element
            for m in members
            if typing_extensions.get_origin(m) in _SEQUENCES
            for arg in typing_extensions.get_args(m)[:1]
            for element in _members(arg)
        ]
        for index, entry in enumerate(value if elements else []):
            if found := _unknown_in(entry, elements, f"{path}[{index}]"):
                return found
    return None


def _unknown_in_object(value: dict[str, Any], shapes: list[type], path: str) -> str | None:
    """None if `value` fits one of `shapes`; else its first unknown key in the closest shape."""
    ranked = sorted(shapes, key=lambda s: sum(k not in _fields(s) for k in value))
    first: str | None = None
    for shape in ranked:
        fields = _fields(shape)
        found = next((f"{path}.{k}" for k in value if k not in fields), None)
        for key, entry in value.items():
            if found is not None:
                break
            found = _unknown_parameter(entry, fields[key].annotation, f"{path}.{key}")
        if found is None:
            return None
        first = first or found
    return first


def _missing_parameter(value: dict[str, Any], shapes: list[type], path: str) -> str | None:
    """The path of the first key that every shape `value` can be requires and it lacks."""
    candidates = _narrow(value, shapes)
    for key, declared in _fields(candidates[0]).items():
        required = declared.required and all(
            key in _fields(s) and _fields(s)[key].required for s in candidates
        )
        if required and key not in value:
            return f"{path}.{key}"
    return None


_SESSION_SHAPE: type = RealtimeSessionCreateRequestParam
_ITEM_SHAPES: list[type] = [m for m in _members(ConversationItemParam) if isinstance(m, type)]


def _default_session(model: str, session_id: str) -> dict[str, Any]:
    pcm = {"type": "audio/pcm", "rate": SAMPLE_RATE}
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": session_id,
        "model": model,
        "output_modalities": ["audio"],
        "instructions": "",
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "truncation": "auto",
        "prompt": None,
        "include": None,
        "audio": {
            "input": {
                "format": pcm,
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.5,
                    "prefix_padding_ms": 300,
                    "silence_duration_ms": 200,
                    "idle_timeout_ms": None,
                    "create_response": True,
                    "interrupt_response": True,
                },
            },
            "output": {"format": pcm, "voice": "alloy", "speed": 1.0},
        },
    }


def _item_text(item: Event) -> str:
    """The text an item puts in the model's context (function calls: arguments and output)."""
    if item.get("type") == "function_call":
        return str(item.get("arguments") or "")
    if item.get("type") == "function_call_output":
        return str(item.get("output") or "")
    parts = item.get("content") or []
    return "".join(p.get("text") or p.get("transcript") or "" for p in parts)


class _Ids:
    """Sequential ids shaped like the service's (`event_...`, `item_...`, `resp_...`)."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)

    def __call__(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self._counter):08d}"


@dataclass
class _Speech:
    item_id: str
    silence_ms: int = 0


class _EnergyVad:
    """Server-side turn detection over the appended audio: an RMS gate in 10 ms windows."""

    def __init__(self) -> None:
        self.position_ms = 0
        self.speech: _Speech | None = None
        self._pending = b""

    def windows(self, pcm: bytes) -> list[tuple[int, bool]]:
        """Split into whole windows, keep the remainder; yields (window end ms, voiced)."""
        data = self._pending + pcm
        size = VAD_WINDOW_MS * BYTES_PER_MS
        whole = len(data) - len(data) % size
        self._pending = data[whole:]
        out: list[tuple[int, bool]] = []
        for start in range(0, whole, size):
            samples = np.frombuffer(data[start : start + size], dtype="<i2").astype(np.float64)
            rms = math.sqrt(float(np.mean(samples**2))) / 32768
            self.position_ms += VAD_WINDOW_MS
            out.append((self.position_ms, rms >= VAD_RMS_THRESHOLD))
        return out


@dataclass
class _Response:
    id: str
    item_id: str  # the assistant message's (a reply of function calls gives each call its own)
    modalities: list[str]
    metadata: Any
    instructions: str | None
    reply: str | list[FunctionCall]
    cancel_reason: Literal["client_cancelled", "turn_detected"] | None = None
    transcript: str = ""
    audio_ms: int = 0
    output: list[Event] = field(default_factory=list)  # finished output items, in order
    own_items: set[str] = field(default_factory=set)  # ids of the items this response added


@dataclass
class RealtimeConnection:
    """One websocket: its own session and conversation, and the record of what crossed it."""

    server: FakeRealtimeServer
    ws: web.WebSocketResponse
    transport: asyncio.Transport
    headers: dict[str, str]
    query: dict[str, str]
    session: dict[str, Any]
    received: list[Event] = field(default_factory=list)
    sent: list[Event] = field(default_factory=list)
    items: list[Event] = field(default_factory=list)
    item_audio_ms: dict[str, int] = field(default_factory=dict)
    audio_buffer: bytearray = field(default_factory=bytearray)
    vad: _EnergyVad = field(default_factory=_EnergyVad)
    response: _Response | None = None
    response_task: asyncio.Task[None] | None = None
    dropped: bool = False
    _send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def script(self) -> Script:
        return self.server.script

    def _id(self, prefix: str) -> str:
        return self.server.ids(prefix)

    async def send(self, event: Event) -> None:
        if self.dropped or self.ws.closed:
            return
        payload = json.dumps({"event_id": self._id("event"), **event})
        async with self._send_lock:
            self.sent.append(json.loads(payload))  # the wire's view, immune to later mutation
            await self.ws.send_str(payload)
        await self.server.notify()

    async def send_error(
        self,
        *,
        type: str,
        message: str,
        code: str | None = None,
        param: str | None = None,
        event_id: str | None = None,
    ) -> None:
        error = {"type": type, "code": code, "message": message, "param": param}
        await self.send({"type": "error", "error": {**error, "event_id": event_id}})

    def drop(self) -> None:
        """Cut the TCP connection without a close frame, as a crash or a network loss would."""
        self.dropped = True
        self.transport.abort()

    # -- dispatch ---------------------------------------------------------------------------

    async def handle(self, event: Event) -> None:
        handlers = {
            "session.update": self._session_update,
            "conversation.item.create": self._item_create,
            "conversation.item.delete": self._item_delete,
            "conversation.item.truncate": self._item_truncate,
            "input_audio_buffer.append": self._audio_append,
            "input_audio_buffer.commit": self._audio_commit,
            "input_audio_buffer.clear": self._audio_clear,
            "response.create": self._response_create,
            "response.cancel": self._response_cancel,
        }
        handler = handlers.get(event.get("type", ""))
        if handler is None:
            await self.send_error(
                type="invalid_request_error",
                code="invalid_value",
                message=f"Invalid value: '{event.get('type')}'. Unsupported event type.",
                param="type",
                event_id=event.get("event_id"),
            )
            return
        await handler(event)

    # -- session ----------------------------------------------------------------------------

    async def _session_update(self, event: Event) -> None:
        """Validate like the service (nothing is applied on an error), then merge."""
        update = event.get("session")
        if not isinstance(update, dict) or "type" not in update:
            param = "session.type" if isinstance(update, dict) else "session"
            await self._missing_parameter_error(param, event)
            return
        if update["type"] != "realtime":  # "transcription" sessions are not served here
            await self.send_error(
                type="invalid_request_error",
                code="invalid_value",
                message=f"Invalid value: '{update['type']}'. Supported values are: 'realtime'.",
                param="session.type",
                event_id=event.get("event_id"),
            )
            return
        if unknown := _unknown_parameter(update, _SESSION_SHAPE, "session"):
            await self.send_error(
                type="invalid_request_error",
                code="unknown_parameter",
                message=f"Unknown parameter: '{unknown}'.",
                param=unknown,
                event_id=event.get("event_id"),
            )
            return
        _merge(self.session, update)
        await self.send({"type": "session.updated", "session": self.session})

    async def _missing_parameter_error(self, param: str, event: Event) -> None:
        await self.send_error(
            type="invalid_request_error",
            code="missing_required_parameter",
            message=f"Missing required parameter: '{param}'.",
            param=param,
            event_id=event.get("event_id"),
        )

    @property
    def _turn_detection(self) -> dict[str, Any] | None:
        td: dict[str, Any] | None = self.session["audio"]["input"].get("turn_detection")
        return td

    @property
    def _transcription_on(self) -> bool:
        return self.session["audio"]["input"].get("transcription") is not None

    # -- conversation -----------------------------------------------------------------------

    def _has_call(self, call_id: Any) -> bool:
        return any(
            it.get("type") == "function_call" and it.get("call_id") == call_id for it in self.items
        )

    def _index_of(self, item_id: str) -> int | None:
        return next((i for i, it in enumerate(self.items) if it["id"] == item_id), None)

    async def _add_item(self, item: Event, previous_item_id: str | None = None) -> None:
        """Insert after `previous_item_id` ("root" = first; None = last) and announce it."""
        if previous_item_id == "root":
            position = 0
        elif previous_item_id is None:
            position = len(self.items)
        else:
            index = self._index_of(previous_item_id)
            position = len(self.items) if index is None else index + 1
        self.items.insert(position, item)
        await self._announce("conversation.item.added", item)
        if item["status"] == "completed":
            await self._announce("conversation.item.done", item)

    async def _announce(self, type: str, item: Event) -> None:
        index = self._index_of(item["id"])
        previous = self.items[index - 1]["id"] if index else None
        await self.send({"type": type, "previous_item_id": previous, "item": item})

    async def _item_create(self, event: Event) -> None:
        item = event.get("item")
        if not isinstance(item, dict):
            await self._missing_parameter_error("item", event)
            return
        if missing := _missing_parameter(item, _ITEM_SHAPES, "item"):
            await self._missing_parameter_error(missing, event)
            return
        if not any(_accepts(shape, "type", item["type"]) for shape in _ITEM_SHAPES):
            await self.send_error(
                type="invalid_request_error",
                code="invalid_value",
                message=f"Invalid value: '{item['type']}'. Unsupported item type.",
                param="item.type",
                event_id=event.get("event_id"),
            )
            return
        call_id = item.get("call_id")
        if item["type"] == "function_call_output" and not self._has_call(call_id):
            await self.send_error(  # what the service answers (its param stays null)
                type="invalid_request_error",
                code="invalid_tool_call_id",
                message=f"Tool call ID '{call_id}' not found in conversation.",
                event_id=event.get("event_id"),
            )
            return
        item = dict(item)
        item.setdefault("id", self._id("item"))
        previous = event.get("previous_item_id")
        if self._index_of(item["id"]) is not None:
            await self.send_error(
                type="invalid_request_error",
                code="item_create_duplicate_item_id",
                message=f"Item with id '{item['id']}' already exists.",
                param="item.id",
                event_id=event.get("event_id"),
            )
            return
        if previous not in (None, "root") and self._index_of(previous) is None:
            await self.send_error(
                type="invalid_request_error",
                code="item_not_found",
                message=f"Previous item with id '{previous}' not found.",
                param="previous_item_id",
                event_id=event.get("event_id"),
            )
            return
        item.update(object="realtime.item", status="completed")
        await self._add_item(item, previous)

    async def _item_delete(self, event: Event) -> None:
        item_id = event.get("item_id", "")
        index = self._index_of(item_id)
        if index is None:
            await self.send_error(
                type="invalid_request_error",
                code="item_not_found",
                message=f"Item with id '{item_id}' not found.",
                param="item_id",
                event_id=event.get("event_id"),
            )
            return
        del self.items[index]
        await self.send({"type": "conversation.item.deleted", "item_id": item_id})

    async def _item_truncate(self, event: Event) -> None:
        await self.send(
            {
                "type": "conversation.item.truncated",
                "item_id": event.get("item_id"),
                "content_index": event.get("content_index", 0),
                "audio_end_ms": event.get("audio_end_ms", 0),
            }
        )

    # -- input audio ------------------------------------------------------------------------

    async def _audio_append(self, event: Event) -> None:
        pcm = base64.b64decode(event.get("audio", ""))
        self.audio_buffer.extend(pcm)
        td = self._turn_detection
        if td is None:
            return
        silence_ms = int(td.get("silence_duration_ms") or 500)
        prefix_ms = int(td.get("prefix_padding_ms") or 300)
        for end_ms, voiced in self.vad.windows(pcm):
            speech = self.vad.speech
            if speech is None:
                if voiced:
                    await self._speech_started(end_ms - VAD_WINDOW_MS, td)
                continue
            speech.silence_ms = 0 if voiced else speech.silence_ms + VAD_WINDOW_MS
            if speech.silence_ms >= silence_ms:
                self.vad.speech = None
                await self.send(
                    {
                        "type": "input_audio_buffer.speech_stopped",
                        "audio_end_ms": end_ms,
                        "item_id": speech.item_id,
                    }
                )
                await self._commit(speech.item_id)
                if td.get("create_response", True):
                    await self._start_response({})
        if self.vad.speech is None:
            # idle: only the padding that would precede the next speech is worth keeping
            del self.audio_buffer[: max(0, len(self.audio_buffer) - prefix_ms * BYTES_PER_MS)]

    async def _speech_started(self, start_ms: int, td: dict[str, Any]) -> None:
        speech = _Speech(item_id=self._id("item"))
        self.vad.speech = speech
        await self.send(
            {
                "type": "input_audio_buffer.speech_started",
                "audio_start_ms": start_ms,
                "item_id": speech.item_id,
            }
        )
        if self.response is not None and td.get("interrupt_response", True):
            self.response.cancel_reason = "turn_detected"
            await self._settle_cancelled_response()

    async def _audio_commit(self, event: Event) -> None:
        buffered_ms = len(self.audio_buffer) / BYTES_PER_MS
        if buffered_ms < MIN_COMMIT_MS:
            await self.send_error(
                type="invalid_request_error",
                code="input_audio_buffer_commit_empty",
                message=(
                    "Error committing input audio buffer: buffer too small. Expected at least "
                    f"{MIN_COMMIT_MS}ms of audio, but buffer only has {buffered_ms:.2f}ms of audio."
                ),
                event_id=event.get("event_id"),
            )
            return
        speech = self.vad.speech
        self.vad.speech = None
        await self._commit(speech.item_id if speech else self._id("item"))

    async def _audio_clear(self, _: Event) -> None:
        self.audio_buffer.clear()
        self.vad.speech = None
        await self.send({"type": "input_audio_buffer.cleared"})

    async def _commit(self, item_id: str) -> None:
        """Turn the buffer into a user item, then transcribe it when transcription is on."""
        audio_ms = len(self.audio_buffer) // BYTES_PER_MS
        self.audio_buffer.clear()
        previous = self.items[-1]["id"] if self.items else None
        await self.send(
            {
                "type": "input_audio_buffer.committed",
                "previous_item_id": previous,
                "item_id": item_id,
            }
        )
        item: Event = {
            "id": item_id,
            "type": "message",
            "object": "realtime.item",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        self.item_audio_ms[item_id] = audio_ms
        await self._add_item(item)
        if not self._transcription_on:
            return
        transcript = self.script.next_transcript()
        for word in _words(transcript):
            await self.send(
                {
                    "type": "conversation.item.input_audio_transcription.delta",
                    "item_id": item_id,
                    "content_index": 0,
                    "delta": word,
                }
            )
        item["content"][0]["transcript"] = transcript
        await self.send(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": item_id,
                "content_index": 0,
                "transcript": transcript,
                "usage": {"type": "duration", "seconds": audio_ms / 1000},
            }
        )

    # -- responses --------------------------------------------------------------------------

    def _function_outputs(self) -> tuple[str, ...]:
        """Outputs of the function calls answered since the last message, oldest first."""
        outputs: list[str] = []
        for item in reversed(self.items):
            if item.get("type") == "message":
                break
            if item.get("type") == "function_call_output":
                outputs.append(str(item.get("output") or ""))
        return tuple(reversed(outputs))

    def _unanswered_user_text(self) -> str | None:
        for item in reversed(self.items):
            if item.get("type") != "message":
                continue
            if item.get("role") == "assistant":
                return None
            if item.get("role") == "user":
                return _item_text(item) or None
        return None

    async def _response_create(self, event: Event) -> None:
        params: dict[str, Any] = event.get("response") or {}
        await self._settle_cancelled_response()
        if self.response is not None:
            await self.send_error(
                type="invalid_request_error",
                code="conversation_already_has_active_response",
                message=(
                    f"Conversation already has an active response in progress: {self.response.id}."
                    " Wait until the response is finished before creating a new one."
                ),
                event_id=event.get("event_id"),
            )
            return
        if self.script.fail_responses:
            failure = self.script.fail_responses.popleft()
            if not failure.as_failed_response:
                await self.send_error(
                    type=failure.type,
                    code=failure.code,
                    message=failure.message,
                    param=failure.param,
                    event_id=event.get("event_id"),
                )
                return
            await self._failed_response(params, failure)
            return
        await self._start_response(params)

    async def _settle_cancelled_response(self) -> None:
        """A cancel lands at the stream's next step; on the service it is immediate."""
        if self.response is not None and self.response.cancel_reason and self.response_task:
            await self.response_task

    async def _start_response(self, params: dict[str, Any]) -> None:
        await self._settle_cancelled_response()
        if self.response is not None:
            return
        number = self.server.next_response_number()
        instructions = params.get("instructions") or self.session.get("instructions") or None
        ctx = ReplyContext(
            self._unanswered_user_text(), instructions, number, self._function_outputs()
        )
        self.response = _Response(
            id=self._id("resp"),
            item_id=self._id("item"),
            modalities=list(params.get("output_modalities") or self.session["output_modalities"]),
            metadata=params.get("metadata"),
            instructions=instructions,
            reply=self.script.next_reply(ctx),
        )
        await self.send(
            {"type": "response.created", "response": self._response_object("in_progress")}
        )
        self.response_task = asyncio.create_task(self._stream(self.response))

    async def _failed_response(self, params: dict[str, Any], failure: ScriptedError) -> None:
        response: Event = {
            "object": "realtime.response",
            "id": self._id("resp"),
            "status": "in_progress",
            "output": [],
            "metadata": params.get("metadata"),
            "usage": None,
        }
        await self.send({"type": "response.created", "response": response})
        error = {"type": failure.type, "code": failure.code, "message": failure.message}
        done = {
            **response,
            "status": "failed",
            "status_details": {"type": "failed", "error": error},
        }
        await self.send({"type": "response.done", "response": done})

    def _response_object(self, status: str, output: list[Event] | None = None) -> Event:
        resp = self.response
        assert resp is not None
        return {
            "object": "realtime.response",
            "id": resp.id,
            "status": status,
            "status_details": None,
            "output": output or [],
            "conversation_id": "conv_fake",
            "output_modalities": resp.modalities,
            "max_output_tokens": "inf",
            "audio": {
                "output": {
                    "format": {"type": "audio/pcm", "rate": SAMPLE_RATE},
                    "voice": self.session["audio"]["output"].get("voice"),
                }
            },
            "metadata": resp.metadata,
            "usage": None,
        }

    def _assistant_item(self, resp: _Response, status: str) -> Event:
        part: Event = (
            {"type": "output_audio", "transcript": resp.transcript}
            if "audio" in resp.modalities
            else {"type": "output_text", "text": resp.transcript}
        )
        return {
            "id": resp.item_id,
            "type": "message",
            "object": "realtime.item",
            "status": status,
            "role": "assistant",
            "content": [] if status == "in_progress" else [part],
        }

    async def _stream(self, resp: _Response) -> None:
        """Stream one response; stop early on cancel or a scripted drop."""
        if isinstance(resp.reply, list):
            await self._stream_calls(resp, resp.reply)
            return
        assert isinstance(resp.reply, str)
        resp.own_items.add(resp.item_id)
        audio = "audio" in resp.modalities
        ids: Event = {"response_id": resp.id, "item_id": resp.item_id, "output_index": 0}
        item = self._assistant_item(resp, "in_progress")
        await self.send({"type": "response.output_item.added", **ids, "item": item})
        await self._add_item(item)
        part: Event = {"type": "audio", "transcript": ""} if audio else {"type": "text", "text": ""}
        await self.send(
            {"type": "response.content_part.added", **ids, "content_index": 0, "part": part}
        )
        text_delta = (
            "response.output_audio_transcript.delta" if audio else "response.output_text.delta"
        )
        chunks = self._audio_chunks(resp.reply) if audio else []
        drop_after, self.script.drop_mid_response = self.script.drop_mid_response, None
        sent_chunks = 0
        for word, chunk in itertools.zip_longest(_words(resp.reply), chunks):
            if resp.cancel_reason is not None:
                break
            if word is not None:
                resp.transcript += word
                await self.send({"type": text_delta, **ids, "content_index": 0, "delta": word})
            if chunk is not None:
                if drop_after is not None and sent_chunks >= drop_after:
                    self.drop()
                    return
                sent_chunks += 1
                resp.audio_ms += len(chunk) // BYTES_PER_MS
                delta = base64.b64encode(chunk).decode()
                await self.send(
                    {
                        "type": "response.output_audio.delta",
                        **ids,
                        "content_index": 0,
                        "delta": delta,
                    }
                )
            await asyncio.sleep(self.script.delta_delay_s)
        await self._finish(resp, ids)

    async def _stream_calls(self, resp: _Response, calls: list[FunctionCall]) -> None:
        """One `function_call` output item per call, its arguments streamed in deltas."""
        for index, call in enumerate(calls):
            if resp.cancel_reason is not None:
                break
            item_id = self._id("item")
            resp.own_items.add(item_id)
            call_id = call.call_id or self._id("call")
            ids: Event = {"response_id": resp.id, "item_id": item_id, "output_index": index}
            item: Event = {
                "id": item_id,
                "type": "function_call",
                "object": "realtime.item",
                "status": "in_progress",
                "name": call.name,
                "call_id": call_id,
                "arguments": "",
            }
            await self.send({"type": "response.output_item.added", **ids, "item": item})
            await self._add_item(dict(item))
            arguments = ""
            for start in range(0, len(call.arguments), ARGUMENTS_DELTA_CHARS):
                if resp.cancel_reason is not None:
                    break
                delta = call.arguments[start : start + ARGUMENTS_DELTA_CHARS]
                arguments += delta
                await self.send(
                    {
                        "type": "response.function_call_arguments.delta",
                        **ids,
                        "call_id": call_id,
                        "delta": delta,
                    }
                )
                await asyncio.sleep(self.script.delta_delay_s)
            cancelled = resp.cancel_reason is not None
            if not cancelled:
                await self.send(
                    {
                        "type": "response.function_call_arguments.done",
                        **ids,
                        "call_id": call_id,
                        "name": call.name,
                        "arguments": arguments,
                    }
                )
            status = "incomplete" if cancelled else "completed"
            await self._finish_item(resp, ids, {**item, "status": status, "arguments": arguments})
        await self._done(resp)

    async def _finish_item(self, resp: _Response, ids: Event, item: Event) -> None:
        """`response.output_item.done`, and the conversation's copy of the item completed."""
        index = self._index_of(item["id"])
        if index is not None:  # the client may have deleted it meanwhile
            self.items[index] = item
        resp.output.append(item)
        await self.send({"type": "response.output_item.done", **ids, "item": item})
        if index is not None:
            await self._announce("conversation.item.done", item)

    async def _done(self, resp: _Response) -> None:
        cancelled = resp.cancel_reason is not None
        done = self._response_object("cancelled" if cancelled else "completed", resp.output)
        if cancelled:
            done["status_details"] = {"type": "cancelled", "reason": resp.cancel_reason}
        done["usage"] = self._usage(resp)
        self.response = None
        self.response_task = None
        await self.send({"type": "response.done", "response": done})

    def _audio_chunks(self, reply: str) -> list[bytes]:
        pcm = tone(self.script.audio_ms(reply), self.script.tone_hz)
        size = self.script.chunk_ms * BYTES_PER_MS
        return [pcm[i : i + size] for i in range(0, len(pcm), size)]

    async def _finish(self, resp: _Response, ids: Event) -> None:
        part: Event
        if "audio" in resp.modalities:
            await self.send({"type": "response.output_audio.done", **ids, "content_index": 0})
            await self.send(
                {
                    "type": "response.output_audio_transcript.done",
                    **ids,
                    "content_index": 0,
                    "transcript": resp.transcript,
                }
            )
            part = {"type": "audio", "transcript": resp.transcript}
        else:
            await self.send(
                {
                    "type": "response.output_text.done",
                    **ids,
                    "content_index": 0,
                    "text": resp.transcript,
                }
            )
            part = {"type": "text", "text": resp.transcript}
        await self.send(
            {"type": "response.content_part.done", **ids, "content_index": 0, "part": part}
        )
        cancelled = resp.cancel_reason is not None
        item = self._assistant_item(resp, "incomplete" if cancelled else "completed")
        self.item_audio_ms[resp.item_id] = resp.audio_ms
        await self._finish_item(resp, ids, item)
        await self._done(resp)

    def _usage(self, resp: _Response) -> Event:
        """Deterministic token counts (see the module docstring for the rates)."""
        input_text = text_tokens(resp.instructions or "")
        input_audio = 0
        for item in self.items:
            if item["id"] not in resp.own_items:
                input_text += text_tokens(_item_text(item))
                input_audio += audio_tokens(self.item_audio_ms.get(item["id"], 0), 10)
        output_text = text_tokens(resp.transcript)
        output_text += sum(
            text_tokens(_item_text(it)) for it in resp.output if it["type"] != "message"
        )
        output_audio = audio_tokens(resp.audio_ms, 20)
        return {
            "total_tokens": input_text + input_audio + output_text + output_audio,
            "input_tokens": input_text + input_audio,
            "output_tokens": output_text + output_audio,
            "input_token_details": {
                "text_tokens": input_text,
                "audio_tokens": input_audio,
                "image_tokens": 0,
                "cached_tokens": 0,
                "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0},
            },
            "output_token_details": {"text_tokens": output_text, "audio_tokens": output_audio},
        }

    async def _response_cancel(self, event: Event) -> None:
        if self.response is None:
            await self.send_error(
                type="invalid_request_error",
                code="response_cancel_not_active",
                message="Cancellation failed: no active response found",
                event_id=event.get("event_id"),
            )
            return
        self.response.cancel_reason = "client_cancelled"

    async def close(self) -> None:
        if self.response_task is not None:
            self.response_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.response_task


class FakeRealtimeServer:
    """The websocket server; see the module docstring for the scripting API."""

    def __init__(self, script: Script | None = None, *, host: str = "127.0.0.1", port: int = 0):
        self.script = script or Script()
        self.ids = _Ids()
        self.connections: list[RealtimeConnection] = []
        self.refused_connections = 0
        self.speech_requests: list[SpeechRequest] = []
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self._changed = asyncio.Condition()
        self._responses = itertools.count(1)

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        for prefix in ("/v1", "", "/openai/v1"):
            app.router.add_get(f"{prefix}/realtime", self._handle)
            app.router.add_post(f"{prefix}/audio/speech", self._speech)
            app.router.add_get(f"{prefix}/models", self._models)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        self._port = self._runner.addresses[0][1]

    async def close(self) -> None:
        for conn in self.connections:
            await conn.close()
            await conn.ws.close()  # else cleanup waits for each client to hang up
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeRealtimeServer:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        """What to pass as `base_url` (or OPENAI_BASE_URL); the client adds `/realtime?model=`."""
        return f"http://{self._host}:{self._port}/v1"

    def next_response_number(self) -> int:
        return next(self._responses)

    # -- records ----------------------------------------------------------------------------

    @property
    def received(self) -> list[Event]:
        return [ev for conn in self.connections for ev in conn.received]

    def received_of(self, type: str) -> list[Event]:
        return [ev for ev in self.received if ev.get("type") == type]

    def sent_of(self, type: str) -> list[Event]:
        return [ev for conn in self.connections for ev in conn.sent if ev.get("type") == type]

    async def wait_for(self, type: str, *, count: int = 1) -> Event:
        """The `count`-th client event of this type (all connections), waiting if need be.

        Gives up after WAIT_TIMEOUT_S so a missing event fails the test instead of hanging it.
        """
        async with asyncio.timeout(WAIT_TIMEOUT_S), self._changed:
            await self._changed.wait_for(lambda: len(self.received_of(type)) >= count)
        return self.received_of(type)[count - 1]

    async def wait_for_sent(self, type: str, *, count: int = 1) -> Event:
        """The `count`-th server event of this type (all connections), waiting if need be."""
        async with asyncio.timeout(WAIT_TIMEOUT_S), self._changed:
            await self._changed.wait_for(lambda: len(self.sent_of(type)) >= count)
        return self.sent_of(type)[count - 1]

    async def wait_for_speech(self, count: int = 1) -> SpeechRequest:
        """The `count`-th accepted `POST /audio/speech`, waiting if need be."""
        async with asyncio.timeout(WAIT_TIMEOUT_S), self._changed:
            await self._changed.wait_for(lambda: len(self.speech_requests) >= count)
        return self.speech_requests[count - 1]

    async def wait_for_connections(self, count: int) -> None:
        async with asyncio.timeout(WAIT_TIMEOUT_S), self._changed:
            await self._changed.wait_for(lambda: len(self.connections) >= count)

    async def notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- on-demand faults -------------------------------------------------------------------

    async def send_error(
        self,
        *,
        type: str = "server_error",
        message: str = "The server had an error while processing your request.",
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        """Push an unsolicited `error` event to every open connection."""
        for conn in self._open():
            await conn.send_error(type=type, message=message, code=code, param=param)

    def drop_connections(self) -> None:
        """Abort every open connection's TCP stream (no close frame)."""
        for conn in self._open():
            conn.drop()

    def _open(self) -> list[RealtimeConnection]:
        return [c for c in self.connections if not c.ws.closed and not c.dropped]

    # -- websocket --------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.script.fail_connections > 0:
            self.script.fail_connections -= 1
            self.refused_connections += 1
            return _http_error(503, "server_error", "The server is overloaded (scripted failure).")
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth.removeprefix("Bearer "):
            return _http_error(
                401, "invalid_request_error", "You didn't provide an API key.", "missing_api_key"
            )
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        model = request.query.get("model", DEFAULT_MODEL)
        assert request.transport is not None  # a live request always has one
        conn = RealtimeConnection(
            server=self,
            ws=ws,
            transport=request.transport,
            headers=dict(request.headers),
            query=dict(request.query),
            session=_default_session(model, self.ids("sess")),
        )
        self.connections.append(conn)
        await self.notify()
        try:
            if self.script.api_key is not None and auth != f"Bearer {self.script.api_key}":
                await conn.send_error(
                    type="invalid_request_error",
                    code="invalid_api_key",
                    message="Incorrect API key provided.",
                )
                await ws.close()
                return ws
            await conn.send({"type": "session.created", "session": conn.session})
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                await self._receive(conn, msg.data)
        finally:
            await conn.close()
        return ws

    def _key_refusal(self, request: web.Request) -> web.Response | None:
        """The HTTP routes' 401 for a missing or (with `script.api_key`) wrong bearer key."""
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth.removeprefix("Bearer "):
            return _http_error(
                401, "invalid_request_error", "You didn't provide an API key.", "missing_api_key"
            )
        if self.script.api_key is not None and auth != f"Bearer {self.script.api_key}":
            return _http_error(
                401, "invalid_request_error", "Incorrect API key provided.", "invalid_api_key"
            )
        return None

    async def _models(self, request: web.Request) -> web.Response:
        """`GET /models`: the model list, behind the same key check as the other routes."""
        if (refused := self._key_refusal(request)) is not None:
            return refused
        models = [
            DEFAULT_MODEL,
            "gpt-4o-mini-transcribe",
            "gpt-4o-mini-tts",
            *AUDIO_STREAM_ONLY_MODELS,
        ]
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "system"} for m in models]
        return web.json_response({"object": "list", "data": data})

    async def _speech(self, request: web.Request) -> web.StreamResponse:
        """`POST /audio/speech`: the tone for the input's length, as PCM bytes or SSE events."""
        if (refused := self._key_refusal(request)) is not None:
            return refused
        try:
            body = json.loads(await request.read())
        except (ValueError, RecursionError):
            body = None
        if (refusal := _speech_refusal(body)) is not None:
            return refusal
        self.speech_requests.append(SpeechRequest(dict(request.headers), body))
        await self.notify()
        ms = self.script.audio_ms(body["input"])
        pcm = tone(ms, self.script.tone_hz)
        size = self.script.chunk_ms * BYTES_PER_MS
        chunks = [pcm[i : i + size] for i in range(0, len(pcm), size)]
        sse = body.get("stream_format", "audio") == "sse"
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream" if sse else "audio/pcm",
                "x-request-id": self.ids("req"),
            }
        )
        await response.prepare(request)
        for chunk in chunks:
            if sse:
                event = {"type": "speech.audio.delta", "audio": base64.b64encode(chunk).decode()}
                await response.write(f"data: {json.dumps(event)}\n\n".encode())
            else:
                await response.write(chunk)
            await asyncio.sleep(self.script.delta_delay_s)
        if sse:
            input_tokens = text_tokens(body["input"])
            output_tokens = audio_tokens(ms, 20)
            usage = {
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "total_tokens": input_tokens + output_tokens,
            }
            done = {"type": "speech.audio.done", "usage": usage}
            await response.write(f"data: {json.dumps(done)}\n\n".encode())
        await response.write_eof()
        return response

    async def _receive(self, conn: RealtimeConnection, data: str) -> None:
        try:
            event = json.loads(data)
        except json.JSONDecodeError:
            await conn.send_error(
                type="invalid_request_error", code="invalid_json", message="Invalid JSON."
            )
            return
        if not isinstance(event, dict):
            await conn.send_error(
                type="invalid_request_error", code="invalid_json", message="Expected an object."
            )
            return
        conn.received.append(event)
        await self.notify()
        await conn.handle(event)


def _http_error(
    status: int, type: str, message: str, code: str | None = None, param: str | None = None
) -> web.Response:
    body = {"error": {"type": type, "code": code, "message": message, "param": param}}
    return web.json_response(body, status=status)


@dataclass
class SpeechRequest:
    """One accepted `POST /audio/speech`: its headers and JSON body."""

    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def input(self) -> str:
        return str(self.body["input"])


def _speech_refusal(body: Any) -> web.Response | None:
    """What the speech endpoint answers a body it refuses, or None for one it serves."""
    invalid = "invalid_request_error"
    if not isinstance(body, dict):
        return _http_error(400, invalid, "We could not parse the JSON body of your request.")
    fields = _fields(SpeechCreateParams)
    if unknown := next((key for key in body if key not in fields), None):
        return _http_error(400, invalid, f"Unrecognized request argument supplied: {unknown}")
    for key, declared in fields.items():
        if declared.required and key not in body:
            return _http_error(
                400,
                invalid,
                f"Missing required parameter: '{key}'.",
                "missing_required_parameter",
                key,
            )
    text, model, voice = body["input"], body["model"], body["voice"]
    if not isinstance(text, str) or not isinstance(model, str):
        name = "input" if not isinstance(text, str) else "model"
        return _http_error(
            400, invalid, f"Invalid type for '{name}': expected a string.", "invalid_type", name
        )
    if len(text) > MAX_SPEECH_INPUT_CHARS:
        return _http_error(
            400,
            invalid,
            f"Invalid 'input': string too long. Expected a string with maximum length "
            f"{MAX_SPEECH_INPUT_CHARS}, but got a string with length {len(text)} instead.",
            "string_above_max_length",
            "input",
        )
    named = isinstance(voice, str) and voice in SPEECH_VOICES
    custom = isinstance(voice, dict) and set(voice) == {"id"} and isinstance(voice["id"], str)
    if not (named or custom):
        return _http_error(
            400, invalid, f"Invalid value for 'voice': {voice!r}.", "invalid_value", "voice"
        )
    speed = body.get("speed", 1.0)
    if isinstance(speed, bool) or not isinstance(speed, int | float) or not 0.25 <= speed <= 4.0:
        return _http_error(
            400,
            invalid,
            "Invalid 'speed': expected a number from 0.25 to 4.0.",
            "invalid_value",
            "speed",
        )
    response_format = body.get("response_format", "mp3")
    if response_format not in ("mp3", "opus", "aac", "flac", "wav", "pcm"):
        return _http_error(
            400, invalid, f"Invalid value: '{response_format}'.", "invalid_value", "response_format"
        )
    if response_format != "pcm":
        return _http_error(
            400,
            invalid,
            f"This stand-in serves response_format 'pcm' only, not '{response_format}'.",
            "unsupported_by_stand_in",
            "response_format",
        )
    stream_format = body.get("stream_format", "audio")
    if stream_format not in ("sse", "audio"):
        return _http_error(
            400, invalid, f"Invalid value: '{stream_format}'.", "invalid_value", "stream_format"
        )
    if stream_format == "sse" and model in AUDIO_STREAM_ONLY_MODELS:
        return _http_error(
            400,
            invalid,
            f"stream_format 'sse' is not supported for {model}.",
            "invalid_value",
            "stream_format",
        )
    return None


async def _serve(script: Script, host: str, port: int) -> None:
    server = FakeRealtimeServer(script, host=host, port=port)
    await server.start()
    print(server.base_url, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake OpenAI Realtime server for offline tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--script", type=Path, help="JSON file with Script fields")
    args = parser.parse_args(argv)
    try:
        script = Script.from_file(args.script) if args.script else Script()
    except (OSError, ValidationError) as e:
        parser.error(f"--script {args.script}: {e}")
    asyncio.run(_serve(script, args.host, args.port))


if __name__ == "__main__":
    main()
