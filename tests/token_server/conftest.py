"""Fixtures for the token server: settings, an injectable clock, the app served in-process on
port 0, and the session's Redis emptied per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import redis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tests.conftest import settings_of
from token_server import TokenServerSettings

LIVEKIT_URL = "wss://avatar-test.livekit.cloud"
API_KEY = "APItestkey"
API_SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"


def make_settings(**overrides: Any) -> TokenServerSettings:
    values: dict[str, Any] = {
        "livekit_url": LIVEKIT_URL,
        "livekit_api_key": API_KEY,
        "livekit_api_secret": API_SECRET,
    }
    values.update(overrides)
    return settings_of(TokenServerSettings, **values)


class FakeClock:
    """Time that moves only when a test says so."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[web.Application], Any]]:
    """`client = await serve(app)`: the app on a real local port, closed after the test."""
    clients: list[TestClient[Any, Any]] = []

    async def start(app: web.Application) -> TestClient[Any, Any]:
        client: TestClient[Any, Any] = TestClient(TestServer(app, port=0))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    """The session's Redis, emptied for this test."""
    client = redis.Redis.from_url(redis_server)
    client.flushall()
    yield redis_server
    client.close()
