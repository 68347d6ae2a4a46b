"""The command lines: `python -m webhooks ...` and `python -m webhooks.receiver ...`."""

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
from webhooks import payloads
from webhooks.__main__ import main as deliver_main
from webhooks.outbox import Outcome
from webhooks.outbox.sqlite_store import SQLiteOutbox
from webhooks.payloads import EventIds
from webhooks.receiver.__main__ import main as receiver_main
from webhooks.receiver.store import ReceiverStore, StoredEvent
from webhooks.signatures import sign_headers

new_id = EventIds().next

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def outbox_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WEBHOOK_URLS", "https://hooks.example/secret-path")
    monkeypatch.setenv("WEBHOOK_OUTBOX_PATH", str(tmp_path / "outbox.db"))
    return tmp_path / "outbox.db"


def dead_letter(path: Path) -> str:
    store = SQLiteOutbox.open(path)
    event = payloads.room_join(
        event_id=new_id(), agent_id="a", room_name="r", participant_count=1, session_id="s", now=1.0
    )
    store.append([event], ["https://hooks.example/secret-path"])
    (delivery,) = store.claim(2.0, 40.0, 1)
    store.record([Outcome(delivery.key, False, 4, 3.0, status=500, error="HTTP 500")])
    store.close()
    return event.id


def test_deliver_lists_and_requeues_dead_letters(
    outbox_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    event_id = dead_letter(outbox_env)
    deliver_main(["dead-letters"])
    (line,) = capsys.readouterr().out.splitlines()
    listed = json.loads(line)
    assert listed == {
        "event_id": event_id,
        "event_type": "room.join",
        "destination": "hooks.example",
        "attempts": 4,
        "last_status": 500,
        "last_error": "HTTP 500",
        "dead_at": 3.0,
    }
    deliver_main(["requeue"])
    assert capsys.readouterr().out.strip() == "requeued 1 dead letters"
    store = SQLiteOutbox.open(outbox_env)
    assert store.depth() == 1 and store.dead_letters(10) == []
    store.close()


def test_deliver_refuses_to_run_without_urls(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WEBHOOK_URLS", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        deliver_main([])
    assert exit_info.value.code == 2
    assert "WEBHOOK_URLS is not set" in capsys.readouterr().err


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
        "webhooks.receiver",
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
