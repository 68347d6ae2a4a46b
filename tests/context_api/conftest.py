"""Fixtures for the context API: its settings, the app served in-process against the session's
real LiveKit server, and lightweight agent participants in that server's rooms."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from context_api import ContextApiSettings, create_app
from devkit.context_agents import StandInAgent
from devkit.livekit_server import LiveKitServer

API_SECRET = "context-test-secret-0123456789"


def make_settings(livekit: LiveKitServer | None = None, **env: Any) -> ContextApiSettings:
    """Settings by environment variable name; LiveKit's from `livekit` (else unreachable)."""
    values: dict[str, Any] = (
        livekit.env()
        if livekit is not None
        else {
            "LIVEKIT_URL": "ws://127.0.0.1:9",  # discard port: nothing answers
            "LIVEKIT_API_KEY": "APIunreachable",
            "LIVEKIT_API_SECRET": "unreachable-secret-0123456789abcdef",
        }
    )
    values["CONTEXT_API_SECRET"] = API_SECRET
    values.update(env)
    return ContextApiSettings(**values)


@pytest.fixture
def agent_code() -> str:
    """A fresh agent code per test: rooms of earlier tests on the shared server never match."""
    return f"A{secrets.token_hex(4).upper()}"


@pytest.fixture
async def serve(
    livekit_server: LiveKitServer,
) -> AsyncIterator[Callable[..., Awaitable[TestClient[Any, Any]]]]:
    """`client = await serve(**env)`: the app against the real server, closed after the test."""
    clients: list[TestClient[Any, Any]] = []

    async def start(**env: Any) -> TestClient[Any, Any]:
        livekit = env.pop("livekit", livekit_server)
        client: TestClient[Any, Any] = TestClient(
            TestServer(create_app(make_settings(livekit, **env)), host="127.0.0.1")
        )
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()


@pytest.fixture
async def stand_in(
    livekit_server: LiveKitServer,
) -> AsyncIterator[Callable[..., Awaitable[StandInAgent]]]:
    """`agent = await stand_in(room, agent_code=...)`: an agent participant that takes commands."""
    agents: list[StandInAgent] = []

    async def join(room: str, *, agent_code: str, identity: str | None = None) -> StandInAgent:
        agent = await StandInAgent.join(
            livekit_server.url,
            livekit_server.api_key,
            livekit_server.api_secret,
            room,
            agent_code=agent_code,
            identity=identity,
        )
        agents.append(agent)
        return agent

    yield join
    for agent in agents:
        await agent.leave()


def headers(secret: str = API_SECRET, **extra: str) -> dict[str, str]:
    return {"api-secret": secret, "Content-Type": "application/json", **extra}
