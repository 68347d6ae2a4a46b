"""The outbox in Redis, for containers with ephemeral disks and for several hosts.

Layout under a prefix: `<prefix>:row:<key>` hashes hold each delivery; the sorted set
`<prefix>:due` orders pending rows by due time (a claim moves a row's score to its lease
expiry); `<prefix>:dead` holds dead-lettered rows by the time they died. Claims and state
changes are Lua scripts, so they are atomic however many deliverers share the outbox.
Durability is Redis's own: run it with `appendonly yes` for the at-least-once promise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self, cast

import redis

from webhooks.outbox import DeadLetter, Delivery, Outcome, delivery_key
from webhooks.payloads import Event

_FIELDS = ("event_id", "event_type", "url", "body", "created_at", "attempts")
_DEAD_FIELDS = (*_FIELDS, "last_status", "last_error")

# KEYS: due; ARGV: now, lease_until, limit
_CLAIM = """
local keys = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, key in ipairs(keys) do redis.call('ZADD', KEYS[1], 'XX', ARGV[2], key) end
return keys
"""

# KEYS: due, dead, row; ARGV: outcome, member, attempts, when, status, error
_RECORD = """
if ARGV[1] == 'delivered' then
  redis.call('ZREM', KEYS[1], ARGV[2])
  redis.call('DEL', KEYS[3])
  return 1
end
if redis.call('EXISTS', KEYS[3]) == 0 or redis.call('ZSCORE', KEYS[1], ARGV[2]) == false then
  return 0
end
redis.call('HSET', KEYS[3], 'attempts', ARGV[3], 'last_status', ARGV[5], 'last_error', ARGV[6])
if ARGV[1] == 'retry' then
  redis.call('ZADD', KEYS[1], ARGV[4], ARGV[2])
else
  redis.call('ZREM', KEYS[1], ARGV[2])
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[2])
end
return 1
"""

# KEYS: due, dead; ARGV: now, row key prefix
_REQUEUE = """
local keys = redis.call('ZRANGE', KEYS[2], 0, -1)
for _, key in ipairs(keys) do
  redis.call('HSET', ARGV[2] .. key, 'attempts', 0)
  redis.call('ZADD', KEYS[1], ARGV[1], key)
end
redis.call('DEL', KEYS[2])
return #keys
"""

# KEYS: dead; ARGV: before (exclusive), row key prefix, limit
_PRUNE_DEAD = """
local before = '(' .. ARGV[1]
local keys = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', before, 'LIMIT', 0, tonumber(ARGV[3]))
for _, key in ipairs(keys) do
  redis.call('DEL', ARGV[2] .. key)
  redis.call('ZREM', KEYS[1], key)
end
return #keys
"""
_PRUNE_BATCH = 1000


class RedisOutbox:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._redis = client
        self._due = f"{prefix}:due"
        self._dead = f"{prefix}:dead"
        self._row_prefix = f"{prefix}:row:"
        self._claim = client.register_script(_CLAIM)
        self._record = client.register_script(_RECORD)
        self._requeue = client.register_script(_REQUEUE)
        self._prune_dead = client.register_script(_PRUNE_DEAD)

    @classmethod
    def connect(cls, url: str, *, prefix: str) -> Self:
        client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
        client.ping()  # fail at start-up, not on the first event
        return cls(client, prefix)

    def append(self, events: Sequence[Event], urls: Sequence[str]) -> None:
        pipe = self._redis.pipeline(transaction=True)
        for event in events:
            for index, url in enumerate(urls):
                key = delivery_key(event.id, index)
                pipe.hset(
                    self._row(key),
                    mapping={
                        "event_id": event.id,
                        "event_type": event.event_type,
                        "url": url,
                        "body": event.body,
                        "created_at": repr(event.created_at),
                        "attempts": 0,
                    },
                )
                pipe.zadd(self._due, {key: event.created_at}, nx=True)
        pipe.execute()

    def claim(self, now: float, lease_until: float, limit: int) -> list[Delivery]:
        raw = self._claim(keys=[self._due], args=[repr(now), repr(lease_until), limit])
        keys = [_text(key) for key in raw]
        rows = self._rows(keys, _FIELDS)
        claimed: list[Delivery] = []
        orphans: list[str] = []
        for key, row in zip(keys, rows, strict=True):
            if row[0] is None:
                orphans.append(key)
                continue
            event_id, event_type, url, body, created_at, attempts = row
            claimed.append(
                Delivery(
                    key=key,
                    event_id=_text(event_id),
                    event_type=_text(event_type),
                    url=_text(url),
                    body=bytes(body),
                    created_at=float(created_at),
                    attempts=int(attempts),
                )
            )
        if orphans:
            self._redis.zrem(self._due, *orphans)
        return claimed

    def record(self, outcomes: Sequence[Outcome]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for o in outcomes:
            kind = "delivered" if o.delivered else "retry" if o.retry_at is not None else "dead"
            when = o.retry_at if o.retry_at is not None else o.at
            self._record(
                keys=[self._due, self._dead, self._row(o.key)],
                args=[kind, o.key, o.attempts, repr(when), o.status or "", o.error or ""],
                client=pipe,
            )
        pipe.execute()

    def release(self, keys: Sequence[str], now: float) -> None:
        if keys:
            self._redis.zadd(self._due, dict.fromkeys(keys, now), xx=True)

    def next_due(self) -> float | None:
        first = self._redis.zrange(self._due, 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    def depth(self) -> int:
        return int(self._redis.zcard(self._due))

    def dead_letters(self, limit: int) -> list[DeadLetter]:
        entries = cast(
            list[tuple[bytes, float]],
            self._redis.zrange(self._dead, 0, limit - 1, withscores=True),
        )
        rows = self._rows([_text(member) for member, _ in entries], _DEAD_FIELDS)
        letters: list[DeadLetter] = []
        for (member, dead_at), row in zip(entries, rows, strict=True):
            if row[0] is None:
                continue
            event_id, event_type, url, body, _, attempts, status, error = row
            letters.append(
                DeadLetter(
                    key=_text(member),
                    event_id=_text(event_id),
                    event_type=_text(event_type),
                    url=_text(url),
                    attempts=int(attempts),
                    last_status=int(status) if status else None,
                    last_error=_text(error) or None,
                    dead_at=float(dead_at),
                    body=bytes(body),
                )
            )
        return letters

    def requeue_dead(self, now: float) -> int:
        return int(self._requeue(keys=[self._due, self._dead], args=[repr(now), self._row_prefix]))

    def prune_dead(self, before: float) -> int:
        pruned = 0
        while True:  # in batches: one script call must not hold Redis for long
            args: list[str | int] = [repr(before), self._row_prefix, _PRUNE_BATCH]
            count = int(self._prune_dead(keys=[self._dead], args=args))
            pruned += count
            if count < _PRUNE_BATCH:
                return pruned

    def close(self) -> None:
        self._redis.close()

    def _row(self, key: str) -> str:
        return self._row_prefix + key

    def _rows(self, keys: Sequence[str], fields: Sequence[str]) -> list[list[Any]]:
        pipe = self._redis.pipeline(transaction=False)
        for key in keys:
            pipe.hmget(self._row(key), list(fields))
        return list(pipe.execute())


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value or "")
