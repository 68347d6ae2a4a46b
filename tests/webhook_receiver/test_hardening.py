"""The receiver against issue 9's attacks: stripped-header replays, bad encodings, hostile
fields, hung handlers, events that kill it at every start, file modes, old dead letters."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import logging
import os
import stat
import threading
from pathlib import Path

import pytest

from tests.webhook_receiver.harness import SECRET, T0, Harness, body_for, signed
from webhook_receiver import ReceivedEvent
from webhook_receiver.__main__ import logging_router
from webhook_receiver.store import ReceiverStore, StoredEvent
from webhooks.signatures import BITHUMAN_HEADER, bithuman_signature

TTL = 7 * 24 * 3600.0


def legacy(body: bytes) -> dict[str, str]:
    """What the bitHuman platform sends: the body signature only."""
    return {BITHUMAN_HEADER: bithuman_signature(SECRET, body), "Content-Type": "application/json"}


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


# -- 1. replays with the Standard Webhooks headers stripped --------------------------------------


async def test_a_replay_stripped_of_its_standard_headers_is_a_duplicate(harness: Harness) -> None:
    await harness.start()
    body = body_for("transfer 100 EUR")
    assert await harness.post(body, signed(body, "evt_a")) == (200, {"status": "accepted"})
    # The attacker deletes webhook-id/-timestamp/-signature and keeps X-bitHuman-Signature.
    assert await harness.post(body, legacy(body)) == (200, {"status": "duplicate"})
    await harness.processor.drain()
    assert [e.key for e in harness.seen] == ["evt_a"]


async def test_an_hour_old_capture_is_refused_with_or_without_its_headers(
    harness: Harness,
) -> None:
    await harness.start()
    body = body_for("captured", when=T0)
    assert (await harness.post(body, signed(body, "evt_old", stamp=T0)))[0] == 200
    harness.clock.t = T0 + 3600
    status, error = await harness.post(body, signed(body, "evt_old", stamp=T0))
    assert status == 401 and error["code"] == "TIMESTAMP_OUT_OF_TOLERANCE"
    assert await harness.post(body, legacy(body)) == (200, {"status": "duplicate"})
    await harness.processor.drain()
    assert len(harness.seen) == 1


async def test_a_replay_older_than_the_dedupe_memory_is_refused(harness: Harness) -> None:
    await harness.start(dedupe_ttl=TTL, tolerance=300)
    body = body_for("captured", when=T0)
    assert (await harness.post(body, legacy(body)))[1] == {"status": "accepted"}
    await harness.processor.drain()
    # Past the TTL (and the skew allowance) the event is forgotten...
    harness.clock.t = T0 + TTL + 301
    assert await harness.processor.prune() == (1, 0)
    # ...and its replay is refused by its own envelope timestamp, not taken as new.
    status, error = await harness.post(body, legacy(body))
    assert status == 401
    assert error["code"] == "TIMESTAMP_OUT_OF_TOLERANCE"
    assert error["details"] == {"reason": "event_timestamp_out_of_window"}
    assert (
        harness.metric("webhook_receiver_rejected_total", reason="event_timestamp_out_of_window")
        == 1
    )
    assert len(harness.seen) == 1


async def test_the_dedupe_memory_outlasts_the_age_window(harness: Harness) -> None:
    """An event stamped up to `tolerance` s ahead is still remembered when its replay would
    pass the age check."""
    await harness.start(dedupe_ttl=TTL, tolerance=300)
    body = body_for("from a fast clock", when=T0 + 300)
    assert (await harness.post(body, legacy(body)))[1] == {"status": "accepted"}
    await harness.processor.drain()
    harness.clock.t = T0 + 300 + TTL  # the last moment its age passes
    await harness.processor.prune()
    assert await harness.post(body, legacy(body)) == (200, {"status": "duplicate"})


@pytest.mark.parametrize(
    ("stamp", "code"),
    [
        (None, "MISSING_TIMESTAMP"),
        ("1700000000", "MISSING_TIMESTAMP"),
        (True, "MISSING_TIMESTAMP"),
        (10**400, "MISSING_TIMESTAMP"),
        (T0 - TTL - 1, "TIMESTAMP_OUT_OF_TOLERANCE"),
        (T0 + 301, "TIMESTAMP_OUT_OF_TOLERANCE"),
    ],
)
async def test_unstamped_requests_need_a_recent_envelope_timestamp(
    harness: Harness, stamp: object, code: str
) -> None:
    await harness.start(dedupe_ttl=TTL, tolerance=300)
    envelope: dict[str, object] = {"agent_id": "a", "event_type": "room.join", "data": {}}
    if stamp is not None:
        envelope["timestamp"] = stamp
    body = json.dumps(envelope).encode()
    status, error = await harness.post(body, legacy(body))
    assert status == 401 and error["code"] == code


async def test_bithuman_platform_webhooks_are_accepted_by_default(harness: Harness) -> None:
    await harness.start()
    for message in ("one", "two"):
        body = body_for(message, when=T0 - 30)  # a retry 30 s after the event
        assert await harness.post(body, legacy(body)) == (200, {"status": "accepted"})
    await harness.processor.drain()
    assert [e.data["message"] for e in harness.seen] == ["one", "two"]


async def test_the_same_event_reserialized_is_still_a_duplicate(harness: Harness) -> None:
    await harness.start()
    body = body_for("same event")
    spaced = json.dumps(json.loads(body), indent=2, ensure_ascii=True).encode()
    assert (await harness.post(body, signed(body, "evt_x")))[1] == {"status": "accepted"}
    assert (await harness.post(spaced, signed(spaced, "evt_y")))[1] == {"status": "duplicate"}


# -- 5. undecodable bodies ------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_body_that_is_not_its_content_encoding_is_a_json_400(
    harness: Harness, caplog: pytest.LogCaptureFixture, encoding: str
) -> None:
    client = await harness.start()
    headers = {"Content-Encoding": encoding, "Content-Type": "application/json"}
    response = await client.post("/webhook", data=b"this is not compressed" * 50, headers=headers)
    assert response.status == 400
    answer = await response.json()
    assert answer["code"] == "INVALID_BODY_ENCODING"
    assert answer["details"]["content_encoding"] == encoding
    health = await client.get("/healthz")  # the service is fine afterwards
    assert health.status == 200
    assert tracebacks(caplog) == []


async def test_a_gzip_body_signed_over_its_content_is_accepted(harness: Harness) -> None:
    client = await harness.start()
    body = body_for("compressed")
    headers = {**signed(body), "Content-Encoding": "gzip"}
    response = await client.post("/webhook", data=gzip.compress(body), headers=headers)
    assert response.status == 200 and await response.json() == {"status": "accepted"}


# -- 6. hostile fields -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event_type", ["\ud800", "chat\udfff.push", "x" * 129, "chat\npush", "", "\x00"]
)
async def test_unstorable_event_types_are_a_400(
    harness: Harness, caplog: pytest.LogCaptureFixture, event_type: str
) -> None:
    await harness.start()
    envelope = {"agent_id": "a", "event_type": event_type, "data": {}, "timestamp": T0}
    body = json.dumps(envelope).encode()  # ASCII JSON: the surrogate travels as \ud800
    status, error = await harness.post(body, signed(body))
    assert status == 400 and error["code"] == "INVALID_PAYLOAD"
    assert tracebacks(caplog) == []


async def test_webhook_ids_that_cannot_be_stored_are_malformed(harness: Harness) -> None:
    await harness.start()
    body = body_for()
    for bad in ("id with space", "x" * 257, "ünïcode"):
        headers = signed(body, event_id="evt_1")
        headers["webhook-id"] = bad
        status, error = await harness.post(body, headers)
        assert status == 401 and error["code"] == "MALFORMED_HEADER"


async def test_the_default_handler_logs_any_data_field_names(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="webhook_receiver")
    harness.router = logging_router()
    await harness.start()
    data = {
        "key": 1,
        "event": "x",
        "event_type": "y",
        "data": [1, 2],
        "bad": "\ud800",
        "message": "m",
    }
    envelope = {"agent_id": "a", "event_type": "room.join", "data": data, "timestamp": T0}
    body = json.dumps(envelope).encode()
    assert (await harness.post(body, signed(body)))[0] == 200
    await harness.processor.drain()
    assert harness.metric("webhook_receiver_dead_letters") == 0
    (line,) = [r for r in caplog.records if r.getMessage() == "webhook event"]
    logged = vars(line)["data"]
    assert logged["key"] == 1 and logged["event"] == "x" and logged["data"] == "<list of 2>"
    assert logged["bad"] == "?" and "message" not in logged
    json.dumps(vars(line)["data"]).encode("utf-8")  # writable to a UTF-8 log stream


# -- 6. handler deadlines ----------------------------------------------------------------------


async def test_a_hung_async_handler_is_cut_at_its_deadline(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    @harness.router.on("chat.push")
    async def hangs(event: ReceivedEvent) -> None:
        await asyncio.Event().wait()

    await harness.start(handler_timeout=0.05, workers=1)
    first, second = body_for("one"), body_for("two")
    await harness.post(first, signed(first, "e1"))
    await harness.post(second, signed(second, "e2"))
    await harness.processor.drain()  # both ran: the hung run did not hold the worker
    assert [e.key for e in harness.seen] == ["e1", "e2"]
    assert harness.metric("webhook_receiver_handler_timeouts_total", event_type="chat.push") == 2
    assert harness.metric("webhook_receiver_dead_letters") == 2
    overruns = [
        r for r in caplog.records if r.getMessage() == "webhook handler overran its deadline"
    ]
    assert len(overruns) == 2 and vars(overruns[0])["handler"].endswith("hangs")
    letters = ReceiverStore.open(harness.tmp_path / "recv.db")
    assert all("deadline" in letter.error for letter in letters.dead_letters(10))
    letters.close()


async def test_a_hung_plain_handler_is_left_behind_at_its_deadline(harness: Harness) -> None:
    release = threading.Event()
    started = threading.Event()

    @harness.router.on("chat.push")
    def blocks(event: ReceivedEvent) -> None:
        started.set()
        release.wait(10)

    await harness.start(handler_timeout=0.05)
    body = body_for()
    await harness.post(body, signed(body))
    await harness.processor.drain()
    assert started.is_set() and not release.is_set()  # still running, no longer waited for
    assert (
        harness.metric(
            "webhook_receiver_handler_runs_total", event_type="chat.push", outcome="timeout"
        )
        == 1
    )
    release.set()


async def test_an_event_pending_at_every_start_is_parked_not_rerun(harness: Harness) -> None:
    """A handler that kills the process (OOM, segfault) leaves its event pending; after
    `max_attempts` starts it is parked as a dead letter instead of killing every restart."""
    ran: list[str] = []

    @harness.router.on("chat.push")
    async def crashes(event: ReceivedEvent) -> None:
        ran.append(event.key)

    body = body_for("poison")
    store = ReceiverStore.open(harness.tmp_path / "recv.db")
    assert store.accept(StoredEvent("evt_poison", "chat.push", body, T0))
    for _ in range(2):  # two earlier starts found it pending and died running it
        store.recover()
    store.close()

    await harness.start(max_attempts=3)
    await harness.processor.drain()
    assert ran == [] and harness.seen == []
    assert harness.metric("webhook_receiver_dead_letters") == 2  # one per handler
    store = ReceiverStore.open(harness.tmp_path / "recv.db")
    letters = store.dead_letters(10)
    assert store.pending() == []
    store.close()
    assert {letter.next_at for letter in letters} == {None}  # parked: `requeue` revives it
    assert all(letter.error.startswith("interrupted") for letter in letters)
    assert {letter.attempts for letter in letters} == {3}


async def test_an_event_pending_at_fewer_starts_runs_again(harness: Harness) -> None:
    body = body_for("interrupted once")
    store = ReceiverStore.open(harness.tmp_path / "recv.db")
    assert store.accept(StoredEvent("evt_again", "chat.push", body, T0))
    store.recover()
    store.close()
    await harness.start(max_attempts=3)
    await harness.processor.drain()
    assert [e.key for e in harness.seen] == ["evt_again"]


# -- 7. retention ------------------------------------------------------------------------------


async def test_old_parked_dead_letters_are_pruned(harness: Harness) -> None:
    day = 24 * 3600.0
    store = ReceiverStore.open(harness.tmp_path / "recv.db")
    for key, failed_at, next_at in (
        ("old-parked", T0 - 15 * day, None),
        ("new-parked", T0 - 13 * day, None),
        ("old-retrying", T0 - 15 * day, T0 + 60),
    ):
        event = StoredEvent(key, "chat.push", b"{}", failed_at)
        store.accept(event)
        store.finish(event, [("h", "boom")], failed_at, next_at)
    store.close()
    await harness.start(dead_letter_retention=14 * day)
    assert await harness.processor.prune() == (3, 1)  # events past the TTL, one letter
    store = ReceiverStore.open(harness.tmp_path / "recv.db")
    assert sorted(letter.event_key for letter in store.dead_letters(10)) == [
        "new-parked",
        "old-retrying",
    ]
    store.close()
    assert harness.metric("webhook_receiver_dead_letters") == 2


# -- 8. file modes -------------------------------------------------------------------------------


async def test_the_store_is_created_owner_only(harness: Harness) -> None:
    old = os.umask(0o022)
    try:
        await harness.start(store_path=harness.tmp_path / "new-dir" / "recv.db")
    finally:
        os.umask(old)
    body = body_for("personal data")
    await harness.post(body, signed(body))
    folder = harness.tmp_path / "new-dir"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = sorted(folder.iterdir())
    assert [f.name for f in files] == ["recv.db", "recv.db-shm", "recv.db-wal"]
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o600}


def test_an_older_store_gains_fingerprints_in_place(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE events (key TEXT PRIMARY KEY, event_type TEXT NOT NULL, body BLOB NOT NULL,"
        " received_at REAL NOT NULL, done INTEGER NOT NULL DEFAULT 0);"
        "INSERT INTO events VALUES ('evt_old', 'chat.push', x'7b7d', 1.0, 0);"
    )
    db.commit()
    db.close()
    store = ReceiverStore.open(path)
    (pending,) = store.recover()
    assert pending.key == "evt_old" and pending.fingerprint is None and pending.starts == 1
    assert store.accept(StoredEvent("evt_new", "chat.push", b"{}", 2.0, "sha256:f"))
    assert not store.accept(StoredEvent("evt_other", "chat.push", b"{}", 3.0, "sha256:f"))
    store.close()


# -- slow clients --------------------------------------------------------------------------------


async def test_a_body_that_trickles_in_is_a_408(harness: Harness) -> None:
    client = await harness.start(read_timeout=0.2)
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408 ") and b'"code": "REQUEST_TIMEOUT"' in answer


async def test_a_connection_with_a_partial_head_is_closed(harness: Harness) -> None:
    client = await harness.start(read_timeout=0.2)
    reader, writer = await asyncio.open_connection(client.host, client.port)
    loop = asyncio.get_running_loop()
    started = loop.time()
    writer.write(b"POST /webhook HTTP/1.1\r\nHost: x\r\n")
    with contextlib.suppress(ConnectionError):  # the server may be gone already
        for _ in range(3):  # header lines trickling in do not extend the deadline
            await asyncio.sleep(0.1)
            writer.write(b"X-Slow: 1\r\n")
            await writer.drain()
    try:
        rest = await asyncio.wait_for(reader.read(), 5)
    except ConnectionError:  # closed while we were still writing
        rest = b""
    assert rest == b"" and loop.time() - started < 2
    writer.close()


async def test_signed_json_nested_to_the_parsers_limit_is_never_a_500(harness: Harness) -> None:
    await harness.start()
    statuses = set()
    for depth in range(900, 1001, 5):  # parsable, but deeper than re-serializing allows
        nested = "[" * depth + "]" * depth
        body = f'{{"event_type":"chat.push","timestamp":{T0},"data":{{"x":{nested}}}}}'.encode()
        status, _ = await harness.post(body, signed(body, f"evt_{depth}"))
        statuses.add(status)
    assert statuses <= {200, 400}
