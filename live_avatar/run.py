"""One run: audio source -> gain -> silence rule -> avatar -> window or MP4 (and echo).

The source is the microphone, or `--input-file` (paced in real time when someone watches it, or
when a bitHuman runtime renders it, since the SDK keeps its own clock; as fast as possible for
the placeholder writing a file). The sink is the window, or `--output`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sys
from collections.abc import AsyncIterator

import numpy as np

from common.logs import register_secrets, scrub_text
from common.settings import fail
from live_avatar.audio import SAMPLE_RATE, SilenceGate, apply_volume
from live_avatar.faces import BithumanFace, Face, PlaceholderFace
from live_avatar.mp4 import Mp4Writer
from live_avatar.options import PROG, Options
from live_avatar.sources import DeviceError, Microphone, Speaker, file_chunks, read_wav
from live_avatar.window import NoDisplay, Window


def say(message: str) -> None:
    print(f"live avatar: {message}", file=sys.stderr, flush=True)


async def open_face(options: Options) -> Face:
    if options.model is None:
        return PlaceholderFace()
    register_secrets(
        secret.get_secret_value() for secret in (options.api_secret, options.token) if secret
    )
    try:
        return await BithumanFace.open(options)
    except Exception as error:  # the SDK's own errors: a refused secret, a bad model
        fail(f"{PROG}: error: the bitHuman SDK did not start: {scrub_text(str(error))}")


async def feed(
    chunks: AsyncIterator[np.ndarray], face: Face, gate: SilenceGate, volume: float
) -> None:
    async for chunk in chunks:
        samples = apply_volume(chunk, volume)
        await face.push(samples, gate.update(samples))
    await face.end()


async def run(options: Options) -> None:
    samples = None
    if options.input_file is not None:
        try:
            samples = read_wav(options.input_file)
        except Exception as error:  # FFmpeg's errors for what is not audio
            fail(f"{PROG}: error: cannot read {options.input_file} as audio: {error}")
    window: Window | None = None
    microphone: Microphone | None = None
    speaker: Speaker | None = None
    try:
        if options.output is None:
            window = Window(f"{PROG} (q quits)")
        if samples is None:
            microphone = Microphone()
            microphone.start()
        if options.echo and options.output is None:
            speaker = Speaker()
            speaker.start()
    except (NoDisplay, DeviceError) as error:
        if microphone is not None:
            microphone.close()
        fail(f"{PROG}: error: {error}")
    if options.echo and options.output is not None:
        say("--echo has no effect with --output (the audio goes into the file)")

    face = await open_face(options)
    gate = SilenceGate(options.silent_threshold_db)
    if samples is not None:
        # the bitHuman runtime keeps its own clock: feed it at the pace it renders
        realtime = window is not None or options.model is not None
        chunks = file_chunks(samples, realtime=realtime)
        frame_limit: int | None = math.ceil(samples.size * face.fps / SAMPLE_RATE)
    else:
        assert microphone is not None
        chunks = microphone.chunks()
        frame_limit = None
    writer = Mp4Writer(options.output, face.fps) if options.output is not None else None
    source = f"file {options.input_file}" if samples is not None else "microphone"
    sink = f"file {options.output}" if writer is not None else "window (press q to quit)"
    say(f"{face.name} avatar, {source} -> {sink}")
    feeder = asyncio.create_task(feed(chunks, face, gate, options.volume))
    pump = asyncio.create_task(window.run()) if window is not None else None
    try:
        await _play(face, frame_limit, writer, window, speaker)
    finally:
        for task in (feeder, pump):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if writer is not None:
            writer.close()
            say(f"wrote {writer.path}: {writer.frames} frames, {writer.seconds:.2f} s")
        for device in (microphone, speaker):
            if device is not None:
                device.close()
        if window is not None:
            window.close()
        await face.aclose()


async def _play(
    face: Face,
    frame_limit: int | None,
    writer: Mp4Writer | None,
    window: Window | None,
    speaker: Speaker | None,
) -> None:
    """Frames to the sinks until the input is done (or `frame_limit`) or the window closes."""
    count = 0
    frames = face.frames()
    closed = asyncio.ensure_future(window.closed.wait()) if window is not None else None
    try:
        while frame_limit is None or count < frame_limit:
            following = asyncio.ensure_future(anext(frames))
            waiting = {following} if closed is None else {following, closed}
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if not following.done():  # the window closed first
                following.cancel()
                return
            try:
                video, audio = following.result()
            except StopAsyncIteration:
                return
            count += 1
            if writer is not None:
                writer.write(video, audio)
            if window is not None:
                window.show(video)
            if speaker is not None:
                speaker.play(audio)
    finally:
        if closed is not None:
            closed.cancel()
