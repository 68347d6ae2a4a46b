"""`python -m agent console --text` as a user starts it, in a terminal, when something it needs is
missing: one clear line and a non-zero exit, never tracebacks under a prompt left on screen. And
when all is there, none of livekit's deprecation banners."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pexpect
import pytest

from devkit.harness import free_port
from devkit.openai_realtime import FakeRealtimeServer
from tests.agent.test_worker import OPENAI_KEY, agent_env, converse_in_console
from tests.subprocesses import spawn_console
from tests.system import portaudio_fixture  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def start_console(env: dict[str, str], cwd: Path) -> tuple[int, list[str]]:
    """`console --text` in a pseudo-terminal until it exits: its status and printed lines."""
    child, printed = spawn_console(env, cwd, columns=200)
    try:
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    text = _ESCAPES.sub("", printed.getvalue())
    assert child.exitstatus is not None, text
    return child.exitstatus, [line for line in text.splitlines() if line.strip()]


@pytest.mark.usefixtures("portaudio")
async def test_an_unreachable_model_is_one_line_and_exit_1(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    env = agent_env(tmp_path, OPENAI_BASE_URL=closed)
    status, lines = await asyncio.to_thread(start_console, env, tmp_path)
    assert status == 1
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"✘ OpenAI: cannot reach {closed}: ClientConnectorError")
    assert "→ check OPENAI_BASE_URL" in lines[0]


@pytest.mark.usefixtures("portaudio")
async def test_a_refused_key_is_one_line_and_exit_2(
    tmp_path: Path, realtime_server: FakeRealtimeServer
) -> None:
    realtime_server.script.api_key = "sk-the-only-key-the-stand-in-takes"
    env = agent_env(tmp_path, OPENAI_BASE_URL=realtime_server.base_url)
    status, lines = await asyncio.to_thread(start_console, env, tmp_path)
    assert status == 2
    assert len(lines) == 1, lines
    assert "refused (401 invalid_api_key)" in lines[0] and OPENAI_KEY not in lines[0]
    assert not realtime_server.connections  # no realtime session was attempted


async def test_no_portaudio_is_one_line_and_exit_1(
    tmp_path: Path, realtime_server: FakeRealtimeServer
) -> None:
    # sounddevice's own failure when its PortAudio lookup finds nothing, first on the path
    shim = tmp_path / "no-portaudio"
    shim.mkdir()
    (shim / "sounddevice.py").write_text('raise OSError("PortAudio library not found")\n')
    env = agent_env(tmp_path, OPENAI_BASE_URL=realtime_server.base_url)
    env["PYTHONPATH"] = f"{shim}:{ROOT}"
    status, lines = await asyncio.to_thread(start_console, env, tmp_path)
    assert status == 1
    assert len(lines) == 1, lines
    assert lines[0].startswith("✘ PortAudio: not found")
    assert "apt-get install libportaudio2" in lines[0]


@pytest.mark.usefixtures("portaudio")
async def test_a_working_console_shows_no_deprecation_banner(
    tmp_path: Path, realtime_server: FakeRealtimeServer
) -> None:
    env = agent_env(tmp_path, OPENAI_BASE_URL=realtime_server.base_url)
    transcript = await asyncio.to_thread(converse_in_console, env, tmp_path)
    assert "You said: what time is it." in transcript
    assert "deprecated" not in transcript.lower()
    assert "Starting console mode" in transcript  # livekit's own lines still show
