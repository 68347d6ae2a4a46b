"""Where the audio comes from (a WAV file or the microphone) and where the echo goes.

Both sources yield 24 kHz mono int16 chunks of 10 ms (the last chunk of a file may be
shorter). PortAudio (through sounddevice) is loaded only when a device is used, so headless runs
work on machines without it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import av
import numpy as np

from live_avatar.audio import CHUNK_SAMPLES, SAMPLE_RATE

ECHO_MAX_SECONDS = 0.5  # echo lagging further behind than this drops the backlog


class DeviceError(Exception):
    """No usable audio device (or no PortAudio): the message is the one line to print."""


def read_wav(path: Path) -> np.ndarray:
    """The whole file as 24 kHz mono int16 (any rate, channel count and sample format)."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    pieces: list[np.ndarray] = []
    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise ValueError("no audio in it")
        for frame in container.decode(audio=0):
            pieces.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(frame))
    pieces.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
    return np.concatenate(pieces).astype(np.int16) if pieces else np.zeros(0, np.int16)


async def file_chunks(samples: np.ndarray, *, realtime: bool) -> AsyncIterator[np.ndarray]:
    """`samples` in 10 ms chunks; `realtime` paces them like a microphone would deliver them."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for index, offset in enumerate(range(0, samples.size, CHUNK_SAMPLES)):
        if realtime:
            await asyncio.sleep(max(0.0, start + index * CHUNK_SAMPLES / SAMPLE_RATE - loop.time()))
        else:
            await asyncio.sleep(0)  # let the avatar's tasks run between chunks
        yield samples[offset : offset + CHUNK_SAMPLES]


def _sounddevice() -> ModuleType:
    try:
        import sounddevice as sd
    except OSError as error:  # sounddevice imports, then cannot find libportaudio
        raise DeviceError(
            f"audio devices need the PortAudio library ({error}); install it (Debian/Ubuntu: "
            "sudo apt-get install libportaudio2) or use --input-file and --output"
        ) from None
    module: ModuleType = sd
    return module


class Microphone:
    """The default input device at 24 kHz mono, read in 10 ms blocks."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[np.ndarray] = asyncio.Queue()
        self._stream: Any = None

    def start(self) -> None:
        sd = _sounddevice()
        loop = asyncio.get_running_loop()

        def received(indata: np.ndarray, frames: int, time: Any, status: Any) -> None:
            loop.call_soon_threadsafe(self._queue.put_nowait, indata[:, 0].copy())

        try:
            self._stream = sd.InputStream(
                samplerate=SAMPLE_RATE,
                channels=1,
                dtype="int16",
                blocksize=CHUNK_SAMPLES,
                callback=received,
            )
            self._stream.start()
        except (sd.PortAudioError, ValueError) as error:
            raise DeviceError(
                f"no microphone: {error}; check that an input device is connected and allowed, "
                "or use --input-file"
            ) from None

    async def chunks(self) -> AsyncIterator[np.ndarray]:
        while True:
            yield await self._queue.get()

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None


class Speaker:
    """`--echo`: the avatar's audio on the default output device, as it is produced."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._lock = threading.Lock()
        self._stream: Any = None

    def start(self) -> None:
        sd = _sounddevice()

        def wanted(outdata: Any, frames: int, time: Any, status: Any) -> None:
            size = frames * 2
            with self._lock:
                data = bytes(self._buffer[:size])
                del self._buffer[:size]
            outdata[:] = (data + bytes(size - len(data))) if len(data) < size else data

        try:
            self._stream = sd.RawOutputStream(
                samplerate=SAMPLE_RATE, channels=1, dtype="int16", callback=wanted
            )
            self._stream.start()
        except (sd.PortAudioError, ValueError) as error:
            raise DeviceError(f"no speaker for --echo: {error}") from None

    def play(self, samples: np.ndarray) -> None:
        limit = int(ECHO_MAX_SECONDS * SAMPLE_RATE) * 2
        with self._lock:
            self._buffer.extend(samples.astype(np.int16).tobytes())
            if len(self._buffer) > limit:
                del self._buffer[: len(self._buffer) - limit]

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
