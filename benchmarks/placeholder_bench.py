"""The placeholder avatar's CPU cost per session, next to a naive renderer that draws every frame.

    python benchmarks/placeholder_bench.py [--seconds 10] [--sessions 4] [--frames 500]

1. Sessions in real time: each session runs the placeholder's generator into livekit's
   `AVSynchronizer` with a real `AudioSource` and `VideoSource` (what `AvatarRunner` does in a
   job, minus publishing), `--seconds` of speech (a voice-like signal whose loudness changes every
   frame, so the mouth moves all the time) then `--seconds` of idle (blinks). CPU per session is
   the process's CPU time over the wall time of each phase, divided by the number of sessions
   run side by side in the process (one core = 100%). Rows:
   - "livekit pipeline only": a generator that yields one fixed frame and the audio; what the
     synchronizer and the sources cost whatever is drawn;
   - "placeholder": the real generator (frames composed from pre-rendered I420 pieces, reused
     while the picture does not change);
   - "naive per-frame draw": the same face and states, drawn with Pillow at 512x512 for every
     frame and handed over as RGBA (the video source converts it to I420).
   Not included: WebRTC's video encoder, which runs once a viewer subscribes and costs the
   same for any avatar of this size (VP8 at 512x512, 25 fps; one layer, as the placeholder
   publishes it).
2. Render only: microseconds per frame of each renderer, no pacing, best of 3 rounds, and the
   share of one core this is at 25 fps.

Target: the placeholder at or below 5% of one core per session at 25 fps.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere; imports below need the repo

import numpy as np  # noqa: E402
from livekit import rtc  # noqa: E402
from livekit.agents.voice.avatar import AudioSegmentEnd, VideoGenerator  # noqa: E402

from agent.placeholder.art import SUPERSAMPLE, Eyes, _Painter, face_art  # noqa: E402
from agent.placeholder.generator import (  # noqa: E402
    FPS,
    HEIGHT,
    SAMPLE_RATE,
    WIDTH,
    PlaceholderVideoGenerator,
    mouth_level,
)

CHUNK = SAMPLE_RATE // FPS


def speech(seconds: float) -> list[rtc.AudioFrame]:
    """10 ms frames of a voice-like sound: 150 Hz and harmonics under a 4 Hz syllable
    envelope that also drops to silence between words, so the mouth opening changes often."""
    per_frame = SAMPLE_RATE // 100
    frames = []
    for index in range(round(seconds * 100)):
        t = (np.arange(per_frame) + index * per_frame) / SAMPLE_RATE
        voice = sum(np.sin(2 * np.pi * 150 * h * t) / h for h in (1, 2, 3, 4))
        envelope = np.clip(np.sin(2 * np.pi * 4 * t) * 0.6 + 0.4, 0, 1) * (0.3 + 0.7 * (t % 1.3))
        samples = (voice * envelope * 9000).astype(np.int16)
        frames.append(rtc.AudioFrame(samples.tobytes(), SAMPLE_RATE, 1, per_frame))
    return frames


class NaiveGenerator(PlaceholderVideoGenerator):
    """The same face and states, drawn from scratch with Pillow for every frame (RGBA)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._painter = _Painter(WIDTH, HEIGHT, supersample=1)

    def next_frame(self, level: int | None) -> rtc.VideoFrame:
        eyes, mouth, banner = self.advance(level)
        image = self._painter.face(eyes, mouth, banner=banner, from_scratch=True)
        return rtc.VideoFrame(WIDTH, HEIGHT, rtc.VideoBufferType.RGBA, image.tobytes())


class FixedFrameGenerator(PlaceholderVideoGenerator):
    """The pipeline's own cost: one fixed I420 frame, whatever the state."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._fixed = self.art.compose(Eyes.OPEN, 0)

    def next_frame(self, level: int | None) -> rtc.VideoFrame:
        self.advance(level)
        return self._fixed


class AtRest(FixedFrameGenerator):
    """Nothing plays: the process's own background cost (livekit's native threads)."""


class VoiceOnly(FixedFrameGenerator):
    """Only the voice, into an audio source in real time: what a session without an avatar
    plays too (RoomIO's audio output), for the face's share of the placeholder's cost."""


RENDERERS: dict[str, type[PlaceholderVideoGenerator]] = {
    "process at rest": AtRest,
    "voice only, no face": VoiceOnly,
    "livekit pipeline only": FixedFrameGenerator,
    "placeholder": PlaceholderVideoGenerator,
    "naive per-frame draw": NaiveGenerator,
}


async def _play(generator: VideoGenerator, stop: asyncio.Event) -> None:
    """What AvatarRunner does with a generator's output, minus publishing."""
    if isinstance(generator, AtRest):
        await stop.wait()
        return
    audio_source = rtc.AudioSource(SAMPLE_RATE, 1, queue_size_ms=100)
    video_source = rtc.VideoSource(WIDTH, HEIGHT)
    sync = rtc.AVSynchronizer(audio_source=audio_source, video_source=video_source, video_fps=FPS)
    stream: AsyncIterator[rtc.VideoFrame | rtc.AudioFrame | AudioSegmentEnd] = aiter(generator)
    try:
        if isinstance(generator, VoiceOnly):
            async for item in stream:  # the audio source's queue paces it
                if isinstance(item, rtc.AudioFrame):
                    await audio_source.capture_frame(item)
                elif isinstance(item, AudioSegmentEnd):
                    break
            await stop.wait()
            return
        while not stop.is_set():
            item = await anext(stream)
            if not isinstance(item, AudioSegmentEnd):
                await sync.push(item)
    finally:
        await sync.aclose()
        await audio_source.aclose()
        await video_source.aclose()


async def run_sessions(
    kind: type[PlaceholderVideoGenerator], sessions: int, seconds: float
) -> tuple[float, float, int]:
    """CPU share per session during speech and during idle, and video frames per session."""
    generators = [kind(seed=index) for index in range(sessions)]
    voice = [*speech(seconds), AudioSegmentEnd()]
    for generator in generators:
        for frame in voice:
            await generator.push_audio(frame)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(_play(generator, stop)) for generator in generators]
    wall0, cpu0 = time.perf_counter(), time.process_time()
    if kind is AtRest:
        await asyncio.sleep(seconds)
    # speech lasts as long as its audio plays: until every session has played it all
    while kind is not AtRest and any(g.speaking_frames < seconds * FPS for g in generators):
        for task in tasks:
            if task.done():
                task.result()  # a renderer that failed
        await asyncio.sleep(0.02)
    wall1, cpu1 = time.perf_counter(), time.process_time()
    await asyncio.sleep(seconds)
    wall2, cpu2 = time.perf_counter(), time.process_time()
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    speaking = (cpu1 - cpu0) / (wall1 - wall0) / sessions
    idle = (cpu2 - cpu1) / (wall2 - wall1) / sessions
    frames = round(statistics.mean(g.video_frames for g in generators))
    return speaking, idle, frames


def render_only(kind: type[PlaceholderVideoGenerator], frames: int, *, speaking: bool) -> float:
    """Microseconds per frame of rendering alone (best of 3), naive frames converted to I420
    as the video source would."""
    levels = [mouth_level(np.frombuffer(f.data, dtype=np.int16)) for f in speech(frames / FPS)]
    chunk_levels = [max(levels[i : i + 4]) for i in range(0, len(levels), 4)]
    best = float("inf")
    for _ in range(3):
        generator = kind(seed=1)
        started = time.perf_counter()
        for index in range(frames):
            level = chunk_levels[index % len(chunk_levels)] if speaking else None
            frame = generator.next_frame(level)
            if frame.type != rtc.VideoBufferType.I420:
                frame.convert(rtc.VideoBufferType.I420)
        best = min(best, (time.perf_counter() - started) / frames)
    return best * 1e6


def share(value: float) -> str:
    return f"{value * 100:5.2f}%"


async def main_async(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    face_art(WIDTH, HEIGHT)  # what the worker's prewarm does once per process
    print(
        f"placeholder avatar, {WIDTH}x{HEIGHT} at {FPS} fps; face drawn once in "
        f"{time.perf_counter() - started:.2f} s (supersampled x{SUPERSAMPLE})"
    )
    print(
        f"\n1. CPU per session in real time: {args.sessions} session(s) side by side in one "
        f"process, {args.seconds:.0f} s of speech then {args.seconds:.0f} s idle "
        "(process CPU time / wall time / sessions; one core = 100%)\n"
    )
    print(f"   {'':24} {'speech':>8} {'idle':>8} {'frames':>8}")
    results: dict[str, tuple[float, float]] = {}
    for name, kind in RENDERERS.items():
        speaking, idle, frames = await run_sessions(kind, args.sessions, args.seconds)
        results[name] = (speaking, idle)
        shown = "-" if kind in (AtRest, VoiceOnly) else str(frames)
        print(f"   {name:24} {share(speaking):>8} {share(idle):>8} {shown:>8}")
    voice_s, voice_i = results["voice only, no face"]
    ours_s, ours_i = results["placeholder"]
    naive_s, naive_i = results["naive per-frame draw"]
    print(
        f"   {'naive / placeholder':24} {naive_s / ours_s:7.1f}x {naive_i / ours_i:7.1f}x"
        "   whole session"
    )
    print(
        f"   {'the face alone':24} {share(ours_s - voice_s):>8} {share(ours_i - voice_i):>8}"
        "   placeholder minus voice only"
    )
    print(
        f"   {'':24} {share(naive_s - voice_s):>8} {share(naive_i - voice_i):>8}"
        "   naive minus voice only"
    )
    print(
        f"   {'naive / placeholder':24} "
        f"{(naive_s - voice_s) / max(ours_s - voice_s, 1e-4):7.1f}x "
        f"{(naive_i - voice_i) / max(ours_i - voice_i, 1e-4):7.1f}x   the face alone"
    )

    print(f"\n2. Render only: microseconds per frame, best of 3 x {args.frames} frames\n")
    print(f"   {'':24} {'speech':>14} {'idle':>14}")
    timings: dict[str, tuple[float, float]] = {}
    for name in ("placeholder", "naive per-frame draw"):
        kind = RENDERERS[name]
        speaking_us = render_only(kind, args.frames, speaking=True)
        idle_us = render_only(kind, args.frames, speaking=False)
        timings[name] = (speaking_us, idle_us)
        print(
            f"   {name:24} {speaking_us:8.1f} us {share(speaking_us * FPS / 1e6)}"
            f" {idle_us:8.1f} us {share(idle_us * FPS / 1e6)}"
        )
    (ps, pi), (ns, ni) = timings["placeholder"], timings["naive per-frame draw"]
    print(f"   {'naive / placeholder':24} {ns / ps:10.0f}x {'':6} {ni / pi:10.0f}x")
    worst = max(ours_s, ours_i)
    verdict = "meets" if worst <= 0.05 else "MISSES"
    print(
        f"\nTarget <= 5% of one core per session at {FPS} fps: the placeholder {verdict} it "
        f"({share(worst).strip()} at most, the voice and livekit's sources included)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="of speech, then of idle")
    parser.add_argument(
        "--sessions", type=int, default=1, help="side by side in one process (a job has one)"
    )
    parser.add_argument("--frames", type=int, default=500, help="per render-only round")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
