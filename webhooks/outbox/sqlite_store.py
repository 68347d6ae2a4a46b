"""The outbox in a SQLite file, shared by every process on the host (see webhooks.sqlite).

A claim is a single UPDATE ... RETURNING statement, atomic across processes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Self

from webhooks.outbox import DeadLetter, Delivery, Outcome, delivery_key
from webhooks.payloads import Event
from webhooks.sqlite import connect, transaction

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    key TEXT PRIMARY KEY,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    url TEXT NOT NULL,
    body BLOB NOT NULL,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    due_at REAL NOT NULL,
    dead INTEGER NOT NULL DEFAULT 0,
    last_status INTEGER,
    last_error TEXT,
    dead_at REAL
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (dead, due_at);
"""


class SQLiteOutbox:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection

    @classmethod
    def open(cls, path: Path) -> Self:
        return cls(connect(path, _SCHEMA))

    def append(self, events: Sequence[Event], urls: Sequence[str]) -> None:
        rows = [
            (delivery_key(e.id, i), e.id, e.event_type, url, e.body, e.created_at, e.created_at)
            for e in events
            for i, url in enumerate(urls)
        ]
        with transaction(self._db):
            # OR IGNORE: a batch retried after a failed commit must not fail on its own rows.
            self._db.executemany(
                "INSERT OR IGNORE INTO deliveries"
                " (key, event_id, event_type, url, body, created_at, due_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def claim(self, now: float, lease_until: float, limit: int) -> list[Delivery]:
        cursor = self._db.execute(
            "UPDATE deliveries SET due_at = ? WHERE key IN ("
            " SELECT key FROM deliveries WHERE dead = 0 AND due_at <= ? ORDER BY due_at LIMIT ?)"
            " RETURNING key, event_id, event_type, url, body, created_at, attempts",
            (lease_until, now, limit),
        )
        return [Delivery(*row) for row in cursor.fetchall()]

    def record(self, outcomes: Sequence[Outcome]) -> None:
        delivered = [(o.key,) for o in outcomes if o.delivered]
        retried = [
            (o.attempts, o.retry_at, o.status, o.error, o.key)
            for o in outcomes
            if not o.delivered and o.retry_at is not None
        ]
        dead = [
            (o.attempts, o.status, o.error, o.at, o.key)
            for o in outcomes
            if not o.delivered and o.retry_at is None
        ]
        with transaction(self._db):
            self._db.executemany("DELETE FROM deliveries WHERE key = ?", delivered)
            self._db.executemany(
                "UPDATE deliveries SET attempts = ?, due_at = ?, last_status = ?, last_error = ?"
                " WHERE key = ? AND dead = 0",
                retried,
            )
            self._db.executemany(
                "UPDATE deliveries SET dead = 1, attempts = ?, last_status = ?, last_error = ?,"
                " dead_at = ? WHERE key = ? AND dead = 0",
                dead,
            )

    def release(self, keys: Sequence[str], now: float) -> None:
        with transaction(self._db):
            self._db.executemany(
                "UPDATE deliveries SET due_at = ? WHERE key = ? AND dead = 0",
                [(now, key) for key in keys],
            )

    def next_due(self) -> float | None:
        row = self._db.execute("SELECT MIN(due_at) FROM deliveries WHERE dead = 0").fetchone()
        return None if row[0] is None else float(row[0])

    def depth(self) -> int:
        row = self._db.execute("SELECT COUNT(*) FROM deliveries WHERE dead = 0").fetchone()
        return int(row[0])

    def dead_letters(self, limit: int) -> list[DeadLetter]:
        cursor = self._db.execute(
            "SELECT key, event_id, event_type, url, attempts, last_status, last_error, dead_at,"
            " body FROM deliveries WHERE dead = 1 ORDER BY dead_at LIMIT ?",
            (limit,),
        )
        return [DeadLetter(*row) for row in cursor.fetchall()]

    def requeue_dead(self, now: float) -> int:
        cursor = self._db.execute(
            "UPDATE deliveries SET dead = 0, attempts = 0, due_at = ?, dead_at = NULL"
            " WHERE dead = 1",
            (now,),
        )
        return cursor.rowcount

    def prune_dead(self, before: float) -> int:
        cursor = self._db.execute(
            "DELETE FROM deliveries WHERE dead = 1 AND dead_at < ?", (before,)
        )
        return cursor.rowcount

    def close(self) -> None:
        self._db.close()
