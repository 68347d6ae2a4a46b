"""The receiver's SQLite file: accepted events (the inbox and the dedupe memory) and dead letters.

An event is written before the request is answered, so a 2xx never loses it: a crash between
the answer and the handlers leaves it pending, and the next start runs it (each start that
finds it pending counts, so an event that keeps killing the receiver is parked, not re-run
forever). Its key and its fingerprint (the hash of the signed envelope) stay after
processing, for the dedupe TTL: a redelivery matching either is a duplicate. A handler that
fails leaves one dead-letter row per (event, handler), retried with backoff until it succeeds
or is parked; parked letters are pruned after their retention.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from webhooks.sqlite import add_column, connect, transaction

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    key TEXT PRIMARY KEY,
    event_type TEXT NOT NULL,
    body BLOB NOT NULL,
    received_at REAL NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    fingerprint TEXT,
    starts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS events_done ON events (done, received_at);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,
    event_key TEXT NOT NULL,
    handler TEXT NOT NULL,
    event_type TEXT NOT NULL,
    body BLOB NOT NULL,
    error TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    failed_at REAL NOT NULL,
    next_at REAL,
    UNIQUE (event_key, handler)
);
CREATE INDEX IF NOT EXISTS dead_letters_due ON dead_letters (next_at);
"""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    key: str
    event_type: str
    body: bytes
    received_at: float
    fingerprint: str | None = None  # the envelope's hash; a second event matching it is a dup
    starts: int = 0  # starts of the receiver that found this event still pending


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A failed handler run. `next_at` None means parked: no more automatic retries."""

    id: int
    event_key: str
    handler: str
    event_type: str
    body: bytes
    error: str
    attempts: int
    failed_at: float
    next_at: float | None


class ReceiverStore:
    """Synchronous; the receiver calls it from one worker thread."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection

    @classmethod
    def open(cls, path: Path) -> Self:
        db = connect(path, _SCHEMA)
        # Files written before fingerprints and start counts existed get the columns now.
        add_column(db, "events", "fingerprint", "TEXT")
        add_column(db, "events", "starts", "INTEGER NOT NULL DEFAULT 0")
        db.execute("CREATE UNIQUE INDEX IF NOT EXISTS events_fingerprint ON events (fingerprint)")
        db.execute("CREATE INDEX IF NOT EXISTS dead_letters_parked ON dead_letters (failed_at)")
        return cls(db)

    def accept(self, event: StoredEvent) -> bool:
        """Store a new event; False when its key or its fingerprint was seen (a duplicate)."""
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO events (key, event_type, body, received_at, fingerprint)"
            " VALUES (?, ?, ?, ?, ?)",
            (event.key, event.event_type, event.body, event.received_at, event.fingerprint),
        )
        return cursor.rowcount == 1

    def pending(self) -> list[StoredEvent]:
        cursor = self._db.execute(
            "SELECT key, event_type, body, received_at, fingerprint, starts FROM events"
            " WHERE done = 0 ORDER BY received_at"
        )
        return [StoredEvent(*row) for row in cursor.fetchall()]

    def recover(self) -> list[StoredEvent]:
        """The events a previous run left pending, each counting one more start."""
        with transaction(self._db):
            self._db.execute("UPDATE events SET starts = starts + 1 WHERE done = 0")
            return self.pending()

    def finish(
        self,
        event: StoredEvent,
        failures: Sequence[tuple[str, str]],
        now: float,
        retry_at: float | None,
        attempts: int = 1,
    ) -> None:
        """Mark an event processed and dead-letter each (handler, error) that failed, to be
        retried at `retry_at` (None: parked at once)."""
        with transaction(self._db):
            self._db.execute("UPDATE events SET done = 1 WHERE key = ?", (event.key,))
            self._db.executemany(
                "INSERT OR REPLACE INTO dead_letters"
                " (event_key, handler, event_type, body, error, attempts, failed_at, next_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        event.key,
                        handler,
                        event.event_type,
                        event.body,
                        error,
                        attempts,
                        now,
                        retry_at,
                    )
                    for handler, error in failures
                ],
            )

    def due_dead_letters(self, now: float, limit: int) -> list[DeadLetter]:
        return self._dead_letters(
            "WHERE next_at IS NOT NULL AND next_at <= ? ORDER BY next_at LIMIT ?", (now, limit)
        )

    def dead_letters(self, limit: int) -> list[DeadLetter]:
        return self._dead_letters("ORDER BY failed_at LIMIT ?", (limit,))

    def retried(
        self, letter_id: int, error: str | None, attempts: int, now: float, next_at: float | None
    ) -> None:
        """Record a retry: success deletes the letter, failure reschedules or parks it."""
        if error is None:
            self._db.execute("DELETE FROM dead_letters WHERE id = ?", (letter_id,))
            return
        self._db.execute(
            "UPDATE dead_letters SET error = ?, attempts = ?, failed_at = ?, next_at = ?"
            " WHERE id = ?",
            (error, attempts, now, next_at, letter_id),
        )

    def requeue(self, now: float) -> int:
        """Give parked letters a fresh set of attempts, due now."""
        cursor = self._db.execute(
            "UPDATE dead_letters SET attempts = 0, next_at = ? WHERE next_at IS NULL", (now,)
        )
        return cursor.rowcount

    def dead_letter_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0])

    def prune(self, before: float) -> int:
        """Forget processed events received before `before`."""
        cursor = self._db.execute(
            "DELETE FROM events WHERE done = 1 AND received_at < ?", (before,)
        )
        return cursor.rowcount

    def prune_parked(self, before: float) -> int:
        """Delete parked dead letters whose last failure is older than `before`."""
        cursor = self._db.execute(
            "DELETE FROM dead_letters WHERE next_at IS NULL AND failed_at < ?", (before,)
        )
        return cursor.rowcount

    def close(self) -> None:
        self._db.close()

    def _dead_letters(self, clause: str, params: tuple[object, ...]) -> list[DeadLetter]:
        cursor = self._db.execute(
            "SELECT id, event_key, handler, event_type, body, error, attempts, failed_at, next_at"
            f" FROM dead_letters {clause}",
            params,
        )
        return [DeadLetter(*row) for row in cursor.fetchall()]
