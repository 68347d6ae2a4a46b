"""Pure pieces: client address derivation, origin matching, the memory token bucket."""

from __future__ import annotations

from ipaddress import ip_address, ip_network

import pytest

from tests.token_server.conftest import FakeClock
from token_server.client_ip import UNKNOWN, ClientKeys, client_address, rate_limit_key
from token_server.cors import OriginPolicy
from token_server.ratelimit import BucketSpec, MemoryRateLimiter

TRUSTED = [ip_network("10.0.0.0/8"), ip_network("127.0.0.1/32")]


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("198.51.100.1", ["203.0.113.9"], "198.51.100.1"),  # untrusted peer: header ignored
        ("127.0.0.1", [], "127.0.0.1"),
        ("127.0.0.1", ["203.0.113.9"], "203.0.113.9"),
        ("127.0.0.1", ["1.1.1.1, 203.0.113.9, 10.0.0.2"], "203.0.113.9"),
        ("127.0.0.1", ["1.1.1.1", "203.0.113.9"], "203.0.113.9"),  # repeated header
        ("127.0.0.1", ["203.0.113.9, not-an-ip"], "127.0.0.1"),
        ("127.0.0.1", ["10.0.0.3, 10.0.0.2"], "10.0.0.3"),  # all trusted: leftmost
        ("::ffff:127.0.0.1", ["203.0.113.9"], "203.0.113.9"),  # IPv4-mapped peer
        ("::ffff:10.0.0.1", [" ::ffff:203.0.113.9 "], "203.0.113.9"),
    ],
)
def test_client_address_walks_trusted_hops_only(
    peer: str, forwarded: list[str], expected: str
) -> None:
    assert client_address(peer, forwarded, TRUSTED) == ip_address(expected)


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    assert client_address("127.0.0.1", ["203.0.113.9"], []) == ip_address("127.0.0.1")


def test_unusable_peer() -> None:
    assert client_address(None, ["203.0.113.9"], TRUSTED) is None
    assert client_address("/tmp/sock", [], TRUSTED) is None
    assert rate_limit_key(None) == UNKNOWN


def test_ipv6_clients_share_a_bucket_per_64() -> None:
    first = rate_limit_key(ip_address("2001:db8:1:2::1"))
    second = rate_limit_key(ip_address("2001:db8:1:2:ffff::9"))
    other = rate_limit_key(ip_address("2001:db8:1:3::1"))
    assert first == second == "2001:db8:1:2::/64"
    assert other != first
    assert rate_limit_key(ip_address("192.0.2.4")) == "192.0.2.4"


def test_client_keys_follow_the_same_rules() -> None:
    direct = ClientKeys([])
    proxied = ClientKeys(TRUSTED)

    assert direct.key("127.0.0.1", ["203.0.113.9"]) == "127.0.0.1"
    assert direct.key("127.0.0.1", ["198.51.100.1"]) == "127.0.0.1"
    assert proxied.key("127.0.0.1", ["203.0.113.9"]) == "203.0.113.9"
    assert proxied.key("127.0.0.1", ["198.51.100.1"]) == "198.51.100.1"
    assert proxied.key("2001:db8::1", []) == "2001:db8::/64"
    assert proxied.key(None, []) == UNKNOWN


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://app.example.com", True),
        ("HTTPS://APP.EXAMPLE.COM", True),
        ("https://app.example.com:443", False),
        ("http://app.example.com", False),
        ("https://app.example.com.evil.net", False),
        ("http://localhost:8080", True),
        ("http://localhost:1", True),
        ("http://localhost", True),
        ("https://localhost:8080", False),
        ("http://localhost:8080.evil.net", False),
        ("http://[::1]:5173", True),
        ("http://127.0.0.1:3000", False),
        ("null", False),
        ("", False),
    ],
)
def test_origin_policy(origin: str, allowed: bool) -> None:
    policy = OriginPolicy(["https://app.example.com/", "http://localhost:*", "http://[::1]:*"])
    assert policy.allows(origin) is allowed


def test_wildcard_origin_policy() -> None:
    assert OriginPolicy(["*"]).allows("https://anything.example")
    assert not OriginPolicy([]).allows("http://localhost:8080")


async def test_bucket_allows_burst_then_refills_at_rate(clock: FakeClock) -> None:
    limiter = MemoryRateLimiter(BucketSpec.per_minute(30, 3), clock=clock)  # 1 per 2 s

    assert [(await limiter.hit("a")).allowed for _ in range(4)] == [True, True, True, False]
    refused = await limiter.hit("a")
    assert refused.retry_after == pytest.approx(2.0)
    assert (await limiter.hit("b")).allowed  # keys are independent
    clock.advance(1.0)
    assert (await limiter.hit("a")).retry_after == pytest.approx(1.0)
    clock.advance(1.0)
    assert (await limiter.hit("a")).allowed
    assert not (await limiter.hit("a")).allowed


async def test_bucket_never_exceeds_capacity(clock: FakeClock) -> None:
    limiter = MemoryRateLimiter(BucketSpec.per_minute(60, 2), clock=clock)
    await limiter.hit("a")
    clock.advance(3600)

    assert [(await limiter.hit("a")).allowed for _ in range(3)] == [True, True, False]


async def test_full_buckets_are_forgotten(clock: FakeClock) -> None:
    limiter = MemoryRateLimiter(BucketSpec.per_minute(60, 2), clock=clock)  # refills in 2 s
    for n in range(100):
        await limiter.hit(f"client-{n}")
    assert len(limiter) == 100

    clock.advance(2.5)
    await limiter.hit("latest")
    assert len(limiter) == 1


async def test_memory_is_bounded_under_address_rotation(clock: FakeClock) -> None:
    limiter = MemoryRateLimiter(BucketSpec.per_minute(1, 5), clock=clock, max_keys=50)
    for n in range(500):
        await limiter.hit(f"client-{n}")

    assert len(limiter) == 50
