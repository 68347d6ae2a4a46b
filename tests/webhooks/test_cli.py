"""The deliverer's command line: `python -m webhooks ...`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from webhooks import payloads
from webhooks.__main__ import main as deliver_main
from webhooks.outbox import Outcome
from webhooks.outbox.sqlite_store import SQLiteOutbox
from webhooks.payloads import EventIds

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
