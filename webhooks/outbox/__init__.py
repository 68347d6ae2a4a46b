"""The durable outbox: one row per (event, destination) until a 2xx answer removes it.

Stores are synchronous and are only used from worker threads, never on the event loop. Any
number of processes may share one store: a deliverer claims due rows by pushing their due time
forward by a lease, so a crashed deliverer's rows become due again once the lease runs out
(at-least-once delivery; receivers dedupe on `webhook-id`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from webhooks.payloads import Event
from webhooks.settings import WebhookSettings


@dataclass(frozen=True, slots=True)
class Delivery:
    """A claimed row: one event for one destination, with the attempts made so far."""

    key: str
    event_id: str
    event_type: str
    url: str
    body: bytes
    created_at: float
    attempts: int


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one attempt. Not delivered and no `retry_at` means dead-lettered."""

    key: str
    delivered: bool
    attempts: int
    at: float
    status: int | None = None
    error: str | None = None
    retry_at: float | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    key: str
    event_id: str
    event_type: str
    url: str
    attempts: int
    last_status: int | None
    last_error: str | None
    dead_at: float
    body: bytes


class OutboxStore(Protocol):
    def append(self, events: Sequence[Event], urls: Sequence[str]) -> None:
        """Store one pending row per event and destination, due at the event's creation."""

    def claim(self, now: float, lease_until: float, limit: int) -> list[Delivery]:
        """Take up to `limit` due rows and hide them from other deliverers until `lease_until`."""

    def record(self, outcomes: Sequence[Outcome]) -> None:
        """Apply attempt results: delete delivered rows, reschedule or dead-letter the rest."""

    def release(self, keys: Sequence[str], now: float) -> None:
        """Give claimed rows back (due `now`) when a deliverer stops before attempting them."""

    def next_due(self) -> float | None:
        """The earliest due time of a pending row (claimed rows count with their lease)."""

    def depth(self) -> int:
        """Rows waiting for delivery, claimed or not."""

    def dead_letters(self, limit: int) -> list[DeadLetter]: ...

    def requeue_dead(self, now: float) -> int:
        """Make every dead-lettered row pending again with a fresh attempt budget."""

    def prune_dead(self, before: float) -> int:
        """Delete dead letters that died before `before`; returns how many."""

    def close(self) -> None: ...


def delivery_key(event_id: str, destination: int) -> str:
    return f"{event_id}:{destination}"


def open_outbox(settings: WebhookSettings) -> OutboxStore:
    """Redis when REDIS_URL is set, else the SQLite file (blocking: call from a thread)."""
    # Backends are imported on use: a SQLite deployment never loads the Redis client.
    if settings.redis_url is not None:
        from webhooks.outbox.redis_store import RedisOutbox

        return RedisOutbox.connect(
            settings.redis_url.get_secret_value(), prefix=settings.redis_prefix
        )
    from webhooks.outbox.sqlite_store import SQLiteOutbox

    return SQLiteOutbox.open(settings.outbox_path)
