"""The gesture catalog through the real BithumanClient against the bitHuman HTTP stub."""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from livekit.agents import AgentSession

from agent.dynamics import Dynamics, DynamicsSettings, fetch_catalog
from agent.dynamics.catalog import CatalogCache
from agent.dynamics.sender import AvatarRpc
from bithuman_client import BithumanClient, RetryPolicy
from devkit.bithuman_api import ACCOUNT_SECRET, BithumanStub, dynamics_path
from devkit.dynamics_standins import (
    GESTURES,
    ManualClock,
    RecordingParticipant,
    StandInRoom,
    dynamics_body,
)
from tests.dynamics.conftest import lines

SECRET = ACCOUNT_SECRET  # what the stub accepts
A1 = dynamics_path("A1")


async def no_sleep(_: float) -> None:
    return None


def settings_for(bithuman_api: BithumanStub, **overrides: Any) -> DynamicsSettings:
    return DynamicsSettings(
        bithuman_api_secret=SECRET,
        bithuman_rest_url=bithuman_api.url,
        dynamics_map_path=None,
        **overrides,
    )


@pytest.fixture
async def client(bithuman_api: BithumanStub) -> AsyncIterator[BithumanClient]:
    """The real client, retrying twice without waiting."""
    async with BithumanClient(
        SECRET,
        base_url=bithuman_api.url,
        retry=RetryPolicy(attempts=2),
        sleep=no_sleep,
        rng=random.Random(0),
    ) as running:
        yield running


async def test_gestures_as_a_map(bithuman_api: BithumanStub) -> None:
    bithuman_api.answers[A1] = (
        200,
        dynamics_body({name: f"https://x/{name}.mp4" for name in GESTURES}),
    )
    catalog = await fetch_catalog("A1", settings_for(bithuman_api), cache=CatalogCache())
    assert catalog is not None and catalog.has_dynamics
    assert catalog.gesture_names == GESTURES
    assert [(r.path, r.headers.get("api-secret")) for r in bithuman_api.requests] == [(A1, SECRET)]


async def test_gestures_as_a_list(bithuman_api: BithumanStub) -> None:
    bithuman_api.answers[A1] = (200, dynamics_body(list(reversed(GESTURES))))
    catalog = await fetch_catalog("A1", settings_for(bithuman_api), cache=CatalogCache())
    assert catalog is not None and catalog.has_dynamics
    assert catalog.gesture_names == GESTURES


@pytest.mark.parametrize(
    "body",
    [dynamics_body(None, url=None), dynamics_body(GESTURES, url=None), dynamics_body([], url="x")],
)
async def test_no_url_or_no_gestures_means_no_dynamics_whatever_the_status(
    bithuman_api: BithumanStub, body: object, logged: pytest.LogCaptureFixture
) -> None:
    bithuman_api.answers[A1] = (200, body)
    session: AgentSession[Any] = AgentSession()
    room = StandInRoom(RecordingParticipant(), present=["bithuman-avatar-agent"])
    dynamics = await Dynamics.start(
        session=session,
        target=AvatarRpc(room, response_timeout=1),
        settings=settings_for(bithuman_api),
        agent_id="A1",
        cache=CatalogCache(),
    )
    assert not dynamics.active
    assert lines(logged) == []
    assert "dynamics off for this session: the avatar has no gestures" in lines(
        logged, logging.INFO
    )


@pytest.mark.parametrize(("status", "attempts"), [(500, 2), (401, 1), (404, 1)])
async def test_catalog_failure_turns_dynamics_off_with_one_warning(
    bithuman_api: BithumanStub,
    client: BithumanClient,
    status: int,
    attempts: int,
    logged: pytest.LogCaptureFixture,
) -> None:
    bithuman_api.answers[A1] = (status, {"error": "nope", "code": "X"})
    participant = RecordingParticipant()
    session: AgentSession[Any] = AgentSession()
    dynamics = await Dynamics.start(
        session=session,
        target=AvatarRpc(
            StandInRoom(participant, present=["bithuman-avatar-agent"]), response_timeout=1
        ),
        settings=settings_for(bithuman_api),
        agent_id="A1",
        client=client,
        cache=CatalogCache(),
    )
    assert not dynamics.active
    assert len(bithuman_api.requests) == attempts
    assert lines(logged) == ["dynamics off for this session: gesture catalog unavailable"]
    assert SECRET not in logged.text
    dynamics.react("hello", source="user_speech")
    await dynamics.aclose()
    assert participant.calls == []


async def test_unreachable_api_is_a_failure_too(logged: pytest.LogCaptureFixture) -> None:
    async with BithumanStub() as gone:
        url = gone.url
    settings = DynamicsSettings(bithuman_api_secret=SECRET, bithuman_rest_url=url)
    async with BithumanClient(SECRET, base_url=url, retry=RetryPolicy(attempts=1)) as client:
        assert await fetch_catalog("A1", settings, client=client, cache=CatalogCache()) is None
    assert lines(logged) == ["dynamics off for this session: gesture catalog unavailable"]


@pytest.mark.parametrize(
    ("agent_id", "secret", "reason"),
    [
        (None, SECRET, "no avatar agent id"),
        ("A1", None, "BITHUMAN_API_SECRET is not set"),
    ],
)
async def test_missing_agent_id_or_secret_turns_dynamics_off(
    bithuman_api: BithumanStub,
    agent_id: str | None,
    secret: str | None,
    reason: str,
    logged: pytest.LogCaptureFixture,
) -> None:
    settings = DynamicsSettings(bithuman_api_secret=secret, bithuman_rest_url=bithuman_api.url)
    assert await fetch_catalog(agent_id, settings, cache=CatalogCache()) is None
    assert len(lines(logged)) == 1 and reason in lines(logged)[0]
    assert bithuman_api.requests == []


async def test_catalog_is_cached_per_process_for_its_ttl(bithuman_api: BithumanStub) -> None:
    bithuman_api.answers[A1] = (200, dynamics_body(GESTURES))
    clock = ManualClock()
    cache = CatalogCache(clock=clock)
    settings = settings_for(bithuman_api, dynamics_catalog_ttl=60)
    for _ in range(3):
        assert await fetch_catalog("A1", settings, cache=cache) is not None
    assert len(bithuman_api.requests) == 1
    clock.advance(59.9)
    await fetch_catalog("A1", settings, cache=cache)
    assert len(bithuman_api.requests) == 1
    clock.advance(0.1)
    await fetch_catalog("A1", settings, cache=cache)
    assert len(bithuman_api.requests) == 2
    bithuman_api.answers[dynamics_path("B2")] = (200, dynamics_body(["wave"]))
    other = await fetch_catalog("B2", settings, cache=cache)
    assert other is not None and other.gesture_names == ["wave"]


async def test_failures_are_not_cached(bithuman_api: BithumanStub, client: BithumanClient) -> None:
    cache = CatalogCache(clock=ManualClock())
    bithuman_api.answers[A1] = (401, {"error": "bad secret"})
    assert await fetch_catalog("A1", settings_for(bithuman_api), client=client, cache=cache) is None
    bithuman_api.answers[A1] = (200, dynamics_body(GESTURES))
    assert (
        await fetch_catalog("A1", settings_for(bithuman_api), client=client, cache=cache)
        is not None
    )


async def test_disabled_makes_no_request(bithuman_api: BithumanStub) -> None:
    session: AgentSession[Any] = AgentSession()
    room = StandInRoom(RecordingParticipant(), present=["bithuman-avatar-agent"])
    dynamics = await Dynamics.start(
        session=session,
        target=AvatarRpc(room, response_timeout=1),
        settings=settings_for(bithuman_api, dynamics_enabled=False),
        agent_id="A1",
        cache=CatalogCache(),
    )
    assert not dynamics.active
    assert bithuman_api.requests == []
