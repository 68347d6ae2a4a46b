"""In-process audio endpoints and an event recorder for tests that drive a real AgentSession.

`Speaker` is an audio sink that plays instantly and reports playout the way `AvatarRunner` does
(an interruption needs a `playback_finished`); `Microphone` feeds real PCM frames into the
session's audio input; `SessionEvents` records what a session emits and waits without sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from livekit import rtc
from livekit.agents import AgentSession, llm, utils
from livekit.agents.voice import io
from livekit.agents.voice.avatar import AudioSegmentEnd, QueueAudioOutput
from livekit.agents.voice.events import (
    CloseEvent,
    ConversationItemAddedEvent,
    ErrorEvent,
    SessionUsageUpdatedEvent,
    UserInputTranscribedEvent,
)

from devkit.openai_realtime import SAMPLE_RATE, WAIT_TIMEOUT_S, tone


class SessionEvents:
    """What an AgentSession emits, with a wait that needs no sleeps."""

    def __init__(self, session: AgentSession[None]) -> None:
        self.errors: list[ErrorEvent] = []
        self.closes: list[CloseEvent] = []
        self.messages: list[llm.ChatMessage] = []
        self.transcripts: list[UserInputTranscribedEvent] = []
        self.usage: list[SessionUsageUpdatedEvent] = []
        self._changed = asyncio.Event()
        session.on("error", self._recorder(self.errors))
        session.on("close", self._recorder(self.closes))
        session.on("user_input_transcribed", self._recorder(self.transcripts))
        session.on("session_usage_updated", self._recorder(self.usage))
        session.on("conversation_item_added", self._on_item)

    def _recorder(self, into: list[Any]) -> Callable[[Any], None]:
        def record(event: Any) -> None:
            into.append(event)
            self._changed.set()

        return record

    def _on_item(self, event: ConversationItemAddedEvent) -> None:
        if isinstance(event.item, llm.ChatMessage):
            self.messages.append(event.item)
            self._changed.set()

    def said(self, role: str) -> list[str]:
        return [m.text_content or "" for m in self.messages if m.role == role]

    async def wait(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT_TIMEOUT_S):
            while not condition():
                self._changed.clear()
                await self._changed.wait()


class Speaker(QueueAudioOutput):
    """An in-process audio sink that plays instantly and reports playout as AvatarRunner does."""

    def __init__(self) -> None:
        super().__init__(sample_rate=SAMPLE_RATE)
        self.frames: list[rtc.AudioFrame] = []
        self.frame_arrived = asyncio.Event()
        self._position = 0.0
        self._playing = False
        self._task = asyncio.create_task(self._play())

    @property
    def played_ms(self) -> int:
        return round(sum(f.duration for f in self.frames) * 1000)

    def _finished(self, *, interrupted: bool) -> None:
        if self._playing:
            self.notify_playback_finished(self._position, interrupted=interrupted)
        self._position, self._playing = 0.0, False

    def clear_buffer(self) -> None:
        super().clear_buffer()
        self._finished(interrupted=True)

    async def _play(self) -> None:
        async for frame in self:
            if isinstance(frame, AudioSegmentEnd):
                self._finished(interrupted=False)
            else:
                self.frames.append(frame)
                self._position += frame.duration
                self._playing = True
                self.frame_arrived.set()

    async def aclose(self) -> None:
        await utils.aio.cancel_and_wait(self._task)


class Microphone(io.AudioInput):
    """Audio input fed by the test: real PCM frames into the session's input pipeline."""

    def __init__(self) -> None:
        super().__init__(label="test-microphone")
        self._frames = utils.aio.Chan[rtc.AudioFrame]()

    async def __anext__(self) -> rtc.AudioFrame:
        try:
            return await self._frames.recv()
        except utils.aio.ChanClosed:
            raise StopAsyncIteration from None

    async def speak(self, frames: list[rtc.AudioFrame]) -> None:
        for frame in frames:
            await self._frames.send(frame)


def pcm_frames(ms: int, hz: float, *, rate: int = 48_000) -> list[rtc.AudioFrame]:
    """10 ms PCM16 mono frames of a sine (or silence when hz is 0), at a microphone's rate."""
    pcm = tone(ms, hz, rate=rate)
    step = rate // 100
    size = step * 2
    return [rtc.AudioFrame(pcm[i : i + size], rate, 1, step) for i in range(0, len(pcm), size)]
