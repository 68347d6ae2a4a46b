"""The local window (Tk), on a virtual X display: it shows the frames it is given, and `q`
quits. Needs Xvfb (Debian: apt-get install xvfb)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from livekit import rtc
from PIL import ImageGrab

from live_avatar.faces import PlaceholderFace
from live_avatar.window import Window
from tests.live_avatar.speech import write_wav
from tests.system import module_missing, program_missing, require

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def display() -> Iterator[str]:
    """A throwaway Xvfb server; yields its DISPLAY value."""
    require(program_missing("Xvfb", "xvfb") or module_missing("tkinter", "python3-tk"))
    binary = shutil.which("Xvfb")
    assert binary is not None
    read, write = os.pipe()
    process = subprocess.Popen(
        [binary, "-displayfd", str(write), "-screen", "0", "640x640x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    with os.fdopen(read) as numbers:
        number = numbers.readline().strip()  # written once the server accepts clients
    try:
        assert number, "Xvfb did not start"
        yield f":{number}"
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_the_window_shows_each_frame_and_q_quits(
    display: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISPLAY", display)
    window = Window("live avatar test")
    pump = asyncio.create_task(window.run())
    face = PlaceholderFace()
    for level in (0, 7):
        frame = face.generator.next_frame(level)
        window.show(frame)
        await asyncio.sleep(0.3)
        # the window sits at the screen's top left corner (no window manager)
        shown = np.asarray(ImageGrab.grab(bbox=(1, 1, 513, 513), xdisplay=display))[..., :3]
        rgb = frame.convert(rtc.VideoBufferType.RGB24)
        expected = np.frombuffer(rgb.data, np.uint8).reshape(512, 512, 3)
        assert np.abs(shown.astype(int) - expected.astype(int)).mean() < 1.0
    window._root.event_generate("<KeyPress-q>", when="tail")
    async with asyncio.timeout(2):
        await pump
    assert window.closed.is_set()


def test_the_command_plays_a_file_in_the_window(display: str, tmp_path: Path) -> None:
    # played in real time: a short one
    layout = ((0.3, False), (0.8, True), (0.3, False))
    wav = write_wav(tmp_path / "speech.wav", rate=44_100, channels=1, layout=layout)
    result = subprocess.run(
        [sys.executable, "-m", "live_avatar", "--input-file", str(wav)],
        env={**os.environ, "PYTHONPATH": str(REPO), "DISPLAY": display},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "window (press q to quit)" in result.stderr
