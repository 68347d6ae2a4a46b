"""The 3 s silence rule, on the logic and through the placeholder face it drives."""

from __future__ import annotations

import math

import numpy as np
import pytest

from live_avatar.audio import (
    CHUNK_SAMPLES,
    SAMPLE_RATE,
    SilenceGate,
    apply_volume,
    level_db,
)
from live_avatar.faces import PlaceholderFace
from live_avatar.run import feed
from live_avatar.sources import file_chunks


def tone(db: float, samples: int = CHUNK_SAMPLES) -> np.ndarray:
    """A sine whose RMS is `db` dBFS."""
    amplitude = 32768 * 10 ** (db / 20) * math.sqrt(2)
    t = np.arange(samples) / SAMPLE_RATE
    return np.rint(amplitude * np.sin(2 * np.pi * 220 * t)).astype(np.int16)


def test_level_db() -> None:
    assert level_db(np.zeros(240, np.int16)) == -math.inf
    assert level_db(np.zeros(0, np.int16)) == -math.inf
    assert level_db(tone(-20, 2400)) == pytest.approx(-20, abs=0.05)
    assert level_db(np.full(240, -32768, np.int16)) == pytest.approx(0.0)


def test_volume_scales_and_clips() -> None:
    samples = np.array([1000, -1000, 30000, -30000], np.int16)
    assert apply_volume(samples, 1.0) is samples
    assert apply_volume(samples, 0.5).tolist() == [500, -500, 15000, -15000]
    assert apply_volume(samples, 2.0).tolist() == [2000, -2000, 32767, -32768]


def test_quiet_from_the_start_never_animates() -> None:
    gate = SilenceGate(-40)
    assert not any(gate.update(tone(-45)) for _ in range(1000))


def test_three_seconds_below_the_threshold_stop_the_animation() -> None:
    gate = SilenceGate(-40)
    assert gate.update(tone(-30))
    quiet_chunks = round(3.0 * SAMPLE_RATE / CHUNK_SAMPLES)  # 300 chunks of 10 ms
    for _ in range(quiet_chunks - 1):
        assert gate.update(tone(-45))  # 2.99 s of silence: still animating
    assert not gate.update(tone(-45))  # the 3rd second completes: stopped
    assert not gate.update(np.zeros(CHUNK_SAMPLES, np.int16))


def test_speech_before_the_timeout_restarts_the_count() -> None:
    gate = SilenceGate(-40)
    gate.update(tone(-30))
    for _ in range(250):  # 2.5 s
        gate.update(tone(-50))
    assert gate.update(tone(-39.5))  # above -40: speech again
    for _ in range(299):
        assert gate.update(tone(-50))
    assert not gate.update(tone(-50))


def test_the_threshold_is_the_flag() -> None:
    for threshold, expected in ((-50, True), (-40, False), (-30, False)):
        assert SilenceGate(threshold).update(tone(-45)) is expected


def test_the_timeout_counts_samples_not_chunks() -> None:
    gate = SilenceGate(-40, timeout=0.5)
    gate.update(tone(-20))
    assert gate.update(tone(-60, SAMPLE_RATE // 4))
    assert not gate.update(tone(-60, SAMPLE_RATE // 4))


async def test_the_face_idles_three_seconds_after_the_voice_stops() -> None:
    # 1 s of voice, then 5 s of quiet: frames animate for the voice and the next 3 s only
    audio = np.concatenate([tone(-20, SAMPLE_RATE), tone(-60, 5 * SAMPLE_RATE)])
    face = PlaceholderFace()
    await feed(file_chunks(audio, realtime=False), face, SilenceGate(-40), volume=1.0)
    frames = [frame async for frame in face.frames()]
    assert len(frames) == 6 * 25
    # frames the rule let animate are counted as speaking by the generator: 1 s + 3 s
    assert face.generator.speaking_frames == 4 * 25
    assert face.generator.state is not None and face.generator.state[1] == 0  # mouth closed


async def test_volume_below_the_threshold_keeps_the_face_idle() -> None:
    audio = tone(-35, SAMPLE_RATE)
    face = PlaceholderFace()
    await feed(file_chunks(audio, realtime=False), face, SilenceGate(-40), volume=0.1)
    assert len([frame async for frame in face.frames()]) == 25
    assert face.generator.speaking_frames == 0
