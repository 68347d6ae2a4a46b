"""The placeholder avatar's generator: frame size and rate, the mouth following the voice in
step with it, blinks when idle, the gesture banner, interruptions and segment ends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from livekit import rtc
from livekit.agents import AgentSession
from livekit.agents.voice.avatar import AudioSegmentEnd

from agent.dynamics.keymap import keymap_for
from agent.dynamics.settings import DynamicsSettings
from agent.dynamics.stats import Outcome
from agent.placeholder import (
    GESTURES,
    PlaceholderAvatar,
    PlaceholderGestures,
    PlaceholderVideoGenerator,
    builtin_catalog,
    start_placeholder_gestures,
)
from agent.placeholder.art import (
    BANNER_BAND,
    EYES_BAND,
    MOUTH_BAND,
    MOUTH_LEVELS,
    Eyes,
    _i420,
    face_art,
)
from agent.placeholder.avatar import resync
from agent.placeholder.generator import (
    BLINK_GAP_SECONDS,
    FPS,
    FRAME_RATES,
    GESTURE_SECONDS,
    SAMPLE_RATE,
    mouth_level,
)
from agent.settings import PLACEHOLDER_FRAME_RATES

CHUNK = SAMPLE_RATE // FPS  # samples per video frame: 40 ms
BLINK_GAP_FRAMES = (round(BLINK_GAP_SECONDS[0] * FPS), round(BLINK_GAP_SECONDS[1] * FPS))
Item = rtc.VideoFrame | rtc.AudioFrame | AudioSegmentEnd


def tone(
    seconds: float, amplitude: float, *, rate: int = SAMPLE_RATE, channels: int = 1
) -> list[rtc.AudioFrame]:
    """10 ms frames of a 220 Hz tone at `amplitude` of full scale (0 = silence)."""
    per_frame = rate // 100
    frames = []
    for index in range(round(seconds * 100)):
        t = (np.arange(per_frame) + index * per_frame) / rate
        mono = (np.sin(2 * np.pi * 220 * t) * amplitude * 32767).astype(np.int16)
        samples = np.repeat(mono, channels) if channels > 1 else mono
        frames.append(rtc.AudioFrame(samples.tobytes(), rate, channels, per_frame))
    return frames


async def push(generator: PlaceholderVideoGenerator, frames: list[Any]) -> None:
    for frame in frames:
        await generator.push_audio(frame)


async def take(stream: AsyncIterator[Item], count: int) -> list[Item]:
    return [await anext(stream) for _ in range(count)]


def planes(frame: rtc.VideoFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    data = np.frombuffer(bytes(frame.data), dtype=np.uint8)
    w, h = frame.width, frame.height
    y = data[: w * h].reshape(h, w)
    u = data[w * h : w * h * 5 // 4].reshape(h // 2, w // 2)
    v = data[w * h * 5 // 4 :].reshape(h // 2, w // 2)
    return y, u, v


def rows(band: tuple[float, float], height: int = 512) -> slice:
    return slice(round(band[0] * height / 2) * 2, round(band[1] * height / 2) * 2)


def differing_rows(a: rtc.VideoFrame, b: rtc.VideoFrame) -> np.ndarray:
    ya, yb = planes(a)[0], planes(b)[0]
    return np.flatnonzero((ya != yb).any(axis=1))


def video(items: list[Item]) -> list[rtc.VideoFrame]:
    return [item for item in items if isinstance(item, rtc.VideoFrame)]


def audio(items: list[Item]) -> list[rtc.AudioFrame]:
    return [item for item in items if isinstance(item, rtc.AudioFrame)]


@pytest.fixture
def generator() -> PlaceholderVideoGenerator:
    return PlaceholderVideoGenerator(seed=7)


# --- the picture ---------------------------------------------------------------------------


def test_composed_frames_are_the_drawn_face_pixel_for_pixel() -> None:
    """Pasting bands gives exactly the picture drawn whole: no feature crosses a band edge."""
    art = face_art()
    for eyes in Eyes:
        for mouth in (0, 3, MOUTH_LEVELS - 1):
            for banner in (None, "laugh_react"):
                composed = bytes(art.compose(eyes, mouth, banner).data)
                drawn = _i420(art.draw(eyes, mouth, banner)).tobytes()
                assert composed == drawn, (eyes, mouth, banner)


async def test_frames_are_512x512_i420_and_one_per_40_ms_of_speech(
    generator: PlaceholderVideoGenerator,
) -> None:
    await push(generator, [*tone(1.0, 0.3), AudioSegmentEnd()])
    stream = aiter(generator)
    items = await take(stream, 2 * FPS + 1)
    assert isinstance(items[-1], AudioSegmentEnd)
    frames, chunks = video(items), audio(items)
    assert len(frames) == FPS and len(chunks) == FPS
    assert all((f.width, f.height, f.type) == (512, 512, rtc.VideoBufferType.I420) for f in frames)
    assert all(c.samples_per_channel == CHUNK and c.sample_rate == SAMPLE_RATE for c in chunks)
    assert generator.speaking_frames == FPS
    # each 40 ms of audio goes out right after the video frame that shows it (the audio source
    # then holds as much audio as the synchronizer's queue holds frames); the segment ends after
    kinds = "".join("V" if isinstance(x, rtc.VideoFrame) else "A" for x in items[:-1])
    assert kinds == "VA" * FPS
    # then idle frames, with no audio
    assert all(isinstance(item, rtc.VideoFrame) for item in await take(stream, 10))


async def test_a_real_av_synchronizer_paces_it_at_25_fps(
    generator: PlaceholderVideoGenerator,
) -> None:
    """What AvatarRunner does with the frames: 1.2 s of speech then idle, in real time."""
    audio_source = rtc.AudioSource(SAMPLE_RATE, 1, queue_size_ms=100)
    video_source = rtc.VideoSource(512, 512)
    sync = rtc.AVSynchronizer(audio_source=audio_source, video_source=video_source, video_fps=FPS)
    await push(generator, [*tone(1.2, 0.3), AudioSegmentEnd()])
    pushed = 0

    async def run() -> None:
        nonlocal pushed
        async for item in generator:
            if isinstance(item, AudioSegmentEnd):
                continue
            await sync.push(item)
            pushed += isinstance(item, rtc.VideoFrame)

    task = asyncio.create_task(run())
    started = time.monotonic()
    await asyncio.sleep(2.0)
    elapsed = time.monotonic() - started
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await sync.aclose()
    await audio_source.aclose()
    await video_source.aclose()
    # the synchronizer holds two frames ahead; a busy machine may lag a frame or two
    assert FPS * elapsed - 4 <= pushed <= FPS * elapsed + 4, (pushed, elapsed)
    assert generator.speaking_frames == 30


# --- the mouth -----------------------------------------------------------------------------


def test_mouth_level_grows_with_loudness() -> None:
    levels = [
        mouth_level((np.ones(CHUNK) * amplitude * 32767).astype(np.int16))
        for amplitude in (0.0, 0.003, 0.02, 0.06, 0.15, 0.5)
    ]
    assert levels[0] == 0 and levels[1] == 0  # silence and a hiss keep it closed
    assert levels == sorted(levels) and levels[-1] == MOUTH_LEVELS - 1
    assert len(set(levels)) >= 4


async def test_the_mouth_follows_each_40_ms_of_the_voice(
    generator: PlaceholderVideoGenerator,
) -> None:
    # 0.2 s silence, 0.2 s quiet, 0.2 s loud, 0.2 s silence, as one segment
    amplitudes = [0.0, 0.03, 0.4, 0.0]
    await push(generator, [f for a in amplitudes for f in tone(0.2, a)] + [AudioSegmentEnd()])
    items = await take(generator.__aiter__(), 2 * 20 + 1)
    assert isinstance(items[-1], AudioSegmentEnd)
    levels = []
    for frame, chunk in zip(video(items)[:20], audio(items), strict=True):
        shown = generator_level(frame)
        assert shown == mouth_level(np.frombuffer(chunk.data, dtype=np.int16))
        levels.append(shown)
    silent, quiet, loud, after = levels[0:5], levels[5:10], levels[10:15], levels[15:20]
    assert set(silent) == {0} and set(after) == {0}
    assert min(quiet) > 0 and max(quiet) < min(loud)
    # the picture: only the mouth band changes between a closed and an open mouth
    changed = differing_rows(video(items)[0], video(items)[12])
    mouth = rows(MOUTH_BAND)
    assert changed.size and changed.min() >= mouth.start and changed.max() < mouth.stop


def generator_level(frame: rtc.VideoFrame) -> int:
    """Which mouth a frame shows, found by comparing its mouth band with the art's."""
    art = face_art()
    y = planes(frame)[0]
    for level, band in enumerate(art.mouths):
        if np.array_equal(y[band.top : band.bottom], band.y):
            return level
    raise AssertionError("no known mouth in this frame")


async def test_after_speech_the_mouth_closes_within_a_few_frames(
    generator: PlaceholderVideoGenerator,
) -> None:
    await push(generator, [*tone(0.2, 0.5), AudioSegmentEnd()])
    items = await take(generator.__aiter__(), 11 + 6)
    idle = video(items)[5:]
    assert generator_level(video(items)[4]) == MOUTH_LEVELS - 1
    assert [generator_level(f) for f in idle][-2:] == [0, 0]
    assert [generator_level(f) for f in idle] == sorted(
        (generator_level(f) for f in idle), reverse=True
    )


async def test_at_12_fps_a_frame_carries_83_ms_of_speech() -> None:
    """A lower frame rate (PLACEHOLDER_FPS): one frame and its chunk per 1/12 s of speech."""
    generator = PlaceholderVideoGenerator(seed=7, fps=12)
    await push(generator, [*tone(1.0, 0.3), AudioSegmentEnd()])
    items = await take(aiter(generator), 25)
    assert isinstance(items[-1], AudioSegmentEnd)
    chunks = audio(items)
    assert len(video(items)) == 12 and len(chunks) == 12 == generator.speaking_frames
    assert {c.samples_per_channel for c in chunks} == {SAMPLE_RATE // 12}
    kinds = "".join("V" if isinstance(x, rtc.VideoFrame) else "A" for x in items[:-1])
    assert kinds == "VA" * 12


async def test_at_12_fps_blinks_keep_their_timing_in_seconds() -> None:
    generator = PlaceholderVideoGenerator(seed=7, fps=12)
    frames = 12 * 30
    closed = []
    for index in range(frames):
        generator.next_frame(None)
        assert generator.state is not None
        if generator.state[0] is Eyes.CLOSED:
            closed.append(index)
    starts = [i for i in closed if i - 1 not in closed]
    gaps = np.diff(starts) / 12
    assert len(starts) >= 5 and all(2.4 <= gap <= 5.6 + 0.2 for gap in gaps), gaps
    assert len(closed) == len(starts), "one closed frame per blink at 12 fps"


def test_the_frame_rates_settings_offer_are_the_ones_the_generator_takes() -> None:
    assert PLACEHOLDER_FRAME_RATES == FRAME_RATES


@pytest.mark.parametrize("fps", [0, 7, 11, 31, 60])
def test_a_frame_rate_that_would_drift_or_stall_is_refused(fps: int) -> None:
    rates = "10, 12, 15, 16, 20, 24, 25, 30"
    with pytest.raises(ValueError, match=f"fps {fps}: must be one of {rates}"):
        PlaceholderVideoGenerator(fps=fps)


# --- the eyes ------------------------------------------------------------------------------


async def test_idle_eyes_blink_every_few_seconds(generator: PlaceholderVideoGenerator) -> None:
    frames = video(await take(generator.__aiter__(), FPS * 20))
    art = face_art()
    eyes = rows(EYES_BAND)
    open_eyes = art.eyes[Eyes.OPEN].y
    closed = [
        i
        for i, f in enumerate(frames)
        if np.array_equal(planes(f)[0][eyes], art.eyes[Eyes.CLOSED].y)
    ]
    starts = [i for i in closed if i - 1 not in closed]
    assert len(starts) >= 3, "blinks in 20 s of idle"
    gaps = np.diff(starts)
    assert all(BLINK_GAP_FRAMES[0] <= gap <= BLINK_GAP_FRAMES[1] + 4 for gap in gaps), gaps
    # a blink is short: open eyes most of the time, and nothing but the eyes changes
    opened = sum(np.array_equal(planes(f)[0][eyes], open_eyes) for f in frames)
    assert opened > 0.9 * len(frames)
    changed = differing_rows(frames[starts[0] - 1], frames[starts[0]])
    assert changed.min() >= eyes.start and changed.max() < eyes.stop
    # an unchanged picture is the same frame object: nothing is drawn or copied for it
    assert generator.frames_drawn < len(frames) // 10


# --- gestures ------------------------------------------------------------------------------


async def test_a_gesture_shows_its_name_and_smiling_eyes_then_goes(
    generator: PlaceholderVideoGenerator,
) -> None:
    stream = generator.__aiter__()
    before = video(await take(stream, 3))[-1]
    target = PlaceholderGestures(generator)
    assert target.is_ready()
    assert await target.perform("laugh_react") is Outcome.PERFORMED
    assert await target.perform("moonwalk") is Outcome.NOT_PERFORMED
    during = video(await take(stream, 1))[0]
    assert generator.state == (Eyes.SMILING, 0, "laugh_react")
    changed = differing_rows(before, during)
    banner, eyes = rows(BANNER_BAND), rows(EYES_BAND)
    assert any(banner.start <= r < banner.stop for r in changed), "the banner appears"
    assert any(eyes.start <= r < eyes.stop for r in changed), "the eyes smile"
    # a bright banner: the frame's mean luma rises (what a viewer's luma check sees)
    y_before, y_during = planes(before)[0], planes(during)[0]
    assert y_during[banner].mean() > y_before[banner].mean() + 10
    # it lasts GESTURE_SECONDS, then the plain face is back
    rest = video(await take(stream, round(GESTURE_SECONDS * FPS)))
    assert generator.gesture is None and generator.state is not None
    assert generator.state[2] is None
    assert not np.array_equal(planes(rest[-1])[0][banner], y_during[banner])


async def test_gestures_show_while_speaking_too(generator: PlaceholderVideoGenerator) -> None:
    await push(generator, tone(0.4, 0.4))
    stream = generator.__aiter__()
    await take(stream, 2)
    generator.show_gesture("mini_wave_hello")
    frame = video(await take(stream, 2))[0]
    assert generator.state is not None and generator.state[2] == "mini_wave_hello"
    assert generator_level(frame) > 0


def test_every_builtin_gesture_has_keywords_and_a_banner() -> None:
    catalog = builtin_catalog()
    assert catalog.has_dynamics and catalog.gesture_names == sorted(GESTURES)
    keymap = keymap_for(None, catalog.gesture_names)
    assert sorted(rule.gesture for rule in keymap.rules) == sorted(GESTURES)
    found = keymap.matcher().match("haha that's so funny")
    assert found is not None and found.gesture == "laugh_react"
    art = face_art()
    for gesture in GESTURES:
        assert art.banner(gesture).y.std() > 5, gesture


async def test_keywords_and_the_tool_reach_the_placeholder_through_dynamics() -> None:
    settings = DynamicsSettings(
        _env_file=None,  # type: ignore[call-arg]
        dynamics_function_tool=True,
        dynamics_map_path=None,
        dynamics_min_gap=0,
    )
    avatar = PlaceholderAvatar(PlaceholderVideoGenerator(seed=1))
    session: AgentSession[Any] = AgentSession()
    dynamics = await start_placeholder_gestures(session, avatar, settings)
    try:
        assert dynamics.active and dynamics.tool is not None
        found = dynamics.react("haha that's so funny", source="user_speech")
        assert found is not None and found.gesture == "laugh_react"
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert avatar.generator.gesture == "laugh_react"
        assert dynamics.stats.counts[Outcome.PERFORMED] == 1
        # the model's tool goes the same way
        answer = await dynamics.tool(raw_arguments={"gesture": "thumbs_up"})
        assert "performing" in answer
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert avatar.generator.gesture == "thumbs_up"
    finally:
        await dynamics.aclose()


# --- interruptions and segment ends --------------------------------------------------------


async def test_clear_buffer_drops_the_audio_not_yet_played(
    generator: PlaceholderVideoGenerator,
) -> None:
    await push(generator, tone(1.0, 0.3))
    stream = generator.__aiter__()
    first = await take(stream, 10)
    assert len(video(first)) == 5 and len(audio(first)) == 5
    generator.clear_buffer()
    after = await take(stream, 20)
    assert audio(after) == [] and len(video(after)) == 20
    assert generator.speaking_frames == 5 and generator.clears == 1
    # the next reply plays from its start
    await push(generator, [*tone(0.2, 0.3), AudioSegmentEnd()])
    again = await take(stream, 11)
    assert len(audio(again)) == 5 and isinstance(again[-1], AudioSegmentEnd)


async def test_a_segment_end_follows_its_last_audio_padded_to_a_whole_frame(
    generator: PlaceholderVideoGenerator,
) -> None:
    await push(generator, [*tone(0.25, 0.3), AudioSegmentEnd(), *tone(0.08, 0.3)])
    await push(generator, [AudioSegmentEnd()])
    items = await take(generator.__aiter__(), 2 * 7 + 1 + 2 * 2 + 1)
    ends = [i for i, item in enumerate(items) if isinstance(item, AudioSegmentEnd)]
    # each segment's end right after its last audio
    kinds = "".join(
        "E" if i in ends else "V" if isinstance(x, rtc.VideoFrame) else "A"
        for i, x in enumerate(items)
    )
    assert kinds == "VA" * 7 + "E" + "VA" * 2 + "E"
    assert ends == [14, 19]
    first = audio(items[:14])
    assert len(first) == 7 and all(c.samples_per_channel == CHUNK for c in first)
    tail = np.frombuffer(first[-1].data, dtype=np.int16)
    assert tail[: CHUNK // 4].any() and not tail[CHUNK // 4 :].any()
    assert len(audio(items[15:19])) == 2


async def test_other_rates_and_stereo_come_out_as_24_khz_mono(
    generator: PlaceholderVideoGenerator,
) -> None:
    await push(generator, [*tone(0.5, 0.3, rate=48000, channels=2), AudioSegmentEnd()])
    items = []
    stream = generator.__aiter__()
    while not items or not isinstance(items[-1], AudioSegmentEnd):
        items.append(await anext(stream))
    chunks = audio(items)
    assert all(c.sample_rate == SAMPLE_RATE and c.num_channels == 1 for c in chunks)
    assert 0.5 <= sum(c.duration for c in chunks) <= 0.6
    assert max(generator_level(f) for f in video(items)) > 0


# --- idle thinning --------------------------------------------------------------------------


async def test_an_unchanged_idle_picture_is_sent_only_every_few_frames() -> None:
    generator = PlaceholderVideoGenerator(seed=7, idle_refresh_frames=5)
    resumed: list[int] = []

    async def before_resume() -> None:
        resumed.append(generator.frame_index)

    generator.before_resume = before_resume
    stream = generator.__aiter__()
    started = time.monotonic()
    frames = video(await take(stream, 6))
    elapsed = time.monotonic() - started
    # the first frame at once, then one per 5 frames' time, each after a resync
    assert generator.frame_index == 1 + 5 * 5 and generator.video_frames == 6
    assert 0.75 <= elapsed <= 1.5, elapsed
    assert len(resumed) == 5
    assert all(frame is frames[0] for frame in frames)

    # what changes the picture goes out within a frame's time: a gesture...
    await asyncio.sleep(0.1)
    generator.show_gesture("laugh_react")
    started = time.monotonic()
    await take(stream, 1)
    assert time.monotonic() - started < 0.1
    assert generator.state is not None and generator.state[2] == "laugh_react"
    # ...and speech arriving while it waits
    await take(stream, 1)
    waiting = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    await push(generator, tone(0.2, 0.4))
    async with asyncio.timeout(0.15):
        first = await waiting
    assert isinstance(first, rtc.VideoFrame) and generator_level(first) > 0


async def test_blinks_still_show_with_idle_thinning() -> None:
    generator = PlaceholderVideoGenerator(seed=3, idle_refresh_frames=10)
    stream = generator.__aiter__()
    shown: list[Eyes] = []
    async with asyncio.timeout(10):
        while Eyes.CLOSED not in shown:
            await take(stream, 1)
            assert generator.state is not None
            shown.append(generator.state[0])
    assert shown[-2:] == [Eyes.HALF, Eyes.CLOSED]
    assert generator.frame_index >= BLINK_GAP_FRAMES[0]


async def test_thinned_frames_keep_livekits_synchronizer_on_schedule(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Gaps between frames, then speech: with the resync, livekit's frame clock never falls
    behind (it would log a warning and capture in a burst), and the speech plays at 25 fps."""
    generator = PlaceholderVideoGenerator(seed=5, idle_refresh_frames=10)
    audio_source = rtc.AudioSource(SAMPLE_RATE, 1, queue_size_ms=100)
    video_source = rtc.VideoSource(512, 512)
    sync = rtc.AVSynchronizer(audio_source=audio_source, video_source=video_source, video_fps=FPS)
    generator.before_resume = lambda: resync(sync)
    pushed: list[float] = []

    async def run() -> None:
        async for item in generator:
            if isinstance(item, AudioSegmentEnd):
                continue
            await sync.push(item)
            if isinstance(item, rtc.VideoFrame):
                pushed.append(time.monotonic())

    caplog.set_level("DEBUG", logger="livekit")
    task = asyncio.create_task(run())
    try:
        await asyncio.sleep(1.5)
        idle = len(pushed)
        await push(generator, [*tone(1.0, 0.3), AudioSegmentEnd()])
        await asyncio.sleep(1.5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await sync.aclose()
        await audio_source.aclose()
        await video_source.aclose()
    assert idle <= 8, "1.5 s of an unchanged face: the first frame and a refresh every 0.4 s"
    assert generator.speaking_frames == FPS
    assert not [r for r in caplog.records if "behind schedule" in r.getMessage()]
