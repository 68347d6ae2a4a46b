"""A worker's life around its sessions: drain on SIGTERM, and a failed job that leaves the next
one working (audio-only; the avatar's side of both is in test_cloud_avatar.py)."""

from __future__ import annotations

import asyncio
import signal

import pytest

from devkit.harness import agent_identity
from devkit.openai_realtime import GREETING
from tests.e2e.conftest import OPENAI_KEY, Stack

pytestmark = pytest.mark.e2e


async def test_sigterm_lets_the_live_session_finish_then_exits_zero(stack: Stack) -> None:
    agent = await stack.start_agent()
    user = await stack.join()
    await user.until(lambda: GREETING in user.final_texts(), within=30)
    speaker = agent_identity(user)
    assert speaker is not None

    agent.process.send_signal(signal.SIGTERM)
    await agent.wait_for_log("draining worker")
    # draining: no new jobs, but the conversation in progress goes on
    await user.open_mic()
    await user.say(1.0)
    await user.until(lambda: "You said: hello." in user.final_texts(speaker), within=30)
    assert agent.process.returncode is None

    await user.leave()
    async with asyncio.timeout(60):
        status = await agent.process.wait()
    assert status == 0
    (usage,) = agent.logged("session usage")
    assert usage["room"] == user.room.name
    job_lines = [r for r in agent.records() if r.get("job_id") == usage["job_id"]]
    assert job_lines and all(r.get("room") == user.room.name for r in job_lines)
    output = agent.text()
    assert OPENAI_KEY not in output and stack.livekit.api_secret not in output


async def test_a_job_whose_realtime_connection_fails_ends_and_the_next_job_works(
    stack: Stack,
) -> None:
    agent = await stack.start_agent()
    stack.realtime.script.fail_connections = 1000  # every handshake of the first job refused
    first = await stack.join()
    await agent.wait_for_log("session usage", within=90)
    assert agent.process.returncode is None

    stack.realtime.script.fail_connections = 0
    second = await stack.join()
    await second.until(lambda: GREETING in second.final_texts(), within=30)
    speaker = agent_identity(second)
    assert speaker is not None and second.voiced(speaker) > 0
    assert first.final_texts() == []
