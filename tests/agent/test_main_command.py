"""`python -m agent` as a user runs it: a folder with a written `.env`, nothing exported."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import psutil
import pytest

from devkit.harness import AgentProcess, write_env
from devkit.livekit_server import LiveKitServer
from devkit.openai_realtime import FakeRealtimeServer
from tests.conftest import free_port

pytestmark = pytest.mark.e2e

OPENAI_KEY = "sk-main-command-never-logged"


def settings(livekit: LiveKitServer, realtime: FakeRealtimeServer, **extra: str) -> dict[str, str]:
    return {
        **livekit.env(),
        "OPENAI_API_KEY": OPENAI_KEY,
        "OPENAI_BASE_URL": realtime.base_url,
        "AGENT_NAME": "main-command",
        "AGENT_HTTP_PORT": "0",
        "AGENT_IDLE_PROCESSES": "0",
        "LOG_FORMAT": "json",
    } | extra


async def run_to_exit(folder: Path, command: str = "start") -> tuple[int, str]:
    agent = await AgentProcess.start(folder, command)
    async with asyncio.timeout(60):
        status = await agent.process.wait()
    return status, agent.text()


@pytest.mark.parametrize("command", ["dev", "start"])
async def test_settings_in_dotenv_reach_the_worker(
    command: str, livekit_server: LiveKitServer, realtime_server: FakeRealtimeServer, tmp_path: Path
) -> None:
    write_env(tmp_path, settings(livekit_server, realtime_server))
    agent = await AgentProcess.start(tmp_path, command)
    try:
        await agent.registered()
    finally:
        status = await agent.stop()
    assert status == 0
    output = agent.text()
    assert OPENAI_KEY not in output and livekit_server.api_secret not in output


@pytest.mark.parametrize("blank", ["OPENAI_API_KEY", "LIVEKIT_URL", "LIVEKIT_API_SECRET"])
async def test_a_blank_required_value_is_not_set(
    blank: str, livekit_server: LiveKitServer, realtime_server: FakeRealtimeServer, tmp_path: Path
) -> None:
    write_env(tmp_path, settings(livekit_server, realtime_server, **{blank: " "}))
    status, output = await run_to_exit(tmp_path)
    assert status == 2
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert lines[0].startswith("configuration error:") and blank in lines[0]
    assert "not set" in lines[0]


async def test_unreachable_livekit_exits_non_zero_with_one_line(
    livekit_server: LiveKitServer, realtime_server: FakeRealtimeServer, tmp_path: Path
) -> None:
    url = f"ws://127.0.0.1:{free_port()}"  # nothing listens there
    write_env(
        tmp_path,
        settings(livekit_server, realtime_server, LIVEKIT_URL=url, AGENT_CONNECT_RETRIES="1"),
    )
    status, output = await run_to_exit(tmp_path)
    assert status == 1
    last = output.strip().splitlines()[-1]
    assert last.startswith("worker stopped:") and url in last and "failed to connect" in last


async def test_a_refused_key_exits_at_once_with_one_line(
    livekit_server: LiveKitServer, realtime_server: FakeRealtimeServer, tmp_path: Path
) -> None:
    wrong = "not-the-secret-of-this-server-0123456789"
    write_env(tmp_path, settings(livekit_server, realtime_server, LIVEKIT_API_SECRET=wrong))
    status, output = await run_to_exit(tmp_path)
    assert status == 2
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert "refused LIVEKIT_API_KEY/LIVEKIT_API_SECRET" in lines[0]
    assert wrong not in output


def wakeups(pid: int) -> int:
    """Voluntary context switches of all a process's threads so far."""
    total = 0
    for thread in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            for line in (thread / "status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    total += int(line.split()[1])
    return total


def loop_block_variable(pid: int) -> list[bytes]:
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return [v for v in environ if v.startswith(b"LIVEKIT_AGENTS_LOOP_BLOCK_WARN_MS=")]


@pytest.mark.parametrize("warn_ms", [None, "250", "0"])
async def test_the_loop_block_monitor_setting_reaches_the_job_processes(
    warn_ms: str | None,
    livekit_server: LiveKitServer,
    realtime_server: FakeRealtimeServer,
    tmp_path: Path,
) -> None:
    extra = {"AGENT_IDLE_PROCESSES": "1"}
    if warn_ms is not None:
        extra["AGENT_LOOP_BLOCK_WARN_MS"] = warn_ms
    write_env(tmp_path, settings(livekit_server, realtime_server, **extra))
    agent = await AgentProcess.start(tmp_path)
    try:
        await agent.wait_for_log("process prewarmed")
        await asyncio.sleep(1)  # the monitor starts with the job process's loop, after prewarm
        (forkserver,) = psutil.Process(agent.process.pid).children()[-1:]
        (job,) = forkserver.children()
        variable = loop_block_variable(job.pid)
        # an idle job process wakes for the monitor (its heartbeat and its watchdog thread,
        # each every fifth of the threshold, 20-50 ms) and for a ping every 2.5 s
        before = wakeups(job.pid)
        await asyncio.sleep(2)
        rate = (wakeups(job.pid) - before) / 2
    finally:
        assert await agent.stop() == 0
    # measured: 98-103 wake-ups/s by default, 40 at 250 ms, 1 with the monitor off
    if warn_ms is None:
        assert variable == [] and rate >= 60
    elif warn_ms == "0":
        assert variable == [b"LIVEKIT_AGENTS_LOOP_BLOCK_WARN_MS=0"] and rate < 10
    else:
        assert variable == [b"LIVEKIT_AGENTS_LOOP_BLOCK_WARN_MS=250"] and 15 <= rate < 60
