"""`python -m live_avatar` as users run it: a speech WAV in, an MP4 out, and the one-line
refusals (exit status 2) for what cannot work."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from tests.live_avatar.speech import SECONDS, silent_spans, voiced_spans, write_wav

REPO = Path(__file__).resolve().parents[2]
FPS = 25
# the placeholder's mouth band (agent/placeholder/art.py MOUTH_BAND), middle third of the width
MOUTH_ROWS = slice(292, 400)
MOUTH_COLUMNS = slice(179, 333)
SECRET = "fake-live-avatar-secret-not-a-key"


def run(*args: str, display: bool = False) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)  # already cleared of our settings by the autouse fixture
    env["PYTHONPATH"] = str(REPO)
    if not display:
        env.pop("DISPLAY", None)
        env.pop("WAYLAND_DISPLAY", None)
    return subprocess.run(
        [sys.executable, "-m", "live_avatar", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def decode(path: Path) -> tuple[list[np.ndarray], np.ndarray, av.container.InputContainer]:
    container = av.open(str(path))
    video = [frame.to_ndarray(format="gray") for frame in container.decode(video=0)]
    container.seek(0)
    audio = [frame.to_ndarray().reshape(-1) for frame in container.decode(audio=0)]
    return video, np.concatenate(audio), container


def frames_within(spans: list[tuple[float, float]], margin: int) -> list[int]:
    """Frame indices inside the spans, `margin` frames in from each edge."""
    found: list[int] = []
    for start, end in spans:
        found.extend(range(math.ceil(start * FPS) + margin, math.floor(end * FPS) - margin))
    return found


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    folder = tmp_path_factory.mktemp("live-avatar")
    # 16 kHz stereo: the command resamples to 24 kHz mono
    wav = write_wav(folder / "speech.wav", rate=16_000, channels=2)
    output = folder / "avatar.mp4"
    result = subprocess.run(
        [sys.executable, "-m", "live_avatar", "--input-file", str(wav), "--output", str(output)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return output, result.stderr


def test_a_wav_becomes_an_mp4_of_its_length(rendered: tuple[Path, str]) -> None:
    output, stderr = rendered
    video, audio, container = decode(output)
    with container:
        video_stream = container.streams.video[0]
        audio_stream = container.streams.audio[0]
        assert video_stream.codec_context.name in {"h264", "mpeg4"}
        assert (video_stream.width, video_stream.height) == (512, 512)
        assert video_stream.average_rate == FPS
        assert audio_stream.codec_context.name == "aac"
        assert audio_stream.rate == 24_000
        assert container.duration is not None
        duration = container.duration / av.time_base
    assert len(video) == math.ceil(SECONDS * FPS)
    assert abs(duration - SECONDS) <= 2 / FPS
    assert abs(audio.size / 24_000 - SECONDS) <= 2 / FPS
    assert f"{len(video)} frames" in stderr


def test_the_mouth_moves_during_speech_and_rests_in_silence(rendered: tuple[Path, str]) -> None:
    video, _, container = decode(rendered[0])
    container.close()
    mouths = [frame[MOUTH_ROWS, MOUTH_COLUMNS].astype(np.int16) for frame in video]
    closed = mouths[5]  # 0.2 s: the silence before the first word
    openness = np.array([np.abs(mouth - closed).mean() for mouth in mouths])
    # a frame per 40 ms: a frame on the edge of speech may hold either
    speaking = openness[frames_within(voiced_spans(), margin=1)]
    silent = openness[frames_within(silent_spans(), margin=2)]
    assert silent.max() < 1.0, silent.round(2)
    assert np.mean(speaking > 8.0) > 0.9, speaking.round(2)
    # and it moves with the syllables, not just open: consecutive frames differ
    steps = np.array(
        [np.abs(mouths[i] - mouths[i - 1]).mean() for i in frames_within(voiced_spans(), 1)]
    )
    assert np.mean(steps > 1.0) > 0.4, steps.round(2)


def test_the_voice_is_in_the_mp4_where_the_mouth_moves(rendered: tuple[Path, str]) -> None:
    _, audio, container = decode(rendered[0])
    container.close()
    samples = audio.astype(np.float64)

    def rms(start: float, end: float) -> float:
        part = samples[int(start * 24_000) : int(end * 24_000)]
        return float(np.sqrt(np.mean(part * part)))

    for start, end in voiced_spans():
        assert rms(start + 0.1, end - 0.1) > 0.05
    for start, end in silent_spans():
        assert rms(start + 0.1, end - 0.1) < 0.005


def test_missing_model_file_is_one_line(tmp_path: Path) -> None:
    line = one_line(
        run("--model", str(tmp_path / "nowhere.imx"), "--api-secret", SECRET, "--output", "x.mp4")
    )
    assert "model file not found" in line and "nowhere.imx" in line
    assert SECRET not in line


def test_a_bad_value_is_one_line() -> None:
    line = one_line(run("--slient-threshold-db", "loud"))
    assert "--silent-threshold-db" in line and "loud" in line


def test_an_input_that_is_not_audio_is_one_line(tmp_path: Path) -> None:
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not a wav file")
    line = one_line(run("--input-file", str(junk), "--output", str(tmp_path / "out.mp4")))
    assert "cannot read" in line and "junk.wav" in line


def test_no_display_is_one_line(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "speech.wav")
    line = one_line(run("--input-file", str(wav)))
    assert "no display" in line and "--output" in line
