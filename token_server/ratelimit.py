"""Token-bucket rate limiting per key, in this process or shared through Redis.

Each key owns a bucket of `capacity` tokens refilled at `per_second`; a request takes one token
or is refused with the time until the next token. Both backends run the same arithmetic (the
Redis one as a Lua script, so read-modify-write is atomic across replicas). Time comes from an
injected clock: monotonic in memory, wall-clock for Redis so that replicas agree.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from common.logs import get_logger

log = get_logger("token_server.ratelimit")

Clock = Callable[[], float]


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: float = 0.0  # seconds until a token is available, when refused


@dataclass(frozen=True)
class BucketSpec:
    capacity: int
    per_second: float

    @classmethod
    def per_minute(cls, rate: float, burst: int) -> BucketSpec:
        return cls(capacity=burst, per_second=rate / 60.0)

    @property
    def refill_seconds(self) -> float:
        """Time for an empty bucket to fill up: after that, its state carries no information."""
        return self.capacity / self.per_second


ALLOWED = Decision(True)
# Full buckets are swept out at most this often (and at once when there are too many).
SWEEP_SECONDS = 1.0


class RateLimiter(Protocol):
    backend: str  # shown on /healthz

    async def hit(self, key: str) -> Decision: ...

    async def close(self) -> None: ...


class MemoryRateLimiter:
    """Buckets in a dict ordered by last use; full buckets are forgotten (they equal new ones)."""

    backend = "memory"

    def __init__(
        self, spec: BucketSpec, *, clock: Clock | None = None, max_keys: int = 100_000
    ) -> None:
        self._spec = spec
        self._capacity = float(spec.capacity)
        self._rate = spec.per_second
        self._clock = clock or time.monotonic
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._next_sweep = -math.inf

    def __len__(self) -> int:
        return len(self._buckets)

    async def hit(self, key: str) -> Decision:
        # The Lua script's arithmetic, inline: this runs on every protected request.
        now = self._clock()
        buckets = self._buckets
        state = buckets.pop(key, None)
        if state is None:
            tokens = self._capacity
        else:
            # Refill since the bucket was last seen, never past capacity (nor backwards).
            tokens, updated = state
            if now > updated:
                tokens = min(self._capacity, tokens + (now - updated) * self._rate)
        if tokens >= 1:
            tokens -= 1
            decision = ALLOWED
        else:
            decision = Decision(False, (1 - tokens) / self._rate)
        buckets[key] = (tokens, now)
        # A full bucket left in place a moment longer answers exactly as a new one would.
        if now >= self._next_sweep or len(self._buckets) > self._max_keys:
            self._forget(now)
            self._next_sweep = now + SWEEP_SECONDS
        return decision

    def _forget(self, now: float) -> None:
        # Oldest first: stop at the first bucket that is still refilling.
        horizon = now - self._spec.refill_seconds
        while self._buckets:
            key, (_, updated) = next(iter(self._buckets.items()))
            if updated > horizon and len(self._buckets) <= self._max_keys:
                break
            del self._buckets[key]

    async def close(self) -> None:
        self._buckets.clear()


# KEYS[1] bucket; ARGV capacity, tokens per millisecond, now (ms).
# Returns {allowed (0/1), milliseconds until the next token}.
_TAKE_SCRIPT = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(state[1]) or capacity
local updated = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - updated) * rate)
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = math.ceil((1 - tokens) / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(math.max(now, updated)))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / rate) + 1000)
return {allowed, wait}
"""


class RedisRateLimiter:
    """Buckets in Redis hashes that expire once full, shared by every replica.

    When Redis cannot answer, requests are let through (logged once per outage): the limiter
    protects the service and must not become the reason it is down.
    """

    backend = "redis"

    def __init__(
        self,
        client: aioredis.Redis,
        spec: BucketSpec,
        *,
        clock: Clock | None = None,
        prefix: str = "token_server:ratelimit:",
    ) -> None:
        self._client = client
        self._spec = spec
        self._clock = clock or time.time
        self._prefix = prefix
        self._script = client.register_script(_TAKE_SCRIPT)
        self._failing = False

    @classmethod
    def from_url(
        cls, url: str, spec: BucketSpec, *, clock: Clock | None = None
    ) -> RedisRateLimiter:
        client = aioredis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        return cls(client, spec, clock=clock)

    async def hit(self, key: str) -> Decision:
        now_ms = math.floor(self._clock() * 1000)
        args: list[int | str] = [self._spec.capacity, repr(self._spec.per_second / 1000), now_ms]
        try:
            allowed, wait_ms = await self._script(keys=[self._prefix + key], args=args)
        except (RedisError, OSError, TimeoutError) as exc:
            if not self._failing:
                log.warning("rate limit store unavailable; not limiting", error=type(exc).__name__)
                self._failing = True
            return ALLOWED
        if self._failing:
            log.info("rate limit store available again")
            self._failing = False
        return ALLOWED if allowed else Decision(False, int(wait_ms) / 1000)

    async def close(self) -> None:
        await self._client.aclose()
