"""Stand-ins for what dynamics talks to: the room's local participant (records RPCs, answers as
scripted), a scripted LLM; and `dynamics_body`, a dynamics catalog answer to script on the
bitHuman stub (`devkit.bithuman_api.BithumanStub`)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from livekit import rtc
from livekit.agents import llm
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions

AVATAR = "bithuman-avatar-agent"
GESTURES = ["blow_kiss_heart", "laugh_react", "mini_wave_hello", "talk_head_nod_subtle"]


def dynamics_body(gestures: list[str] | dict[str, str] | None, *, url: str | None = "x") -> Any:
    return {
        "success": True,
        "data": {
            "agent_id": "A1",
            "url": url,
            "status": "ready",
            "gestures": gestures if gestures is not None else {},
        },
    }


Answer = Callable[[str], Any]


def never(payload: str) -> str:
    """Marks a stand-in that never answers (the call hangs until cancelled)."""
    raise AssertionError("never called")


async def settle() -> None:
    """Wait until every gesture request of this event loop has finished."""
    running = [t for t in asyncio.all_tasks() if t.get_name().startswith("dynamics.gesture.")]
    await asyncio.gather(*running)


def triggered(value: bool) -> Answer:
    def answer(payload: str) -> str:
        action = json.loads(payload)["action"]
        return json.dumps(
            {"action": action, "animation_triggered": value, "service": "x", "status": "ok"}
        )

    return answer


def fails(code: int) -> Answer:
    def answer(payload: str) -> str:
        raise rtc.RpcError(code, "scripted failure")

    return answer


@dataclass
class RpcCall:
    destination_identity: str
    method: str
    payload: str
    response_timeout: float | None

    @property
    def body(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.payload)
        return parsed


class RecordingParticipant:
    """The room's local participant: records each perform_rpc and answers with `answer`
    (returns the reply or raises, for example an RpcError; `never` hangs)."""

    def __init__(self, identity: str = "agent-1", answer: Answer | None = None) -> None:
        self.identity = identity
        self.answer: Answer = answer or triggered(True)
        self.calls: list[RpcCall] = []
        self.cancelled = 0
        self.called = asyncio.Event()

    async def perform_rpc(
        self,
        *,
        destination_identity: str,
        method: str,
        payload: str,
        response_timeout: float | None = None,
    ) -> str:
        self.calls.append(RpcCall(destination_identity, method, payload, response_timeout))
        self.called.set()
        if self.answer is never:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        reply: str = self.answer(payload)
        return reply


class StandInRoom:
    def __init__(self, participant: RecordingParticipant, *, present: list[str]) -> None:
        self.local_participant = participant
        self.remote_participants: dict[str, object] = dict.fromkeys(present, object())


class ManualClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class _ScriptedStream(llm.LLMStream):
    def __init__(self, owner: ScriptedLLM, delta: llm.ChoiceDelta, **kw: Any) -> None:
        super().__init__(owner, **kw)
        self._delta = delta

    async def _run(self) -> None:
        self._event_ch.send_nowait(llm.ChatChunk(id="chunk", delta=self._delta))


class ScriptedLLM(llm.LLM[Any]):
    """Answers each turn with the next scripted delta (text or tool calls), then plain text."""

    def __init__(self, *deltas: llm.ChoiceDelta) -> None:
        super().__init__()
        self._deltas = list(deltas)

    def chat(
        self,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        **_: Any,
    ) -> llm.LLMStream:
        delta = self._deltas.pop(0) if self._deltas else llm.ChoiceDelta(content="Okay.")
        return _ScriptedStream(
            self, delta, chat_ctx=chat_ctx, tools=tools or [], conn_options=conn_options
        )
