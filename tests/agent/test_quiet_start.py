"""`python -m agent dev|start` print what the user can act on: not livekit's notices that the
commands we wrap are deprecated, nor PyJWT's warning about a dev server's short secret."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from devkit.harness import AgentProcess, write_env
from devkit.livekit_server import LiveKitServer
from devkit.openai_realtime import FakeRealtimeServer
from tests.agent.test_main_command import run_to_exit, settings

pytestmark = pytest.mark.e2e


async def test_dev_shows_no_deprecation_notice(
    livekit_server: LiveKitServer, realtime_server: FakeRealtimeServer, tmp_path: Path
) -> None:
    write_env(tmp_path, settings(livekit_server, realtime_server, LOG_FORMAT="console"))
    agent = await AgentProcess.start(tmp_path, "dev")
    try:
        async with asyncio.timeout(60):
            while "registered worker" not in agent.text():
                assert agent.process.returncode is None, agent.text()
                await asyncio.sleep(0.1)
    finally:
        await agent.stop()
    output = agent.text()
    assert "deprecated" not in output.lower() and "auto-reload" not in output, output
    assert "starting worker" in output  # livekit's other lines still show


async def test_a_short_dev_secret_brings_no_jwt_warning(
    livekit_server: LiveKitServer, realtime_server: FakeRealtimeServer, tmp_path: Path
) -> None:
    # `secret`, as `livekit-server --dev` has it: this server refuses it, after PyJWT signed with it
    write_env(tmp_path, settings(livekit_server, realtime_server, LIVEKIT_API_SECRET="secret"))
    status, output = await run_to_exit(tmp_path, "dev")
    assert status == 2
    lines = output.strip().splitlines()
    assert len(lines) == 1 and "refused LIVEKIT_API_KEY/LIVEKIT_API_SECRET" in lines[0], output
