"""Emitter, writer and deliverer end to end against a local receiver, on an injected clock."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from tests.conftest import free_port
from tests.webhooks.conftest import (
    SECRET,
    FakeClock,
    RecordingReceiver,
    eventually,
    sender_settings,
    start_receiver,
)
from webhooks.deliverer import Deliverer
from webhooks.emitter import WebhookEmitter
from webhooks.outbox.redis_store import RedisOutbox
from webhooks.outbox.sqlite_store import SQLiteOutbox
from webhooks.signatures import verify_webhook


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels or None)
    return 0.0 if value is None else value


async def test_events_arrive_signed_with_the_documented_envelope(
    tmp_path: Path, receiver: RecordingReceiver, clock: FakeClock, registry: CollectorRegistry
) -> None:
    settings = sender_settings(
        tmp_path, [receiver.url], headers={"Authorization": "Bearer integrator-token"}
    )
    emitter = await WebhookEmitter.start(
        settings, agent_id="A91XMB7113", registry=registry, clock=clock
    )
    start = clock.now()
    join_id = emitter.room_join(room_name="room-1", participant_count=1, session_id="sess-1")
    chat_id = emitter.chat_push(
        role="assistant", message="Hallo 👋", session_id="sess-1", timestamp=1705312285.0
    )
    requests = await receiver.wait_for(2)
    await emitter.aclose()

    by_id = {r.headers["webhook-id"]: r for r in requests}
    assert set(by_id) == {join_id, chat_id}
    join, chat = by_id[join_id], by_id[chat_id]
    assert join.json == {
        "agent_id": "A91XMB7113",
        "event_type": "room.join",
        "data": {"room_name": "room-1", "participant_count": 1, "session_id": "sess-1"},
        "timestamp": pytest.approx(start, abs=1e-3),
    }
    assert chat.body.startswith(b'{"agent_id":"A91XMB7113","event_type":"chat.push","data":')
    assert json.loads(chat.body)["data"] == {
        "role": "assistant",
        "message": "Hallo 👋",
        "session_id": "sess-1",
        "timestamp": 1705312285,
    }
    for request in requests:
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["Authorization"] == "Bearer integrator-token"
        assert verify_webhook(SECRET, request.body, request.headers, now=request.at)
    assert sample(registry, "webhook_deliveries_delivered_total", event_type="room.join") == 1
    assert sample(registry, "webhook_events_stored_total", event_type="chat.push") == 1
    assert sample(registry, "webhook_delivery_latency_seconds_count", event_type="chat.push") == 1


async def test_retries_follow_the_schedule_then_deliver(
    tmp_path: Path, receiver: RecordingReceiver, clock: FakeClock, registry: CollectorRegistry
) -> None:
    receiver.statuses = [500, 502]
    settings = sender_settings(tmp_path, [receiver.url])
    emitter = await WebhookEmitter.start(settings, agent_id="a", registry=registry, clock=clock)
    event_id = emitter.chat_push(role="user", message="hi", session_id="s")
    attempts = await receiver.wait_for(3)
    await emitter.aclose()

    times = [r.at - attempts[0].at for r in attempts]
    assert times == pytest.approx([0, 1, 6], abs=1e-3)  # retries after 1 s, then 5 s
    assert {r.headers["webhook-id"] for r in attempts} == {event_id}
    assert len({r.body for r in attempts}) == 1
    stamps = [int(r.headers["webhook-timestamp"]) for r in attempts]
    assert stamps == [int(r.at) for r in attempts]  # each attempt is signed afresh
    assert sample(registry, "webhook_deliveries_retried_total", event_type="chat.push") == 2
    assert sample(registry, "webhook_deliveries_delivered_total", event_type="chat.push") == 1
    store = SQLiteOutbox.open(settings.outbox_path)
    assert store.depth() == 0 and store.dead_letters(10) == []
    store.close()


async def test_dead_letter_after_the_last_attempt_keeps_status(
    tmp_path: Path, receiver: RecordingReceiver, clock: FakeClock, registry: CollectorRegistry
) -> None:
    receiver.statuses = [503, 500, 500, 429, 200]
    settings = sender_settings(tmp_path, [receiver.url])
    emitter = await WebhookEmitter.start(settings, agent_id="a", registry=registry, clock=clock)
    emitter.room_join(room_name="r", participant_count=2, session_id="s")
    attempts = await receiver.wait_for(4)
    await emitter.aclose()

    assert [r.at - attempts[0].at for r in attempts] == pytest.approx([0, 1, 6, 36], abs=1e-3)
    assert len(receiver.requests) == 4
    store = SQLiteOutbox.open(settings.outbox_path)
    (dead,) = store.dead_letters(10)
    assert dead.attempts == 4 and dead.last_status == 429 and dead.last_error == "HTTP 429"
    assert store.depth() == 0
    store.close()
    assert sample(registry, "webhook_deliveries_dead_lettered_total", event_type="room.join") == 1


async def test_refused_connections_are_retried_then_dead_lettered(
    tmp_path: Path, clock: FakeClock, registry: CollectorRegistry
) -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"  # nobody listens there
    settings = sender_settings(tmp_path, [url], retry_delays=[1.0, 2.0])
    emitter = await WebhookEmitter.start(settings, agent_id="a", registry=registry, clock=clock)
    emitter.chat_push(role="user", message="x", session_id="s")
    await eventually(
        lambda: (
            sample(registry, "webhook_deliveries_dead_lettered_total", event_type="chat.push") == 1
        )
    )
    await emitter.aclose()
    assert sample(registry, "webhook_deliveries_retried_total", event_type="chat.push") == 2
    store = SQLiteOutbox.open(settings.outbox_path)
    (dead,) = store.dead_letters(10)
    assert dead.attempts == 3 and dead.last_status is None
    assert dead.last_error is not None and "Connect" in dead.last_error
    store.close()


async def test_timeouts_are_retried(
    tmp_path: Path, clock: FakeClock, registry: CollectorRegistry
) -> None:
    slow = RecordingReceiver(clock=clock, delay=1.0)
    server = await start_receiver(slow)
    settings = sender_settings(tmp_path, [slow.url], timeout=0.2, retry_delays=[0.5])
    emitter = await WebhookEmitter.start(settings, agent_id="a", registry=registry, clock=clock)
    emitter.chat_push(role="user", message="slow", session_id="s")
    await slow.wait_for(2)
    await server.close()
    await emitter.aclose()
    store = SQLiteOutbox.open(settings.outbox_path)
    (dead,) = store.dead_letters(10)
    assert dead.last_status is None and dead.last_error is not None
    assert "Timeout" in dead.last_error
    store.close()


async def test_each_destination_is_retried_on_its_own(
    tmp_path: Path, clock: FakeClock, registry: CollectorRegistry
) -> None:
    healthy, flaky = RecordingReceiver(clock=clock), RecordingReceiver(clock=clock, statuses=[500])
    servers = [await start_receiver(healthy), await start_receiver(flaky)]
    flaky.url = flaky.url.replace("/hook", "/other")
    settings = sender_settings(tmp_path, [healthy.url, flaky.url])
    emitter = await WebhookEmitter.start(settings, agent_id="a", registry=registry, clock=clock)
    emitter.chat_push(role="user", message="fan-out", session_id="s")
    await flaky.wait_for(2)
    await healthy.wait_for(1)
    await emitter.aclose()
    assert len(healthy.requests) == 1  # not re-sent because the other destination failed
    assert [r.path for r in flaky.requests] == ["/other", "/other"]
    for server in servers:
        await server.close()


async def test_event_types_can_be_switched_off(
    tmp_path: Path, receiver: RecordingReceiver, clock: FakeClock, registry: CollectorRegistry
) -> None:
    settings = sender_settings(tmp_path, [receiver.url], events=["chat.push"])
    emitter = await WebhookEmitter.start(settings, agent_id="a", registry=registry, clock=clock)
    assert emitter.room_join(room_name="r", participant_count=1, session_id="s") is None
    assert emitter.chat_push(role="user", message="x", session_id="s") is not None
    await receiver.wait_for(1)
    await emitter.aclose()
    assert [r.json["event_type"] for r in receiver.requests] == ["chat.push"]


async def test_without_urls_the_emitter_is_inert(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    settings = sender_settings(tmp_path, [])
    emitter = await WebhookEmitter.start(settings, agent_id="a", registry=registry)
    assert not emitter.enabled
    assert emitter.chat_push(role="user", message="x", session_id="s") is None
    await emitter.flush()
    await emitter.aclose()
    assert not settings.outbox_path.exists()


async def test_events_after_close_are_dropped_not_raised(
    tmp_path: Path, receiver: RecordingReceiver, clock: FakeClock, registry: CollectorRegistry
) -> None:
    settings = sender_settings(tmp_path, [receiver.url])
    emitter = await WebhookEmitter.start(settings, agent_id="a", registry=registry, clock=clock)
    await emitter.aclose()
    assert emitter.chat_push(role="user", message="late", session_id="s") is None


async def test_bad_arguments_raise_at_the_call(
    tmp_path: Path, receiver: RecordingReceiver, registry: CollectorRegistry
) -> None:
    emitter = await WebhookEmitter.start(
        sender_settings(tmp_path, [receiver.url]), agent_id="a", registry=registry
    )
    with pytest.raises(ValueError):
        emitter.chat_push(role="system", message="x", session_id="s")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        emitter.room_join(room_name="r", participant_count="1", session_id="s")  # type: ignore[arg-type]
    await emitter.aclose()


async def test_agent_id_setting_overrides_the_agent_name(
    tmp_path: Path, receiver: RecordingReceiver, clock: FakeClock, registry: CollectorRegistry
) -> None:
    settings = sender_settings(tmp_path, [receiver.url], agent_id="A00CODE")
    emitter = await WebhookEmitter.start(
        settings, agent_id="my-agent", registry=registry, clock=clock
    )
    emitter.chat_push(role="user", message="x", session_id="s")
    (request,) = await receiver.wait_for(1)
    await emitter.aclose()
    assert request.json["agent_id"] == "A00CODE"


async def test_pending_events_wait_in_the_outbox_for_the_next_deliverer(
    tmp_path: Path, receiver: RecordingReceiver, clock: FakeClock, registry: CollectorRegistry
) -> None:
    settings = sender_settings(tmp_path, [receiver.url])
    # A job process that only enqueues (its deliverer runs elsewhere).
    emitter = await WebhookEmitter.start(
        settings, agent_id="a", registry=registry, clock=clock, deliver=False
    )
    ids = {emitter.chat_push(role="user", message=f"m{i}", session_id="s") for i in range(20)}
    await emitter.aclose()
    await asyncio.sleep(0.05)
    assert receiver.requests == []
    # The next process's emitter (or a standalone deliverer) sweeps them up.
    later = await WebhookEmitter.start(
        settings, agent_id="a", registry=CollectorRegistry(), clock=clock
    )
    await receiver.wait_for(20)
    await later.aclose()
    assert receiver.event_ids() == ids


async def test_a_deliverer_in_another_process_delivers_what_the_agent_stores(
    tmp_path: Path, receiver: RecordingReceiver, registry: CollectorRegistry
) -> None:
    """The default layout: job processes only store; the worker's main process delivers."""
    settings = sender_settings(
        tmp_path, [receiver.url], deliver_in_process=False, poll_interval=0.05
    )
    worker_side = await Deliverer.open(settings, registry=registry)
    worker_side.start()
    job_side = await WebhookEmitter.start(settings, agent_id="a", registry=CollectorRegistry())
    ids = {job_side.chat_push(role="user", message=f"m{i}", session_id="s") for i in range(10)}
    await job_side.aclose()  # the job ends at once; nothing waited for the receiver
    await receiver.wait_for(10)
    await worker_side.aclose()
    assert receiver.event_ids() == ids
    assert sample(registry, "webhook_deliveries_delivered_total", event_type="chat.push") == 10


async def test_rows_for_a_destination_no_longer_configured_are_dead_lettered_unsent(
    tmp_path: Path, receiver: RecordingReceiver, clock: FakeClock, registry: CollectorRegistry
) -> None:
    before = sender_settings(tmp_path, [receiver.url])
    emitter = await WebhookEmitter.start(
        before, agent_id="a", registry=registry, clock=clock, deliver=False
    )
    emitter.chat_push(role="user", message="x", session_id="s")
    await emitter.aclose()
    # The destination was replaced in WEBHOOK_URLS before a deliverer got to the row.
    after = sender_settings(tmp_path, [receiver.url.replace("/hook", "/new")])
    deliverer = await Deliverer.open(after, registry=registry, clock=clock)
    deliverer.start()
    await eventually(
        lambda: (
            sample(registry, "webhook_deliveries_dead_lettered_total", event_type="chat.push") == 1
        )
    )
    await deliverer.aclose()
    assert receiver.requests == []
    assert sample(registry, "webhook_destinations_failing") == 0  # not an outage
    store = SQLiteOutbox.open(after.outbox_path)
    (dead,) = store.dead_letters(10)
    assert dead.attempts == 1 and dead.last_status is None
    assert dead.last_error == "destination is no longer configured"
    store.close()


async def test_queue_depth_counts_what_waits(
    tmp_path: Path, receiver: RecordingReceiver, clock: FakeClock, registry: CollectorRegistry
) -> None:
    receiver.statuses = [500, 500, 500]
    settings = sender_settings(tmp_path, [receiver.url], retry_delays=[3600.0])
    emitter = await WebhookEmitter.start(settings, agent_id="a", registry=registry, clock=clock)
    for i in range(3):
        emitter.chat_push(role="user", message=f"m{i}", session_id="s")
    await receiver.wait_for(3)
    await eventually(lambda: sample(registry, "webhook_outbox_depth") == 3)
    await emitter.aclose()


async def test_without_a_secret_requests_carry_ids_but_no_signatures(
    tmp_path: Path, receiver: RecordingReceiver, clock: FakeClock, registry: CollectorRegistry
) -> None:
    settings = sender_settings(tmp_path, [receiver.url], secret=None)
    emitter = await WebhookEmitter.start(settings, agent_id="a", registry=registry, clock=clock)
    event_id = emitter.chat_push(role="user", message="x", session_id="s")
    (request,) = await receiver.wait_for(1)
    await emitter.aclose()
    assert request.headers["webhook-id"] == event_id
    assert "webhook-signature" not in request.headers
    assert "X-bitHuman-Signature" not in request.headers


async def test_delivery_through_a_redis_outbox(
    tmp_path: Path,
    receiver: RecordingReceiver,
    clock: FakeClock,
    registry: CollectorRegistry,
    redis_server: str,
) -> None:
    receiver.statuses = [500]
    settings = sender_settings(
        tmp_path, [receiver.url], redis_url=redis_server, redis_prefix=f"t{uuid.uuid4().hex}"
    )
    emitter = await WebhookEmitter.start(settings, agent_id="a", registry=registry, clock=clock)
    ids = {emitter.chat_push(role="user", message=f"m{i}", session_id="s") for i in range(5)}
    await receiver.wait_for(6)  # one failed once and was retried
    await emitter.aclose()
    assert receiver.event_ids() == ids
    assert not settings.outbox_path.exists()  # nothing went to SQLite
    store = RedisOutbox.connect(redis_server, prefix=settings.redis_prefix)
    assert store.depth() == 0 and store.dead_letters(10) == []
    store.close()


async def test_redirects_are_not_followed(
    tmp_path: Path, receiver: RecordingReceiver, clock: FakeClock, registry: CollectorRegistry
) -> None:
    receiver.statuses = [307]  # then 200, should the redirect be followed
    receiver.answer_headers = {"Location": receiver.url.replace("/hook", "/elsewhere")}
    settings = sender_settings(tmp_path, [receiver.url], retry_delays=[])
    emitter = await WebhookEmitter.start(settings, agent_id="a", registry=registry, clock=clock)
    emitter.chat_push(role="user", message="x", session_id="s")
    await receiver.wait_for(1)
    await emitter.aclose()  # waits for the attempt, and so for any request it redirected to
    assert [r.path for r in receiver.requests] == ["/hook"]
    store = SQLiteOutbox.open(settings.outbox_path)
    assert store.dead_letters(10)[0].last_status == 307
    store.close()
