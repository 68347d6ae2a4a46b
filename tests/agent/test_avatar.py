"""Cloud avatar start through the real livekit bitHuman plugin, against the bitHuman stub."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from livekit import api, rtc
from livekit.agents import AgentSession, JobContext
from livekit.agents.testing import fake_job_context
from livekit.agents.utils import http_context

from agent.avatar import prewarm_avatar, start_avatar
from agent.settings import AgentSettings
from tests.fakes.bithuman_api import ACCOUNT_SECRET, MINT, SESSION_REQUEST, BithumanStub

LIVEKIT_SECRET = "livekit-api-secret-for-tests-0123456789"


@pytest.fixture
async def job() -> AsyncIterator[tuple[rtc.Room, JobContext]]:
    """A job context as a dispatched job has it: with the agent's own room token."""
    room = rtc.Room()
    room._info.name = "room-1"  # the name a connected room has; no LiveKit server here
    with fake_job_context(room=room, agent_identity="agent-AJ_test") as ctx:
        token = (
            api.AccessToken("APIkey", LIVEKIT_SECRET)
            .with_identity("agent-AJ_test")
            .with_kind("agent")
            .with_grants(api.VideoGrants(room_join=True, room="room-1", agent=True))
            .to_jwt()
        )
        # fake_job_context leaves the token empty; the plugin reads the agent identity from it
        ctx._info = dataclasses.replace(ctx._info, token=token)
        async with http_context.open():  # what a worker's job process provides
            yield room, ctx


def settings_for(bithuman_api: BithumanStub, **overrides: Any) -> AgentSettings:
    values: dict[str, Any] = {
        "openai_api_key": "sk-test",
        "livekit_url": "wss://lk.example.test",
        "livekit_api_key": "APIkey",
        "livekit_api_secret": LIVEKIT_SECRET,
        "bithuman_api_secret": ACCOUNT_SECRET,
        "bithuman_avatar_id": "A12BCD3456",
        "bithuman_rest_url": bithuman_api.url,
        "bithuman_api_url": bithuman_api.url + SESSION_REQUEST,
        "avatar_start_timeout": 5.0,
        "avatar_join_timeout": 1.0,
    }
    return AgentSettings(_env_file=None, **(values | overrides))  # type: ignore[call-arg]


async def test_cloud_avatar_gets_a_scoped_token_never_the_account_secret(
    bithuman_api: BithumanStub, job: tuple[rtc.Room, JobContext]
) -> None:
    room, ctx = job
    session: AgentSession[None] = AgentSession()
    settings = settings_for(bithuman_api, bithuman_model="essence")
    avatar = await start_avatar(session, room, ctx.proc, settings)
    assert avatar is not None

    (minted,) = bithuman_api.calls(MINT)
    assert minted.headers["api-secret"] == ACCOUNT_SECRET
    assert minted.body["agent_code"] == "A12BCD3456"
    assert minted.body["scope"] == "livekit-cloud"
    assert minted.body["livekit_url"] == "wss://lk.example.test"
    assert minted.body["room_name"] == "room-1"

    scoped_token = bithuman_api.minted_for("room-1").token
    (request,) = bithuman_api.calls(SESSION_REQUEST)
    assert request.headers["api-secret"] == scoped_token
    body = request.body
    assert body["agent_id"] == "A12BCD3456" and body["model"] == "essence"
    assert body["livekit_url"] == "wss://lk.example.test" and body["mode"] == "cpu"

    claims = api.TokenVerifier("APIkey", LIVEKIT_SECRET).verify(body["livekit_token"])
    assert claims.identity == "bithuman-avatar-agent" and claims.kind == "agent"
    assert claims.video is not None and claims.video.room == "room-1"
    attributes = claims.attributes or {}
    assert attributes["lk.publish_on_behalf"] == "agent-AJ_test"
    assert attributes.get("api_secret") == scoped_token
    everything = str(body) + str(attributes) + str(request.headers)
    assert ACCOUNT_SECRET not in everything and LIVEKIT_SECRET not in everything

    # the agent's voice now goes to the avatar, not to a room track of its own
    assert type(session.output.audio).__name__ == "DataStreamAudioOutput"
    await avatar.aclose()


async def test_refused_mint_falls_back_to_audio_only(
    bithuman_api: BithumanStub, job: tuple[rtc.Room, JobContext], caplog: pytest.LogCaptureFixture
) -> None:
    room, ctx = job
    bithuman_api.fail(MINT, 401, body={"error": "Invalid API secret", "code": "UNAUTHORIZED"})
    session: AgentSession[None] = AgentSession()
    with caplog.at_level(logging.WARNING):
        avatar = await start_avatar(session, room, ctx.proc, settings_for(bithuman_api))
    assert avatar is None
    assert session.output.audio is None
    assert bithuman_api.calls(SESSION_REQUEST) == []
    fallback = "avatar unavailable, continuing audio-only"
    (record,) = [r for r in caplog.records if r.getMessage() == fallback]
    reason: str = record.reason  # type: ignore[attr-defined]
    assert "AuthenticationError" in reason and "Invalid API secret" in reason
    assert ACCOUNT_SECRET not in caplog.text


async def test_refused_session_request_falls_back_to_audio_only(
    bithuman_api: BithumanStub, job: tuple[rtc.Room, JobContext], caplog: pytest.LogCaptureFixture
) -> None:
    room, ctx = job
    bithuman_api.fail(
        SESSION_REQUEST,
        400,
        body={"error": "avatar not prepared for expression-2", "code": "VALIDATION_ERROR"},
        times=10,
    )
    session: AgentSession[None] = AgentSession()
    with caplog.at_level(logging.WARNING):
        avatar = await start_avatar(
            session, room, ctx.proc, settings_for(bithuman_api, bithuman_model="expression-2")
        )
    assert avatar is None
    assert session.output.audio is None, "the avatar's audio sink must be removed"
    assert len(bithuman_api.calls(SESSION_REQUEST)) >= 1
    assert "avatar unavailable, continuing audio-only" in caplog.text


async def test_a_hanging_avatar_api_times_out_into_audio_only(
    bithuman_api: BithumanStub, job: tuple[rtc.Room, JobContext]
) -> None:
    room, ctx = job
    bithuman_api.delays[SESSION_REQUEST] = 30
    session: AgentSession[None] = AgentSession()
    settings = settings_for(bithuman_api, avatar_start_timeout=0.5)
    avatar = await start_avatar(session, room, ctx.proc, settings)
    assert avatar is None and session.output.audio is None


async def test_no_avatar_configured_means_audio_only_without_calls(
    bithuman_api: BithumanStub, job: tuple[rtc.Room, JobContext]
) -> None:
    room, ctx = job
    session: AgentSession[None] = AgentSession()
    settings = settings_for(bithuman_api, bithuman_avatar_id=None)
    assert await start_avatar(session, room, ctx.proc, settings) is None
    assert bithuman_api.requests == []


def test_prewarm_routes_the_bithuman_sdk_logs_into_ours(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from livekit.agents import JobExecutorType, JobProcess
    from loguru import logger as loguru_logger

    settings = AgentSettings(
        _env_file=None,  # type: ignore[call-arg]
        openai_api_key="sk-test",
        bithuman_api_secret=ACCOUNT_SECRET,
        bithuman_avatar_id="A12BCD3456",
    )
    proc = JobProcess(executor_type=JobExecutorType.THREAD, user_arguments=None, http_proxy=None)
    prewarm_avatar(proc, settings)
    with caplog.at_level(logging.INFO):
        loguru_logger.warning("runtime token refresh failed")
    (record,) = [r for r in caplog.records if r.name == "bithuman"]
    assert record.levelno == logging.WARNING
    assert record.getMessage() == "runtime token refresh failed"
