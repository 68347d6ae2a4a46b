"""The placeholder avatar's CPU cost per session, next to a naive renderer that draws every frame.

    python benchmarks/placeholder_bench.py [--seconds 10] [--sessions 1] [--frames 500]
                                           [--no-publish]

1. Sessions in real time, no network: each session runs a generator into livekit's
   `AVSynchronizer` with a real `AudioSource` and `VideoSource`, what `AvatarRunner` does in a
   job minus publishing: `--seconds` of speech (a voice-like signal whose loudness changes all
   the time, so the mouth moves on most frames), then `--seconds` of idle (blinks). CPU per
   session is the process's CPU time over the wall time of each phase, divided by the number
   of sessions run side by side in the process (a job process runs one; one core = 100%).
   Rows:
   - "process at rest": nothing plays (livekit's native threads idling);
   - "voice only, no face": the voice alone into an audio source, as a session without an
     avatar plays it too;
   - "placeholder": as it runs in a job (frames composed from pre-drawn I420 pieces; an
     unchanged idle picture sent only every `IDLE_REFRESH_SECONDS`);
   - "placeholder, every frame": the same without idle thinning (25 frames/s always);
   - "naive per-frame draw": the same face and states drawn with Pillow at 512x512 for every
     frame and handed over as RGBA (the video source converts it to I420).
2. Render only: microseconds per frame of each renderer, no pacing, best of 3 rounds, and the
   share of one core that is at 25 fps.
3. Published through a real livekit-server (tools/livekit-server; skipped without it or with
   `--no-publish`), one subscriber in another process: the whole cost in the publishing
   process, WebRTC's VP8 encoder (one 512x512 layer, as the placeholder publishes) and Opus
   included, for the placeholder as shipped and without idle thinning.

Target: the placeholder at or below 5% of one core per session at 25 fps (parts 1 and 2: what
the avatar itself costs; part 3 shows what encoding the video adds on top).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere; imports below need the repo

import numpy as np  # noqa: E402
from livekit import api, rtc  # noqa: E402
from livekit.agents.voice.avatar import (  # noqa: E402
    AudioSegmentEnd,
    AvatarOptions,
    QueueAudioOutput,
)

from agent.placeholder.art import SUPERSAMPLE, Eyes, _Painter, face_art  # noqa: E402
from agent.placeholder.avatar import _Runner, resync  # noqa: E402
from agent.placeholder.generator import (  # noqa: E402
    FPS,
    HEIGHT,
    SAMPLE_RATE,
    WIDTH,
    PlaceholderVideoGenerator,
    idle_refresh_every,
    mouth_level,
)
from devkit.livekit_server import BINARY, LiveKitServer, running_server  # noqa: E402

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

    def _render(self, state: tuple[Eyes, int, str | None]) -> rtc.VideoFrame:
        self.video_frames += 1
        eyes, mouth, banner = state
        image = self._painter.face(eyes, mouth, banner=banner, from_scratch=True)
        return rtc.VideoFrame(WIDTH, HEIGHT, rtc.VideoBufferType.RGBA, image.tobytes())


class FixedFrame(PlaceholderVideoGenerator):
    """One fixed frame whatever the state (for the rows that measure everything else)."""

    def _render(self, state: tuple[Eyes, int, str | None]) -> rtc.VideoFrame:
        self.video_frames += 1
        if self._last_frame is None:
            self._last_frame = self.art.compose(Eyes.OPEN, 0)
        return self._last_frame


class AtRest(FixedFrame):
    """Nothing plays: the process's own background cost (livekit's native threads)."""


class VoiceOnly(FixedFrame):
    """Only the voice, into an audio source in real time: what a session without an avatar
    plays too (RoomIO's audio output), for the face's share of the placeholder's cost."""


Factory = Callable[[int], PlaceholderVideoGenerator]

RENDERERS: dict[str, Factory] = {
    "process at rest": lambda seed: AtRest(seed=seed),
    "voice only, no face": lambda seed: VoiceOnly(seed=seed),
    "placeholder": lambda seed: PlaceholderVideoGenerator(
        seed=seed, idle_refresh_frames=idle_refresh_every(FPS)
    ),
    "placeholder, every frame": lambda seed: PlaceholderVideoGenerator(seed=seed),
    "naive per-frame draw": lambda seed: NaiveGenerator(seed=seed),
}


async def _play(generator: PlaceholderVideoGenerator, stop: asyncio.Event) -> None:
    """What AvatarRunner does with a generator's output, minus publishing."""
    if isinstance(generator, AtRest):
        await stop.wait()
        return
    audio_source = rtc.AudioSource(SAMPLE_RATE, 1, queue_size_ms=100)
    video_source = rtc.VideoSource(WIDTH, HEIGHT)
    sync = rtc.AVSynchronizer(audio_source=audio_source, video_source=video_source, video_fps=FPS)

    generator.before_resume = lambda: resync(sync)  # as the job's runner does
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


async def run_sessions(factory: Factory, sessions: int, seconds: float) -> tuple[float, float, int]:
    """CPU share per session during speech and during idle, and video frames sent per second
    of idle per session."""
    generators = [factory(index) for index in range(sessions)]
    voice = [*speech(seconds), AudioSegmentEnd()]
    for generator in generators:
        for frame in voice:
            await generator.push_audio(frame)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(_play(generator, stop)) for generator in generators]
    at_rest = isinstance(generators[0], AtRest)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    if at_rest:
        await asyncio.sleep(seconds)
    # speech lasts as long as its audio plays: until every session has played it all
    while not at_rest and any(g.speaking_frames < seconds * FPS for g in generators):
        for task in tasks:
            if task.done():
                task.result()  # a renderer that failed
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)  # the mouth closes
    wall1, cpu1 = time.perf_counter(), time.process_time()
    sent = [g.video_frames for g in generators]
    await asyncio.sleep(seconds)
    wall2, cpu2 = time.perf_counter(), time.process_time()
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    speaking = (cpu1 - cpu0) / (wall1 - wall0) / sessions
    idle = (cpu2 - cpu1) / (wall2 - wall1) / sessions
    idle_fps = statistics.mean(g.video_frames - n for g, n in zip(generators, sent, strict=True))
    return speaking, idle, round(idle_fps / (wall2 - wall1), 1)


def render_only(factory: Factory, frames: int, *, speaking: bool) -> float:
    """Microseconds per frame of rendering alone (best of 3), naive frames converted to I420
    as the video source would."""
    levels = [mouth_level(np.frombuffer(f.data, dtype=np.int16)) for f in speech(frames / FPS)]
    chunk_levels = [max(levels[i : i + 4]) for i in range(0, len(levels), 4)]
    best = float("inf")
    for _ in range(3):
        generator = factory(1)
        started = time.perf_counter()
        for index in range(frames):
            level = chunk_levels[index % len(chunk_levels)] if speaking else None
            frame = generator.next_frame(level)
            if frame.type != rtc.VideoBufferType.I420:
                frame.convert(rtc.VideoBufferType.I420)
        best = min(best, (time.perf_counter() - started) / frames)
    return best * 1e6


# --- 3. published through a real server -----------------------------------------------------

SUBSCRIBER = """
import asyncio, sys
from livekit import rtc
async def main():
    room = rtc.Room()
    def on_track(track, publication, participant):
        video = track.kind == rtc.TrackKind.KIND_VIDEO
        stream = rtc.VideoStream(track) if video else rtc.AudioStream(track)
        async def drain():
            async for _ in stream:
                pass
        asyncio.ensure_future(drain())
    room.on("track_subscribed", on_track)
    await room.connect(sys.argv[1], sys.argv[2])
    await asyncio.sleep(float(sys.argv[3]))
    await room.disconnect()
asyncio.run(main())
"""


def _token(server: LiveKitServer, identity: str, room: str) -> str:
    grants = api.VideoGrants(room_join=True, room=room)
    return (
        api.AccessToken(server.api_key, server.api_secret)
        .with_identity(identity)
        .with_grants(grants)
        .to_jwt()
    )


async def published(
    server: LiveKitServer, room_name: str, refresh: int | None, seconds: float
) -> tuple[float, float]:
    """CPU share of this process publishing one placeholder (idle, then speech) to a
    subscriber in another process."""
    room = rtc.Room()
    await room.connect(server.url, _token(server, "avatar", room_name))
    generator = PlaceholderVideoGenerator(seed=1, idle_refresh_frames=refresh)
    audio = QueueAudioOutput(sample_rate=SAMPLE_RATE, wait_playback_start=True)
    runner = _Runner(
        room,
        audio_recv=audio,
        video_gen=generator,
        options=AvatarOptions(WIDTH, HEIGHT, FPS, SAMPLE_RATE, 1),
    )
    generator.before_resume = runner.resync
    await runner.start()
    viewer = subprocess.Popen(
        [sys.executable, "-c", SUBSCRIBER, server.url, _token(server, "viewer", room_name), "600"]
    )
    try:
        while generator.frame_index < 3 * FPS:  # subscribed, publishing, settled
            await asyncio.sleep(0.1)
        wall0, cpu0 = time.perf_counter(), time.process_time()
        await asyncio.sleep(seconds)
        wall1, cpu1 = time.perf_counter(), time.process_time()
        for frame in speech(seconds):
            await audio.capture_frame(frame)
        audio.flush()
        target = generator.speaking_frames + seconds * FPS
        while generator.speaking_frames < target:
            await asyncio.sleep(0.02)
        wall2, cpu2 = time.perf_counter(), time.process_time()
    finally:
        viewer.terminate()
        viewer.wait()
        await runner.aclose()
        await room.disconnect()
    return (cpu2 - cpu1) / (wall2 - wall1), (cpu1 - cpu0) / (wall1 - wall0)


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
        f"\n1. CPU per session in real time, no network: {args.sessions} session(s) side by side "
        f"in one process, {args.seconds:.0f} s of speech then {args.seconds:.0f} s idle "
        "(process CPU time / wall time / sessions; one core = 100%)\n"
    )
    print(f"   {'':26} {'speech':>8} {'idle':>8} {'idle frames/s':>14}")
    results: dict[str, tuple[float, float]] = {}
    for name, factory in RENDERERS.items():
        speaking, idle, idle_fps = await run_sessions(factory, args.sessions, args.seconds)
        results[name] = (speaking, idle)
        shown = "-" if name in ("process at rest", "voice only, no face") else f"{idle_fps}"
        print(f"   {name:26} {share(speaking):>8} {share(idle):>8} {shown:>14}")
    voice_s, voice_i = results["voice only, no face"]
    ours_s, ours_i = results["placeholder"]
    naive_s, naive_i = results["naive per-frame draw"]
    print(
        f"   {'naive / placeholder':26} {naive_s / ours_s:7.1f}x {naive_i / ours_i:7.1f}x"
        "   whole session"
    )
    print(
        f"   {'the face alone':26} {share(ours_s - voice_s):>8} {share(ours_i - voice_i):>8}"
        "   placeholder minus voice only"
    )
    print(
        f"   {'':26} {share(naive_s - voice_s):>8} {share(naive_i - voice_i):>8}"
        "   naive minus voice only"
    )

    print(f"\n2. Render only: microseconds per frame, best of 3 x {args.frames} frames\n")
    print(f"   {'':26} {'speech':>16} {'idle':>16}")
    timings: dict[str, tuple[float, float]] = {}
    for name in ("placeholder, every frame", "naive per-frame draw"):
        factory = RENDERERS[name]
        speaking_us = render_only(factory, args.frames, speaking=True)
        idle_us = render_only(factory, args.frames, speaking=False)
        timings[name] = (speaking_us, idle_us)
        print(
            f"   {name:26} {speaking_us:7.1f} us {share(speaking_us * FPS / 1e6)}"
            f" {idle_us:7.1f} us {share(idle_us * FPS / 1e6)}"
        )
    (ps, pi), (ns, ni) = timings["placeholder, every frame"], timings["naive per-frame draw"]
    print(f"   {'naive / placeholder':26} {ns / ps:9.0f}x {'':6} {ni / pi:9.0f}x")

    worst = max(ours_s, ours_i)
    verdict = "meets" if worst <= 0.05 else "MISSES"
    print(
        f"\nTarget <= 5% of one core per session at {FPS} fps: the placeholder {verdict} it "
        f"({share(worst).strip()} at most, the voice and livekit's sources included)."
    )
    if not args.no_publish:
        await publish_section(args.seconds)


async def publish_section(seconds: float) -> None:
    if not BINARY.is_file():
        print(f"\n3. Published: skipped, no livekit-server at {BINARY} (scripts/livekit-server.sh)")
        return
    print(
        f"\n3. Published through livekit-server to one subscriber (another process): this "
        f"process's CPU, VP8 and Opus encoding included, {seconds:.0f} s each\n"
    )
    print(f"   {'':26} {'speech':>8} {'idle':>8}")
    with running_server(Path(tempfile.mkdtemp(prefix="placeholder-bench-"))) as server:
        for index, (name, refresh) in enumerate(
            (("placeholder", idle_refresh_every(FPS)), ("placeholder, every frame", None))
        ):
            speaking, idle = await published(server, f"bench-{index}", refresh, seconds)
            print(f"   {name:26} {share(speaking):>8} {share(idle):>8}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="of speech, then of idle")
    parser.add_argument(
        "--sessions", type=int, default=1, help="side by side in one process (a job has one)"
    )
    parser.add_argument("--frames", type=int, default=500, help="per render-only round")
    parser.add_argument(
        "--no-publish", action="store_true", help="skip part 3 (the real livekit-server)"
    )
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
