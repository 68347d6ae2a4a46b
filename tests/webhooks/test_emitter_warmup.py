"""A conversation's first enqueues run warm code: `WebhookEmitter.start` has already run the
enqueue path, so CPython has specialized its bytecode (cold, each call costs about 1.5x, and
those first calls made up most of the enqueue p99). Checked in a fresh interpreter, where
nothing else has run the code, by reading the adaptive bytecode."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import asyncio, dis, json, sys
from pathlib import Path
from prometheus_client import CollectorRegistry
from webhooks import payloads
from webhooks.emitter import WebhookEmitter
from webhooks.settings import WebhookSettings
from webhooks.writer import OutboxWriter

def specialized(fn):
    plain = [i.opname for i in dis.get_instructions(fn)]
    adaptive = [i.opname for i in dis.get_instructions(fn, adaptive=True)]
    return plain != adaptive

async def main():
    settings = WebhookSettings(
        WEBHOOK_URLS="https://hooks.example/x", WEBHOOK_OUTBOX_PATH=Path(sys.argv[1])
    )
    emitter = await WebhookEmitter.start(
        settings, agent_id="a", deliver=False, registry=CollectorRegistry()
    )
    hot = {
        "chat_push": specialized(WebhookEmitter.chat_push),
        "room_join": specialized(WebhookEmitter.room_join),
        "put": specialized(OutboxWriter.put),
        "check_chat_push": specialized(payloads.check_chat_push),
    }
    first = emitter.chat_push(role="user", message="hello", session_id="s")
    await emitter.flush()
    await emitter.aclose()
    print(json.dumps({"hot": hot, "first_id": first}))

asyncio.run(main())
"""


def test_the_enqueue_path_is_specialized_before_the_first_call(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox.db"
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(outbox)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["hot"] == dict.fromkeys(report["hot"], True)
    # The warm-up's events went nowhere: the outbox holds the one real event only.
    db = sqlite3.connect(outbox)
    (count,) = db.execute("SELECT COUNT(*) FROM deliveries").fetchone()
    (event_id,) = db.execute("SELECT event_id FROM deliveries").fetchone()
    db.close()
    assert count == 1 and event_id == report["first_id"]
    assert report["first_id"].endswith("_1")  # the warm-up used none of this emitter's ids
