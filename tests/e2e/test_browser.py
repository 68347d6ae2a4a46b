"""The web client in a real browser: headless Chromium driven by playwright-core (web/test/
drive.mjs), its fake microphone playing a speech WAV made by espeak-ng, against the real LiveKit
server, the token server serving the built page, the agent with the placeholder avatar and the
OpenAI Realtime stand-in. Screenshots and the driver's reports go to artifacts/browser/
(docs/web-client.png is a copy of talk-speaking.png)."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devkit.openai_realtime import GREETING
from tests.e2e.conftest import ROOT, Stack
from tests.system import unavailable

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.timeout(300)]

WEB = ROOT / "web"
ARTIFACTS = ROOT / "artifacts" / "browser"
SAID = "tell me about the little robot who learned to paint"
TYPED = "what colour is the sky"
SILENCE_SECONDS = 8  # after the words, so the looping fake microphone makes one turn at a time


@dataclass(frozen=True)
class Browser:
    node: str
    chromium: str
    wav: Path


def _chromium() -> str | None:
    override = os.environ.get("CHROMIUM_BIN")
    if override:
        return override if os.access(override, os.X_OK) else None
    # Debian's /usr/bin/chromium is a shell wrapper around this binary
    for candidate in ("/usr/lib/chromium/chromium", "chromium", "chromium-browser"):
        found = shutil.which(candidate)
        if found:
            return found
    return None


def _speech_wav(folder: Path) -> Path:
    """espeak-ng saying SAID, then silence; Chromium's fake microphone loops the file."""
    spoken = folder / "spoken.wav"
    subprocess.run(
        ["espeak-ng", "-s", "150", "-w", str(spoken), SAID], check=True, capture_output=True
    )
    with wave.open(str(spoken)) as source:
        params = source.getparams()
        frames = source.readframes(params.nframes)
    path = folder / "speech.wav"
    with wave.open(str(path), "wb") as out:
        out.setparams(params)
        out.writeframes(frames + b"\0" * params.sampwidth * params.framerate * SILENCE_SECONDS)
    return path


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Browser:
    node = shutil.which("node")
    if node is None:
        unavailable("node is not installed (apt-get install nodejs npm)")
    assert node is not None
    built = subprocess.run(
        [str(ROOT / "scripts" / "build-web.sh")],
        env={**os.environ, "WEB_REQUIRED": "1"},
        capture_output=True,
        text=True,
    )
    if built.returncode != 0:
        unavailable(f"the web client could not be built: {built.stderr.strip()[-2000:]}")
    chromium = _chromium()
    if chromium is None:
        unavailable("chromium is not installed (apt-get install chromium), or set CHROMIUM_BIN")
    if shutil.which("espeak-ng") is None:
        unavailable("espeak-ng is not installed (apt-get install espeak-ng)")
    assert chromium is not None
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return Browser(node, chromium, _speech_wav(tmp_path_factory.mktemp("speech")))


async def drive(browser: Browser, scenario: str, url: str, **options: Any) -> dict[str, Any]:
    """Run one scenario of web/test/drive.mjs; its report, with the driver's error if any."""
    config = {
        "scenario": scenario,
        "url": url,
        "chromium": browser.chromium,
        "wav": str(browser.wav),
        "artifacts": str(ARTIFACTS),
        **options,
    }
    process = await asyncio.create_subprocess_exec(
        browser.node, str(WEB / "test" / "drive.mjs"), json.dumps(config),
        cwd=WEB, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await process.communicate()
    lines = stdout.decode().strip().splitlines()
    assert process.returncode == 0 and lines, stderr.decode()[-4000:]
    report: dict[str, Any] = json.loads(lines[-1])
    (ARTIFACTS / f"{scenario}.json").write_text(json.dumps(report, indent=1))
    return report


def _steady(samples: list[dict[str, Any]], state: str, settle_ms: float = 400) -> list[float]:
    """The mouth's brightness in samples taken in `state`, leaving out those within `settle_ms`
    of a change of state."""
    changes = [b["t"] for a, b in itertools.pairwise(samples) if a["state"] != b["state"]]
    return [
        s["mouth"]
        for s in samples
        if s["state"] == state and all(abs(s["t"] - t) > settle_ms for t in changes)
    ]


def _entries(report: dict[str, Any], who: str) -> list[str]:
    return [e["text"] for e in report["transcript"] if e["who"] == who and e["final"]]


async def test_talking_to_the_avatar_in_chromium(stack: Stack, browser: Browser) -> None:
    stack.realtime.script.transcripts.append(SAID)
    stack.realtime.script.ms_per_char = 50  # replies long enough to watch the face move
    agent = await stack.start_agent(stack.settings(AVATAR_MODE="placeholder"))
    reply = f"You said: {SAID}."
    chat_reply = f"You said: {TYPED}."

    report = await drive(
        browser,
        "talk",
        stack.token_server_url,
        greeting=GREETING,
        user_text=SAID,
        reply=reply,
        chat_text=TYPED,
        chat_reply=chat_reply,
    )

    assert "error" not in report, report
    # connected, the agent joined and its state is shown
    assert "the agent is here" in report["status_after_join"]
    await agent.wait_for_log("avatar ready", mode="placeholder")
    # the transcript: greeting, the user's spoken turn, the reply; the typed turn and its reply
    assert _entries(report, "agent")[:2] == [GREETING, reply], report["transcript"]
    assert _entries(report, "user")[:2] == [SAID, TYPED], report["transcript"]
    assert chat_reply in _entries(report, "agent")
    typed = next(e for e in report["transcript"] if e["text"] == TYPED)
    assert typed["label"] == "You (typed)"
    # the microphone: off at first (?mic=off), on from the keyboard, its level moving
    assert (report["mic_before"], report["mic_on"]) == ("false", "Microphone on")
    assert max(report["mic_levels"]) > 0.3, report["mic_levels"]
    # the video: the face (not black), new frames all along, the mouth moving while it speaks
    samples = report["samples"]
    assert len(samples) > 50
    assert {(s["width"], s["height"]) for s in samples} == {(512, 512)}
    assert min(s["luma"] for s in samples) > 40, "black frames"
    assert samples[-1]["frames"] - samples[0]["frames"] > 50, "the video stood still"
    states = {s["state"] for s in samples}
    assert {"listening", "speaking"} <= states, states
    # the mouth's box is skin when closed and dark when open: open while the agent speaks,
    # closed while it listens (but for the moments the state and the face take to meet)
    closed, opened = max(s["mouth"] for s in samples), min(s["mouth"] for s in samples)
    assert closed - opened > 40, (closed, opened)
    middle = (closed + opened) / 2
    speaking = _steady(samples, "speaking")
    listening = _steady(samples, "listening")
    assert sum(m < middle for m in speaking) >= 0.8 * len(speaking), speaking
    assert sum(m > middle for m in listening) >= 0.9 * len(listening), listening
    # usable on a phone: nothing wider than the screen
    assert report["phone_overflow"] is False
    assert report["console_errors"] == []


async def test_the_page_says_when_the_agent_does_not_join(stack: Stack, browser: Browser) -> None:
    # no agent is running: the token server dispatches one nobody serves
    report = await drive(browser, "no-agent", stack.token_server_url, agent_timeout=2)

    assert "error" not in report, report
    assert "waiting for the agent" in report["status_connected"]
    assert report["alert_role"] == "alert"
    assert "The agent did not join within 2 s" in report["alert"]
    assert 1.5 <= report["alert_after_s"] <= 15, report["alert_after_s"]
    assert "still waiting for the agent" in report["status"]


async def test_the_page_says_when_the_token_server_is_unreachable(
    stack: Stack, browser: Browser
) -> None:
    report = await drive(browser, "unreachable", stack.token_server_url)

    assert "error" not in report, report
    assert "The token server is unreachable" in report["alert"]
    assert report["status"] == "Not connected."
    assert report["start_enabled"] is True, "one can try again"
