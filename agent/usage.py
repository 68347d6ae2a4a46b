"""Per-session usage: model tokens from the session's collector, speech seconds from states."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from livekit.agents import AgentSession
from livekit.agents.metrics.usage import LLMModelUsage
from livekit.agents.voice.events import AgentStateChangedEvent, UserStateChangedEvent


class SpeechClock:
    """Accumulates how long one party spends in its "speaking" state."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._since: float | None = None
        self.seconds = 0.0

    def update(self, speaking: bool) -> None:
        now = self._clock()
        if speaking and self._since is None:
            self._since = now
        elif not speaking and self._since is not None:
            self.seconds += now - self._since
            self._since = None

    def total(self) -> float:
        running = self._clock() - self._since if self._since is not None else 0.0
        return self.seconds + running


class UsageTracker:
    """Attach to a session; `summary()` at the end gives the fields of the usage log line."""

    def __init__(
        self, session: AgentSession[Any], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._session = session
        self._clock = clock
        self._started = clock()
        self._user = SpeechClock(clock)
        self._agent = SpeechClock(clock)
        session.on("user_state_changed", self._on_user_state)
        session.on("agent_state_changed", self._on_agent_state)

    def _on_user_state(self, ev: UserStateChangedEvent) -> None:
        self._user.update(ev.new_state == "speaking")

    def _on_agent_state(self, ev: AgentStateChangedEvent) -> None:
        self._agent.update(ev.new_state == "speaking")

    def detach(self) -> None:
        self._session.off("user_state_changed", self._on_user_state)
        self._session.off("agent_state_changed", self._on_agent_state)

    def summary(self) -> dict[str, Any]:
        tokens = {"input_tokens": 0, "output_tokens": 0, "input_audio_tokens": 0}
        tokens |= {"output_audio_tokens": 0, "input_cached_tokens": 0}
        for usage in self._session.usage.model_usage:
            if isinstance(usage, LLMModelUsage):
                for key in tokens:
                    tokens[key] += getattr(usage, key)
        return {
            "duration_s": round(self._clock() - self._started, 3),
            "user_speech_s": round(self._user.total(), 3),
            "agent_speech_s": round(self._agent.total(), 3),
            **tokens,
        }
