"""The two avatars the command drives: the drawn placeholder face, or a bitHuman `.imx` model.

Each takes 24 kHz mono chunks with the silence rule's verdict (`push`) and yields video frames,
each with the 24 kHz audio that plays under it (`frames`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from livekit import rtc

from agent.placeholder.generator import FPS, PlaceholderVideoGenerator, mouth_level
from live_avatar.audio import SAMPLE_RATE

if TYPE_CHECKING:
    from live_avatar.options import Options

Frame = tuple[rtc.VideoFrame, np.ndarray]
"""A video frame and the int16 samples (24 kHz mono) that play under it."""


class Face(Protocol):
    name: str
    fps: int

    async def push(self, samples: np.ndarray, active: bool) -> None: ...

    async def end(self) -> None:
        """No more audio: what is buffered comes out, then `frames` ends (if it can)."""

    def frames(self) -> AsyncIterator[Frame]: ...

    async def aclose(self) -> None: ...


class PlaceholderFace:
    """The placeholder's renderer: one frame per 40 ms of audio, its mouth opened by the
    loudness of those 40 ms while the silence rule lets it animate; idle (mouth closed, eyes
    blinking) otherwise."""

    name = "placeholder"

    def __init__(self, generator: PlaceholderVideoGenerator | None = None) -> None:
        self.generator = generator or PlaceholderVideoGenerator()
        self.fps = self.generator.fps
        self._block = SAMPLE_RATE // FPS
        self._pending = np.zeros(0, np.int16)
        self._pending_active = False
        self._out: asyncio.Queue[Frame | None] = asyncio.Queue()

    async def push(self, samples: np.ndarray, active: bool) -> None:
        self._pending = np.concatenate([self._pending, samples])
        self._pending_active = self._pending_active or active
        while self._pending.size >= self._block:
            block, self._pending = self._pending[: self._block], self._pending[self._block :]
            self._emit(block, self._pending_active)
            self._pending_active = active

    def _emit(self, block: np.ndarray, active: bool) -> None:
        frame = self.generator.next_frame(mouth_level(block) if active else None)
        self._out.put_nowait((frame, block))

    async def end(self) -> None:
        if self._pending.size:  # the last partial frame, padded with silence
            block = np.zeros(self._block, np.int16)
            block[: self._pending.size] = self._pending
            self._pending = self._pending[:0]
            self._emit(block, self._pending_active)
        self._out.put_nowait(None)

    async def frames(self) -> AsyncIterator[Frame]:
        while (item := await self._out.get()) is not None:
            yield item

    async def aclose(self) -> None:
        return None


class BithumanFace:
    """An `.imx` model through the bitHuman SDK's `AsyncBithuman`: speech is pushed while the
    silence rule lets it animate, and flushed (end of speech) when it stops; the runtime then
    plays its idle loop."""

    name = "bitHuman"

    def __init__(self, runtime: Any) -> None:
        self._runtime = runtime
        self.fps = int(runtime.settings.FPS)
        self._speaking = False
        self._resampler: rtc.AudioResampler | None = None
        self._resampler_rate = SAMPLE_RATE

    @classmethod
    async def open(cls, options: Options) -> BithumanFace:
        from bithuman import AsyncBithuman

        runtime = await AsyncBithuman.create(
            model_path=str(options.model),
            api_secret=options.api_secret.get_secret_value() if options.api_secret else None,
            token=options.token.get_secret_value() if options.token else None,
            insecure=options.insecure,
        )
        return cls(runtime)

    async def push(self, samples: np.ndarray, active: bool) -> None:
        if active:
            await self._runtime.push_audio(samples.tobytes(), SAMPLE_RATE, last_chunk=False)
            self._speaking = True
        elif self._speaking:
            await self._runtime.flush()
            self._speaking = False

    async def end(self) -> None:
        if self._speaking:
            await self._runtime.flush()
            self._speaking = False

    async def frames(self) -> AsyncIterator[Frame]:
        async for frame in self._runtime.run():
            if frame.bgr_image is None:
                continue
            rgb = np.ascontiguousarray(frame.bgr_image[:, :, ::-1])
            video = rtc.VideoFrame(
                rgb.shape[1], rgb.shape[0], rtc.VideoBufferType.RGB24, rgb.tobytes()
            )
            yield video, self._audio(frame.audio_chunk)

    def _audio(self, chunk: Any) -> np.ndarray:
        """The runtime's audio for a frame (16 kHz for its models) back at 24 kHz."""
        if chunk is None:
            return np.zeros(0, np.int16)
        samples = np.asarray(chunk.array, dtype=np.int16)
        if chunk.sample_rate == SAMPLE_RATE:
            return samples
        if self._resampler is None or self._resampler_rate != chunk.sample_rate:
            self._resampler = rtc.AudioResampler(chunk.sample_rate, SAMPLE_RATE)
            self._resampler_rate = chunk.sample_rate
        audio = rtc.AudioFrame(samples.tobytes(), chunk.sample_rate, 1, samples.size)
        out = [np.frombuffer(f.data, np.int16) for f in self._resampler.push(audio)]
        return np.concatenate(out) if out else np.zeros(0, np.int16)

    async def aclose(self) -> None:
        await self._runtime.stop()
        self._runtime.cleanup()
