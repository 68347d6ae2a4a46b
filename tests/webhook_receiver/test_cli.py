"""The receiver's command line: `python -m webhook_receiver ...`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import free_port
from webhook_receiver.__main__ import main as receiver_main
from webhook_receiver.store import ReceiverStore, StoredEvent
from webhooks import payloads
from webhooks.payloads import EventIds
from webhooks.signatures import sign_headers

new_id = EventIds().next

ROOT = Path(__file__).resolve().parents[2]


def test_receiver_lists_and_requeues_parked_dead_letters(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WEBHOOK_RECEIVER_SECRET", "s" * 20)
    store = ReceiverStore.open(tmp_path / "webhook-receiver.db")
    event = StoredEvent("evt_9", "chat.push", b'{"event_type":"chat.push"}', 1.0)
    store.accept(event)
    store.finish(event, [("hooks.save", "KeyError: 'x'")], now=2.0, retry_at=3.0)
    (letter,) = store.dead_letters(1)
    store.retried(letter.id, "KeyError: 'x'", attempts=5, now=4.0, next_at=None)
    store.close()
    receiver_main(["dead-letters"])
    listed = json.loads(capsys.readouterr().out)
    assert listed["handler"] == "hooks.save" and listed["parked"] is True
    receiver_main(["requeue"])
    assert capsys.readouterr().out.strip() == "requeued 1 dead letters"


async def test_receiver_service_runs_from_the_command_line(tmp_path: Path) -> None:
    port = free_port()
    secret = "cli-secret-0123456789"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "WEBHOOK_RECEIVER_SECRET": secret,
        "WEBHOOK_RECEIVER_PORT": str(port),
        "LOG_FORMAT": "json",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "webhook_receiver",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    body = payloads.chat_push(
        event_id=new_id(),
        agent_id="a",
        role="user",
        message="private words",
        session_id="s1",
        now=1.0,
    ).body
    headers = sign_headers(secret, "evt_cli", int(time.time()), body)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                try:
                    async with http.get(f"{base}/healthz") as health:
                        assert (await health.json())["status"] == "ok"
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            async with http.post(f"{base}/webhook", data=body, headers=headers) as response:
                assert response.status == 200
                assert await response.json() == {"status": "accepted"}
            async with http.post(f"{base}/webhook", data=body) as response:
                assert response.status == 401
        async with asyncio.timeout(10):
            while True:
                line = json.loads(await proc.stdout.readline())
                if "webhook event" in (line.get("message"), line.get("event")):
                    break
        assert line["data"]["session_id"] == "s1" and line["key"] == "evt_cli"
        assert "private words" not in json.dumps(line)  # message text stays out of logs
    finally:
        proc.send_signal(signal.SIGINT)
        await proc.wait()
