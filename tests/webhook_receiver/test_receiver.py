"""The receiver service: verify, refuse replays, dedupe, answer at once, handle, dead-letter."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from tests.conftest import settings_of
from tests.webhook_receiver.harness import SECRET, T0, Harness, body_for, signed
from tests.webhooks.conftest import eventually, sender_settings
from webhook_receiver import ReceivedEvent, ReceiverSettings, Router, create_app
from webhook_receiver.app import event_fingerprint
from webhook_receiver.router import load_router
from webhook_receiver.store import ReceiverStore, StoredEvent
from webhooks.emitter import WebhookEmitter
from webhooks.signatures import BITHUMAN_HEADER


async def test_accepts_then_handles_asynchronously(harness: Harness) -> None:
    await harness.start()
    body = body_for("Grüße")
    assert await harness.post(body, signed(body)) == (200, {"status": "accepted"})
    await harness.processor.drain()
    (event,) = harness.seen
    assert event.key == "evt_1" and event.event_type == "chat.push" and event.agent_id == "a"
    assert event.data["message"] == "Grüße"
    assert harness.metric("webhook_receiver_requests_total", outcome="accepted") == 1


async def test_redeliveries_are_acknowledged_but_handled_once(harness: Harness) -> None:
    await harness.start()
    body = body_for()
    first = signed(body, stamp=T0)
    retry = signed(body, stamp=T0 + 6)  # same webhook-id, signed again for the retry
    assert await harness.post(body, first) == (200, {"status": "accepted"})
    assert await harness.post(body, retry) == (200, {"status": "duplicate"})
    await harness.processor.drain()
    assert len(harness.seen) == 1


async def test_legacy_senders_are_deduped_by_the_envelope_fingerprint(harness: Harness) -> None:
    await harness.start()
    body = body_for()
    legacy = {BITHUMAN_HEADER: signed(body)[BITHUMAN_HEADER]}
    assert (await harness.post(body, legacy))[1] == {"status": "accepted"}
    assert (await harness.post(body, legacy))[1] == {"status": "duplicate"}
    other = body_for("another message")
    assert (await harness.post(other, {BITHUMAN_HEADER: signed(other)[BITHUMAN_HEADER]}))[0] == 200
    await harness.processor.drain()
    assert [e.key for e in harness.seen] == [
        event_fingerprint(json.loads(body)),
        event_fingerprint(json.loads(other)),
    ]
    assert harness.seen[0].key.startswith("sha256:")


async def test_replays_outside_the_tolerance_are_refused(harness: Harness) -> None:
    await harness.start(tolerance=300)
    body = body_for()
    harness.clock.t = T0 + 301
    status, error = await harness.post(body, signed(body, stamp=T0))
    assert status == 401
    assert error == {
        "error": "webhook signature did not verify",
        "code": "TIMESTAMP_OUT_OF_TOLERANCE",
        "details": {"reason": "timestamp_out_of_tolerance"},
    }
    assert (
        harness.metric("webhook_receiver_rejected_total", reason="timestamp_out_of_tolerance") == 1
    )
    assert harness.seen == []


@pytest.mark.parametrize(
    ("mangle", "code"),
    [
        (lambda h: {}, "MISSING_SIGNATURE"),
        (lambda h: {**h, BITHUMAN_HEADER: "sha256=bad"}, "SIGNATURE_MISMATCH"),
        (lambda h: {**h, "webhook-signature": "v1,AAAA"}, "SIGNATURE_MISMATCH"),
        (lambda h: {**h, "webhook-timestamp": "-5"}, "MALFORMED_HEADER"),
        (lambda h: {"webhook-id": "x"}, "MALFORMED_HEADER"),
        (lambda h: {BITHUMAN_HEADER: "sha256=" + "é" * 64}, "SIGNATURE_MISMATCH"),
    ],
)
async def test_bad_signatures_are_clean_401s(
    harness: Harness, mangle: Callable[[dict[str, str]], dict[str, str]], code: str
) -> None:
    await harness.start()
    body = body_for()
    status, error = await harness.post(body, mangle(signed(body)))
    assert status == 401 and error["code"] == code


async def test_legacy_only_requests_can_be_refused(harness: Harness) -> None:
    await harness.start(require_timestamp=True)
    body = body_for()
    status, error = await harness.post(body, {BITHUMAN_HEADER: signed(body)[BITHUMAN_HEADER]})
    assert status == 401 and error["code"] == "MISSING_TIMESTAMP"


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[1,2]", b'{"data":{}}', b'{"event_type":7}', b"\xff\xfe", b"[" * 100_000],
)
async def test_signed_garbage_is_a_400(harness: Harness, body: bytes) -> None:
    await harness.start()
    status, error = await harness.post(body, signed(body))
    assert status == 400 and error["code"] == "INVALID_PAYLOAD"


async def test_oversized_bodies_are_a_json_413(harness: Harness) -> None:
    await harness.start(max_body=1024)
    body = body_for("x" * 2000)
    status, error = await harness.post(body, signed(body))
    assert status == 413 and error["code"] == "PAYLOAD_TOO_LARGE"


async def test_failed_handlers_are_dead_lettered_and_retried(harness: Harness) -> None:
    calls: list[str] = []

    @harness.router.on("chat.push")
    async def flaky(event: ReceivedEvent) -> None:
        calls.append(event.key)
        if len(calls) < 3:
            raise RuntimeError("CRM is down")

    await harness.start(retry_interval=60, max_attempts=5)
    body = body_for()
    assert (await harness.post(body, signed(body)))[0] == 200
    await harness.processor.drain()
    assert len(harness.seen) == 1 and calls == ["evt_1"]  # the other handler still ran
    assert harness.metric("webhook_receiver_dead_letters") == 1
    assert (
        harness.metric(
            "webhook_receiver_handler_runs_total", event_type="chat.push", outcome="failed"
        )
        == 1
    )

    assert await harness.processor.retry_dead_letters() == 0  # not due yet
    harness.clock.t = T0 + 60
    assert await harness.processor.retry_dead_letters() == 0  # second failure: backoff doubles
    harness.clock.t = T0 + 60 + 119
    assert await harness.processor.retry_dead_letters() == 0
    harness.clock.t = T0 + 60 + 120
    assert await harness.processor.retry_dead_letters() == 1
    assert calls == ["evt_1"] * 3 and len(harness.seen) == 1  # only the failed handler re-ran
    assert harness.metric("webhook_receiver_dead_letters") == 0


async def test_handlers_are_parked_after_the_last_attempt_and_can_be_requeued(
    harness: Harness,
) -> None:
    healthy = asyncio.Event()

    @harness.router.on("*")
    def always_fails(event: ReceivedEvent) -> None:  # a plain function: runs in a thread
        if not healthy.is_set():
            raise ValueError("bad mapping")

    await harness.start(retry_interval=10, max_attempts=2)
    body = body_for()
    await harness.post(body, signed(body))
    await harness.processor.drain()
    harness.clock.t = T0 + 10
    await harness.processor.retry_dead_letters()
    harness.clock.t = T0 + 10_000
    assert await harness.processor.retry_dead_letters() == 0  # parked: not retried
    store = ReceiverStore.open(harness.tmp_path / "recv.db")
    (letter,) = store.dead_letters(10)
    assert letter.next_at is None and letter.attempts == 2
    assert letter.error == "ValueError: bad mapping" and letter.handler.endswith("always_fails")
    assert store.requeue(harness.clock.t) == 1
    store.close()
    healthy.set()
    assert await harness.processor.retry_dead_letters() == 1


async def test_accepted_events_survive_a_crash_before_handling(harness: Harness) -> None:
    body = body_for("left behind")
    store = ReceiverStore.open(harness.tmp_path / "recv.db")
    assert store.accept(StoredEvent("evt_crash", "chat.push", body, T0))  # answered, not handled
    store.close()
    await harness.start()
    await harness.processor.drain()
    assert [e.key for e in harness.seen] == ["evt_crash"]
    # ... and its id is still remembered: a redelivery is a duplicate.
    assert (await harness.post(body, signed(body, "evt_crash")))[1] == {"status": "duplicate"}


async def test_a_full_queue_answers_503_and_a_later_retry_is_accepted(harness: Harness) -> None:
    release = asyncio.Event()

    @harness.router.on("chat.push")
    async def slow(event: ReceivedEvent) -> None:
        await release.wait()

    await harness.start(workers=1, queue_size=1)
    first, second, third = (body_for(f"m{i}") for i in range(3))
    assert (await harness.post(first, signed(first, "e1")))[0] == 200  # taken by the worker
    await asyncio.sleep(0.01)
    assert (await harness.post(second, signed(second, "e2")))[0] == 200  # waits in the queue
    assert harness.client is not None
    response = await harness.client.post("/webhook", data=third, headers=signed(third, "e3"))
    assert response.status == 503 and response.headers["Retry-After"] == "5"
    assert (await response.json())["code"] == "BUSY"
    release.set()
    await harness.processor.drain()
    assert (await harness.post(third, signed(third, "e3")))[1] == {"status": "accepted"}


async def test_health_and_metrics(harness: Harness) -> None:
    client = await harness.start()
    health = await client.get("/healthz")
    assert health.status == 200 and await health.json() == {"status": "ok", "queue_depth": 0}
    body = body_for()
    await harness.post(body, signed(body))
    metrics = await (await client.get("/metrics")).text()
    assert 'webhook_receiver_requests_total{outcome="accepted"} 1.0' in metrics
    missing = await client.get("/nope")
    assert missing.status == 404 and (await missing.json())["code"] == "NOT_FOUND"


def test_receivers_can_share_the_default_registry(tmp_path: Path) -> None:
    settings = settings_of(ReceiverSettings, secret=SECRET, store_path=tmp_path / "recv.db")
    create_app(settings, Router())  # on prometheus_client's global registry...
    create_app(settings, Router())  # ...where a second set of counters would be a duplicate


async def test_end_to_end_from_the_emitter(harness: Harness) -> None:
    harness.clock.t = 0  # no replay window trouble: the sender uses the real clock
    client = await harness.start(tolerance=10**10)
    url = str(client.make_url("/webhook"))
    settings = sender_settings(harness.tmp_path, [url], secret=SECRET)
    emitter = await WebhookEmitter.start(
        settings, agent_id="agent-e2e", registry=CollectorRegistry()
    )
    ids = [emitter.chat_push(role="user", message=f"m{i}", session_id="s") for i in range(5)]
    await eventually(lambda: len(harness.seen) == 5)
    await emitter.aclose()
    assert sorted(e.key for e in harness.seen) == sorted(ids)
    assert {e.agent_id for e in harness.seen} == {"agent-e2e"}


def test_handlers_load_from_a_module_path() -> None:
    router = load_router("tests.webhook_receiver.test_receiver:EXAMPLE_ROUTER")
    assert router is EXAMPLE_ROUTER
    with pytest.raises(ValueError, match=r"not a webhook_receiver\.Router"):
        load_router("tests.webhook_receiver.test_receiver:SECRET")
    with pytest.raises(ValueError, match="cannot load"):
        load_router("tests.webhook_receiver.nope:router")


EXAMPLE_ROUTER = Router()


def test_two_handlers_with_one_name_are_refused() -> None:
    router = Router()

    def make() -> Callable[[ReceivedEvent], Awaitable[None]]:
        async def handler(event: ReceivedEvent) -> None:
            return None

        return handler

    router.add("chat.push", make())
    with pytest.raises(ValueError, match="both named"):
        router.add("chat.push", make())


def test_event_payload_accessors_tolerate_odd_shapes() -> None:
    event = ReceivedEvent("k", "x", json.loads('{"agent_id": 5, "data": []}'), T0)
    assert event.agent_id is None and event.data == {}
