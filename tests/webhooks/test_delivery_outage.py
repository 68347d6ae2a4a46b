"""Outages: bitHuman's fast retries, then a slow backoff before anything is dead-lettered; logs
per outage rather than per event; old dead letters pruned on a schedule."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from tests.webhooks.conftest import FakeClock, RecordingReceiver, eventually, sender_settings
from webhooks import payloads
from webhooks.deliverer import PRUNE_INTERVAL_S, Deliverer
from webhooks.emitter import WebhookEmitter
from webhooks.outbox import OutboxStore, Outcome
from webhooks.outbox.sqlite_store import SQLiteOutbox

DAY = 24 * 3600.0


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels or None) or 0.0


def deliverer_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name == "webhooks.deliverer" and r.levelno >= logging.INFO
    ]


async def test_a_ten_minute_outage_loses_nothing_and_logs_per_outage(
    tmp_path: Path,
    receiver: RecordingReceiver,
    clock: FakeClock,
    registry: CollectorRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="webhooks.deliverer")
    receiver.down_until = clock.now() + 600
    settings = sender_settings(tmp_path, [receiver.url], slow_retry_for=DAY)  # the default
    emitter = await WebhookEmitter.start(settings, agent_id="a", registry=registry, clock=clock)
    ids = {emitter.chat_push(role="user", message=f"m{i}", session_id="s") for i in range(20)}
    await eventually(
        lambda: sample(registry, "webhook_deliveries_delivered_total", event_type="chat.push") == 20
    )
    await emitter.aclose()

    delivered = {r.headers["webhook-id"] for r in receiver.requests if r.at >= receiver.down_until}
    assert delivered == ids
    assert sample(registry, "webhook_deliveries_dead_lettered_total", event_type="chat.push") == 0
    # Each event: fast retries after 1, 5, 30 s, then 1, 2, 4, 8 minutes: 8 attempts by 11 min.
    first = [r.at for r in receiver.requests if r.headers["webhook-id"] == min(ids)]
    assert [t - first[0] for t in first] == pytest.approx([0, 1, 6, 36, 96, 216, 456, 936])
    # 160 failed attempts, and the log says: failing, a summary or two, recovered.
    messages = [r.getMessage() for r in deliverer_lines(caplog)]
    assert messages[0] == "webhook destination failing"
    assert messages[-1] == "webhook destination recovered"
    assert set(messages[1:-1]) <= {"webhook destination still failing"}
    assert len(messages) <= 5
    recovered = vars(deliverer_lines(caplog)[-1])
    assert recovered["failed_attempts"] == 20 * 7 and recovered["dead_lettered"] == 0
    assert recovered["levelname"] == "INFO"
    assert sample(registry, "webhook_destinations_failing") == 0


async def test_the_slow_backoff_ends_in_dead_letters_summarised_not_listed(
    tmp_path: Path,
    receiver: RecordingReceiver,
    clock: FakeClock,
    registry: CollectorRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="webhooks.deliverer")
    receiver.down_until = float("inf")
    settings = sender_settings(
        tmp_path, [receiver.url], slow_retry_for=600, slow_retry_max_delay=300
    )
    emitter = await WebhookEmitter.start(settings, agent_id="a", registry=registry, clock=clock)
    for i in range(10):
        emitter.room_join(room_name="r", participant_count=i, session_id="s")
    await eventually(
        lambda: (
            sample(registry, "webhook_deliveries_dead_lettered_total", event_type="room.join") == 10
        )
    )
    assert sample(registry, "webhook_destinations_failing") == 1
    await emitter.aclose()

    attempts = [r.at for r in receiver.requests if r.json["data"]["participant_count"] == 0]
    assert [t - attempts[0] for t in attempts] == pytest.approx(
        [0, 1, 6, 36, 96, 216, 456, 636]  # fast, then 60, 120, 240 and the 180 s left of 600
    )
    store = SQLiteOutbox.open(settings.outbox_path)
    assert len(store.dead_letters(100)) == 10 and store.depth() == 0
    store.close()
    lines = deliverer_lines(caplog)
    assert not [r for r in lines if "dead-lettered" in r.getMessage()]  # none per event
    summaries = [vars(r) for r in lines if r.getMessage() == "webhook destination still failing"]
    assert sum(s["dead_lettered"] for s in summaries) == 10
    assert sum(s["failed_attempts"] for s in summaries) == 80
    assert summaries[-1]["last_status"] == 503 and summaries[-1]["last_error"] == "HTTP 503"
    assert len(lines) <= 5


async def test_fast_retries_only_when_the_slow_backoff_is_off(
    tmp_path: Path, receiver: RecordingReceiver, clock: FakeClock, registry: CollectorRegistry
) -> None:
    receiver.down_until = float("inf")
    settings = sender_settings(tmp_path, [receiver.url], slow_retry_for=0)
    emitter = await WebhookEmitter.start(settings, agent_id="a", registry=registry, clock=clock)
    emitter.chat_push(role="user", message="x", session_id="s")
    attempts = await receiver.wait_for(4)
    await eventually(
        lambda: (
            sample(registry, "webhook_deliveries_dead_lettered_total", event_type="chat.push") == 1
        )
    )
    await emitter.aclose()
    assert [r.at - attempts[0].at for r in attempts] == pytest.approx([0, 1, 6, 36])


def _dead(store: OutboxStore, event_id: str, dead_at: float) -> None:
    event = payloads.room_join(
        event_id=event_id, agent_id="a", room_name="r", participant_count=1, session_id="s", now=1
    )
    store.append([event], ["https://hooks.example/x"])
    (claimed,) = store.claim(dead_at, dead_at + 40, 1)
    store.record([Outcome(claimed.key, False, 4, dead_at, status=500, error="HTTP 500")])


def test_outboxes_prune_old_dead_letters(store_factory: object) -> None:
    store: OutboxStore = store_factory()  # type: ignore[operator]
    _dead(store, "evt_old", 100.0)
    _dead(store, "evt_new", 200.0)
    assert store.prune_dead(150.0) == 1
    assert [d.event_id for d in store.dead_letters(10)] == ["evt_new"]
    assert store.prune_dead(150.0) == 0 and store.depth() == 0


async def test_the_deliverer_prunes_dead_letters_hourly(
    tmp_path: Path, clock: FakeClock, registry: CollectorRegistry
) -> None:
    settings = sender_settings(
        tmp_path, ["https://hooks.example/x"], dead_letter_retention=14 * DAY
    )
    store = SQLiteOutbox.open(settings.outbox_path)
    _dead(store, "evt_15_days", clock.now() - 15 * DAY)
    _dead(store, "evt_14_days_less_a_minute", clock.now() - 14 * DAY + 60)
    store.close()
    deliverer = await Deliverer.open(settings, registry=registry, clock=clock)
    deliverer.start()

    def remaining() -> list[str]:
        outbox = SQLiteOutbox.open(settings.outbox_path)
        try:
            return [d.event_id for d in outbox.dead_letters(10)]
        finally:
            outbox.close()

    await eventually(lambda: remaining() == ["evt_14_days_less_a_minute"])  # at start
    start = clock.now()
    await eventually(lambda: clock.now() >= start + PRUNE_INTERVAL_S)  # idle polling
    await eventually(lambda: remaining() == [])  # the next hourly pass
    await deliverer.aclose()


async def test_dead_letters_are_kept_forever_with_retention_zero(
    tmp_path: Path, clock: FakeClock, registry: CollectorRegistry
) -> None:
    settings = sender_settings(tmp_path, ["https://hooks.example/x"], dead_letter_retention=0)
    store = SQLiteOutbox.open(settings.outbox_path)
    _dead(store, "evt_ancient", 1.0)
    store.close()
    deliverer = await Deliverer.open(settings, registry=registry, clock=clock)
    deliverer.start()
    start = clock.now()
    await eventually(lambda: clock.now() >= start + 2 * PRUNE_INTERVAL_S)
    await deliverer.aclose()
    store = SQLiteOutbox.open(settings.outbox_path)
    assert [d.event_id for d in store.dead_letters(10)] == ["evt_ancient"]
    store.close()
