"""Kill the delivering process mid-run (SIGKILL), start a deliverer, and lose nothing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from tests.webhooks.conftest import SECRET, RecordingReceiver, eventually, start_receiver
from webhooks.outbox.sqlite_store import SQLiteOutbox

ROOT = Path(__file__).resolve().parents[2]
EVENTS = 200


def sender_env(tmp_path: Path, url: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "WEBHOOK_URLS": url,
        "WEBHOOK_ALLOW_HTTP": "true",
        "WEBHOOK_SECRET": SECRET,
        "WEBHOOK_OUTBOX_PATH": str(tmp_path / "outbox.db"),
        "WEBHOOK_TIMEOUT": "1",  # leases last timeout + 1 s: quick recovery in the test
        "WEBHOOK_CONCURRENCY": "4",
        "WEBHOOK_POLL_INTERVAL": "0.2",
        "WEBHOOK_DELIVER_IN_PROCESS": "true",  # the first process enqueues and delivers
    }


async def test_sigkill_mid_delivery_then_restart_delivers_every_event(tmp_path: Path) -> None:
    receiver = RecordingReceiver(delay=0.005)
    server = await start_receiver(receiver)
    env = sender_env(tmp_path, receiver.url)
    agent = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.webhooks.emit_and_deliver",
        str(EVENTS),
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    assert agent.stdout is not None
    async with asyncio.timeout(30):
        line = b""
        while not line.startswith(b"IDS "):
            line = await agent.stdout.readline()
            assert line, "the agent process exited early"
    ids = set(json.loads(line[4:]))  # durable from here on
    drain = asyncio.create_task(agent.stdout.read())  # its logs must not fill the pipe
    assert len(ids) == EVENTS

    await receiver.wait_for(EVENTS // 4, within=30)
    receiver.gate.clear()  # hold answers: attempts are in flight when the kill lands
    await eventually(lambda: any(r.held for r in receiver.requests))
    agent.send_signal(signal.SIGKILL)
    assert await agent.wait() == -signal.SIGKILL
    await drain
    receiver.gate.set()
    acknowledged_before = receiver.event_ids()
    assert len(acknowledged_before) < EVENTS

    deliverer = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "webhooks",
        cwd=tmp_path,
        env=env,
    )
    try:
        await eventually(lambda: receiver.event_ids() >= ids, within=60)
    finally:
        deliverer.send_signal(signal.SIGTERM)
        assert await deliverer.wait() == 0  # a clean, graceful stop
        await server.close()

    held = {r.headers["webhook-id"] for r in receiver.requests if r.held}
    assert held and held <= receiver.event_ids()  # the interrupted ones came again
    assert receiver.event_ids() == ids  # nothing foreign, nothing lost
    store = SQLiteOutbox.open(tmp_path / "outbox.db")
    assert store.depth() == 0 and store.dead_letters(10) == []
    store.close()
