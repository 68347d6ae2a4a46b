"""The outbox contract, against SQLite and against a real redis-server."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from webhooks import payloads
from webhooks.outbox import OutboxStore, Outcome
from webhooks.outbox.sqlite_store import SQLiteOutbox
from webhooks.payloads import EventIds

new_id = EventIds().next

T0 = 1_700_000_000.0
URLS = ["https://a.example/hook", "https://b.example/hook"]
Factory = Callable[[], OutboxStore]


def make_events(count: int, start: float = T0) -> list[payloads.Event]:
    return [
        payloads.chat_push(
            event_id=new_id(),
            agent_id="a",
            role="user",
            message=f"m{i}",
            session_id="s",
            now=start + i,
        )
        for i in range(count)
    ]


def test_one_row_per_event_and_destination_due_at_creation(store_factory: Factory) -> None:
    store = store_factory()
    batch = make_events(2)
    store.append(batch, URLS)
    assert store.depth() == 4
    assert store.next_due() == T0
    assert store.claim(T0 - 1, T0 + 30, 10) == []
    claimed = store.claim(T0 + 1, T0 + 31, 10)
    assert sorted((d.event_id, d.url) for d in claimed) == sorted(
        (e.id, url) for e in batch for url in URLS
    )
    first = next(d for d in claimed if d.event_id == batch[0].id)
    assert first.body == batch[0].body and first.attempts == 0
    assert first.created_at == batch[0].created_at and first.event_type == "chat.push"


def test_append_is_idempotent(store_factory: Factory) -> None:
    store = store_factory()
    batch = make_events(3)
    store.append(batch, URLS[:1])
    store.append(batch, URLS[:1])
    assert store.depth() == 3


def test_claims_are_leases(store_factory: Factory) -> None:
    store = store_factory()
    store.append(make_events(1), URLS[:1])
    assert len(store.claim(T0, T0 + 35, 10)) == 1
    assert store.claim(T0 + 34, T0 + 60, 10) == []  # still leased
    assert store.next_due() == T0 + 35
    reclaimed = store.claim(T0 + 35, T0 + 70, 10)  # the lease ran out: a crashed deliverer
    assert len(reclaimed) == 1


def test_outcomes_delete_reschedule_or_dead_letter(store_factory: Factory) -> None:
    store = store_factory()
    store.append(make_events(3), URLS[:1])
    a, b, c = sorted(store.claim(T0 + 5, T0 + 40, 10), key=lambda d: d.created_at)
    store.record(
        [
            Outcome(a.key, True, 1, T0 + 5, status=200),
            Outcome(b.key, False, 1, T0 + 5, status=503, error="HTTP 503", retry_at=T0 + 6),
            Outcome(c.key, False, 4, T0 + 5, status=None, error="ClientConnectorError: refused"),
        ]
    )
    assert store.depth() == 1
    assert store.next_due() == T0 + 6
    (retry,) = store.claim(T0 + 6, T0 + 40, 10)
    assert retry.key == b.key and retry.attempts == 1
    (dead,) = store.dead_letters(10)
    assert dead.key == c.key and dead.attempts == 4 and dead.last_status is None
    assert dead.last_error == "ClientConnectorError: refused" and dead.dead_at == T0 + 5
    assert dead.body == c.body


def test_requeue_gives_dead_letters_a_fresh_budget(store_factory: Factory) -> None:
    store = store_factory()
    store.append(make_events(2), URLS[:1])
    for d in store.claim(T0 + 2, T0 + 40, 10):
        store.record([Outcome(d.key, False, 4, T0 + 2, status=500, error="HTTP 500")])
    assert store.depth() == 0 and len(store.dead_letters(10)) == 2
    assert store.requeue_dead(T0 + 100) == 2
    assert store.dead_letters(10) == []
    again = store.claim(T0 + 100, T0 + 130, 10)
    assert len(again) == 2 and all(d.attempts == 0 for d in again)


def test_release_makes_rows_due_again(store_factory: Factory) -> None:
    store = store_factory()
    store.append(make_events(2), URLS[:1])
    claimed = store.claim(T0 + 2, T0 + 40, 10)
    store.release([d.key for d in claimed], T0 + 3)
    assert len(store.claim(T0 + 3, T0 + 40, 10)) == 2


def test_late_results_for_finished_rows_change_nothing(store_factory: Factory) -> None:
    store = store_factory()
    store.append(make_events(1), URLS[:1])
    (d,) = store.claim(T0, T0 + 35, 10)
    store.record([Outcome(d.key, True, 1, T0, status=200)])
    # A second deliverer whose lease had expired reports a failure afterwards.
    store.record([Outcome(d.key, False, 1, T0, status=500, error="HTTP 500", retry_at=T0 + 1)])
    store.record([Outcome(d.key, False, 4, T0, status=500, error="HTTP 500")])
    assert store.depth() == 0 and store.dead_letters(10) == [] and store.next_due() is None


def test_concurrent_claimers_never_share_a_row(store_factory: Factory) -> None:
    store_factory().append(make_events(300), URLS[:1])
    claimers = [store_factory() for _ in range(4)]

    def drain(store: OutboxStore) -> list[str]:
        keys: list[str] = []
        while batch := store.claim(T0 + 1000, T0 + 2000, 7):
            keys.extend(d.key for d in batch)
        return keys

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(drain, claimers))
    every = [key for keys in results for key in keys]
    assert len(every) == 300 and len(set(every)) == 300


def test_a_new_sqlite_outbox_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)  # the usual umask, under which SQLite alone would create 0644
    try:
        store = SQLiteOutbox.open(tmp_path / "state" / "outbox.db")
        store.append(make_events(1), URLS)
    finally:
        os.umask(old)
    folder = tmp_path / "state"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = sorted(folder.iterdir())
    assert [f.name for f in files] == ["outbox.db", "outbox.db-shm", "outbox.db-wal"]
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o600}
    store.close()
