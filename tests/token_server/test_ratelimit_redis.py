"""The Redis rate-limit backend against a real redis-server started by the fixture."""

from __future__ import annotations

from typing import Any

import redis

from tests.conftest import free_port
from tests.token_server.conftest import FakeClock, make_settings
from token_server import create_app
from token_server.ratelimit import BucketSpec, MemoryRateLimiter, RedisRateLimiter


def limited(redis_url: str, **overrides: Any) -> Any:
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "rate_limit_per_minute": 6,  # one token per 10 s
        "rate_limit_burst": 2,
    }
    values.update(overrides)
    return make_settings(**values)


async def test_redis_backend_limits_with_retry_after(
    serve: Any, redis_url: str, clock: FakeClock
) -> None:
    client = await serve(create_app(limited(redis_url), clock=clock))

    assert (await (await client.get("/healthz")).json())["rate_limit"] == "redis"
    assert [(await client.post("/token", json={})).status for _ in range(2)] == [200, 200]
    refused = await client.post("/token", json={})
    assert refused.status == 429
    assert refused.headers["Retry-After"] == "10"
    assert (await refused.json())["details"] == {"retry_after": 10}

    clock.advance(10)
    assert (await client.post("/token", json={})).status == 200
    assert (await client.post("/token", json={})).status == 429


async def test_replicas_share_buckets(serve: Any, redis_url: str, clock: FakeClock) -> None:
    first = await serve(create_app(limited(redis_url), clock=clock))
    second = await serve(create_app(limited(redis_url), clock=clock))

    statuses = [
        (await first.post("/token", json={})).status,
        (await second.post("/token", json={})).status,
        (await first.post("/token", json={})).status,
        (await second.post("/token", json={})).status,
    ]
    assert statuses == [200, 200, 429, 429]


async def test_buckets_expire_once_they_would_be_full(redis_url: str, clock: FakeClock) -> None:
    limiter = RedisRateLimiter.from_url(redis_url, BucketSpec.per_minute(6, 2), clock=clock)
    try:
        await limiter.hit("/token:192.0.2.1")
    finally:
        await limiter.close()

    store = redis.Redis.from_url(redis_url)
    keys = store.keys("token_server:ratelimit:*")
    assert keys == [b"token_server:ratelimit:/token:192.0.2.1"]
    # One token spent refills in 10 s; the state may go a second after that.
    assert 10_000 < store.pttl(keys[0]) <= 11_000
    store.close()


async def test_same_decisions_as_the_memory_backend(redis_url: str, clock: FakeClock) -> None:
    spec = BucketSpec.per_minute(30, 3)  # one token per 2 s
    memory = MemoryRateLimiter(spec, clock=clock)
    shared = RedisRateLimiter.from_url(redis_url, spec, clock=clock)
    steps = [0, 0, 0, 0, 0.5, 1.0, 0.6, 0.1, 4.0, 0, 0, 0, 0, 30, 0, 0, 0, 0]
    try:
        for step in steps:
            clock.advance(step)
            expected = await memory.hit("k")
            actual = await shared.hit("k")
            assert actual.allowed == expected.allowed
            assert abs(actual.retry_after - expected.retry_after) < 0.002
    finally:
        await shared.close()


async def test_unreachable_redis_lets_requests_through(serve: Any) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    client = await serve(create_app(limited(dead, rate_limit_burst=1)))

    assert [(await client.post("/token", json={})).status for _ in range(3)] == [200, 200, 200]
