"""Tokens from our token server, as the real LiveKit server enforces them."""

from __future__ import annotations

import secrets

import pytest
from aiohttp.test_utils import TestServer
from livekit import api, rtc
from livekit.rtc.participant import PublishTrackError

from devkit.harness import User
from tests.e2e.conftest import Stack
from token_server.app import create_app
from token_server.settings import TokenServerSettings

pytestmark = pytest.mark.e2e


def camera_track() -> rtc.LocalVideoTrack:
    source = rtc.VideoSource(64, 64)
    frame = rtc.VideoFrame(64, 64, rtc.VideoBufferType.RGBA, bytearray(64 * 64 * 4))
    source.capture_frame(frame)
    return rtc.LocalVideoTrack.create_video_track("camera", source)


async def test_a_token_joins_only_its_room_with_only_its_grants(stack: Stack) -> None:
    user = await stack.join(f"own-{secrets.token_hex(3)}")
    own_room = user.room.name
    assert user.room.isconnected()

    # the microphone is granted; the camera is not (TOKEN_SERVER_ALLOW_CAMERA is off)
    await user.open_mic()
    with pytest.raises(PublishTrackError):
        await user.room.local_participant.publish_track(
            camera_track(), rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA)
        )

    # the server sees what the token says, and nothing more
    async with api.LiveKitAPI(
        stack.livekit.http_url, stack.livekit.api_key, stack.livekit.api_secret
    ) as lkapi:
        info = await lkapi.room.get_participant(
            api.RoomParticipantIdentity(room=own_room, identity=user.identity)
        )
        permission = info.permission
        assert permission.can_subscribe and permission.can_publish_data
        assert list(permission.can_publish_sources) == [models_source("MICROPHONE")]
        assert not permission.can_update_metadata and not permission.hidden
        assert not any(t.source == models_source("CAMERA") for t in info.tracks)


def models_source(name: str) -> int:
    return int(api.TrackSource.Value(name))


async def test_the_server_refuses_a_token_it_did_not_sign(stack: Stack) -> None:
    forged = (
        api.AccessToken(stack.livekit.api_key, "not-the-server-secret-0123456789abcdef")
        .with_identity("intruder")
        .with_grants(api.VideoGrants(room_join=True, room="any"))
        .to_jwt()
    )
    room = rtc.Room()
    with pytest.raises(rtc.ConnectError):
        await room.connect(stack.livekit.url, forged)


async def test_room_config_dispatch_of_an_allow_listed_agent(stack: Stack) -> None:
    extra_agent = f"{stack.agent_name}-b"
    await stack.start_agent(stack.settings(AGENT_NAME=extra_agent))
    settings = TokenServerSettings(
        **stack.livekit.env(),
        TOKEN_SERVER_ALLOWED_AGENTS=extra_agent,
        TOKEN_SERVER_RATE_LIMIT_PER_MINUTE=0,
    )
    async with TestServer(create_app(settings), host="127.0.0.1") as server:
        url = str(server.make_url("")).rstrip("/")
        async with stack.http.post(
            f"{url}/token",
            json={"room_name": "x", "room_config": {"agents": [{"agent_name": "not-listed"}]}},
        ) as refused:
            assert refused.status == 400
            assert (await refused.json())["code"] == "AGENT_NOT_ALLOWED"
        user = await User.join(
            url,
            f"dispatch-{secrets.token_hex(3)}",
            session=stack.http,
            room_config={"agents": [{"agent_name": extra_agent}]},
        )
        stack.users.append(user)
        agent_kind = rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
        await user.until(
            lambda: any(p.kind == agent_kind for p in user.room.remote_participants.values()),
            within=30,
        )
