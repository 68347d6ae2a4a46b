"""The bitHuman stand-ins: the REST stub's authentication and scoping, and the cloud avatar
stand-in as a real participant of a real LiveKit server, driven without our agent code."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import numpy as np
import pytest
from livekit import api, rtc
from livekit.agents import utils
from livekit.agents.voice.avatar import DataStreamAudioOutput

from devkit.bithuman_api import (
    ACCOUNT_SECRET,
    MINT,
    SESSION_REQUEST,
    BithumanStub,
    dynamics_path,
)
from devkit.bithuman_avatar import AvatarStandIn, StandInSession
from devkit.livekit_server import LiveKitServer

AVATAR = "bithuman-avatar-agent"
AGENT_ID = "A12BCD3456"
SAMPLE_RATE = 24_000


def unique_room() -> str:
    return f"bh-avatar-{uuid.uuid4().hex[:10]}"


async def post(url: str, body: Any, secret: str | None, *, method: str = "POST") -> tuple[int, Any]:
    headers = {"api-secret": secret} if secret is not None else {}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, url, json=body, headers=headers) as answer,
    ):
        return answer.status, await answer.json()


def room_token(
    server: LiveKitServer,
    room_name: str,
    identity: str,
    *,
    kind: str = "standard",
    attributes: dict[str, str] | None = None,
) -> str:
    token = (
        api.AccessToken(server.api_key, server.api_secret)
        .with_identity(identity)
        .with_kind(kind)
        .with_grants(api.VideoGrants(room_join=True, room=room_name))
    )
    if attributes:
        token = token.with_attributes(attributes)
    return token.to_jwt()


def avatar_token(server: LiveKitServer, room_name: str, agent: str, secret: str) -> str:
    """The token the livekit bitHuman plugin mints for the avatar participant."""
    attributes = {"lk.publish_on_behalf": agent, "api_secret": secret, "agent_id": AGENT_ID}
    return room_token(server, room_name, AVATAR, kind="agent", attributes=attributes)


def session_body(server: LiveKitServer, room_name: str, agent: str, secret: str) -> dict[str, Any]:
    return {
        "livekit_url": server.url,
        "livekit_token": avatar_token(server, room_name, agent, secret),
        "room_name": room_name,
        "mode": "cpu",
        "agent_id": AGENT_ID,
    }


def mint_body(room_name: str, livekit_url: str, agent_code: str = AGENT_ID) -> dict[str, Any]:
    return {
        "agent_code": agent_code,
        "scope": "livekit-cloud",
        "room_name": room_name,
        "livekit_url": livekit_url,
    }


def tone(seconds: float, amplitude: float = 0.3) -> list[rtc.AudioFrame]:
    """A 440 Hz tone in 20 ms frames, as an agent's TTS would hand them out."""
    size = SAMPLE_RATE // 50
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    samples = (np.sin(2 * np.pi * 440 * t) * amplitude * 32767).astype(np.int16)
    return [
        rtc.AudioFrame(samples[i : i + size].tobytes(), SAMPLE_RATE, 1, size)
        for i in range(0, len(samples) - size + 1, size)
    ]


def rms(frame: rtc.AudioFrame) -> float:
    samples = np.asarray(frame.data, dtype=np.int16).astype(np.float32) / 32768.0
    return float(np.sqrt(np.mean(samples**2))) if len(samples) else 0.0


class Rooms:
    """Connected rtc rooms, disconnected at the end of the test."""

    def __init__(self, server: LiveKitServer) -> None:
        self.server = server
        self.rooms: list[rtc.Room] = []

    async def join(self, room_name: str, identity: str, *, kind: str = "standard") -> rtc.Room:
        room = rtc.Room()
        self.rooms.append(room)
        await room.connect(self.server.url, room_token(self.server, room_name, identity, kind=kind))
        return room

    async def aclose(self) -> None:
        for room in self.rooms:
            await room.disconnect()


@pytest.fixture
async def rooms(livekit_server: LiveKitServer) -> AsyncIterator[Rooms]:
    joined = Rooms(livekit_server)
    try:
        yield joined
    finally:
        await joined.aclose()


class Viewer:
    """What a user sees of the avatar: its audio loudness and the mean luma of its frames."""

    def __init__(self, room: rtc.Room) -> None:
        self.lumas: list[float] = []
        self.loudest = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self.changed = asyncio.Event()
        room.on("track_subscribed", self._on_track)

    def _on_track(
        self,
        track: rtc.Track,
        publication: rtc.RemoteTrackPublication,
        participant: rtc.RemoteParticipant,
    ) -> None:
        if participant.identity != AVATAR:
            return
        if track.kind == rtc.TrackKind.KIND_VIDEO:
            self._tasks.append(asyncio.create_task(self._watch(rtc.VideoStream(track))))
        elif track.kind == rtc.TrackKind.KIND_AUDIO:
            stream = rtc.AudioStream(track, sample_rate=SAMPLE_RATE, num_channels=1)
            self._tasks.append(asyncio.create_task(self._listen(stream)))

    async def _watch(self, stream: rtc.VideoStream) -> None:
        try:
            async for event in stream:
                frame = event.frame
                luma = np.frombuffer(frame.data, dtype=np.uint8)[: frame.width * frame.height]
                self.lumas.append(float(luma.mean()))
                self.changed.set()
        finally:
            await stream.aclose()

    async def _listen(self, stream: rtc.AudioStream) -> None:
        try:
            async for event in stream:
                self.loudest = max(self.loudest, rms(event.frame))
                self.changed.set()
        finally:
            await stream.aclose()

    async def until(self, condition: Any) -> None:
        while not condition():
            self.changed.clear()
            await self.changed.wait()

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def start_session(
    stub: BithumanStub, server: LiveKitServer, room_name: str, agent: str
) -> StandInSession:
    """Mint a scoped token and request an avatar with it, as our agent and the plugin do."""
    status, minted = await post(stub.url + MINT, mint_body(room_name, server.url), stub.secret)
    assert status == 200, minted
    scoped = minted["data"]["scoped_token"]
    body = session_body(server, room_name, agent, scoped)
    status, answer = await post(stub.session_request_url, body, scoped)
    assert status == 200, answer
    assert stub.avatar is not None
    session = await stub.avatar.wait_session(room_name)
    await session.wait_joined()
    return session


# -- the REST stub: authentication and scoping ----------------------------------------------


@pytest.mark.parametrize(
    "path",
    [MINT, SESSION_REQUEST, dynamics_path(AGENT_ID)],
)
@pytest.mark.parametrize(("secret", "code"), [(None, "MISSING_AUTH"), ("wrong", "UNAUTHORIZED")])
async def test_every_route_refuses_a_missing_or_wrong_secret(
    bithuman_api: BithumanStub, path: str, secret: str | None, code: str
) -> None:
    method = "GET" if path.startswith("/v1/dynamics/") else "POST"
    body = mint_body("r1", "ws://lk") if path == MINT else None
    status, answer = await post(bithuman_api.url + path, body, secret, method=method)
    assert status == 401
    assert answer["code"] == code and isinstance(answer["error"], str)
    assert bithuman_api.minted == []
    # scripted answers apply only to authenticated calls
    bithuman_api.answers[path] = (200, {"success": True})
    status, _ = await post(bithuman_api.url + path, body, secret, method=method)
    assert status == 401


async def test_mint_answers_a_token_per_room_url_and_agent(bithuman_api: BithumanStub) -> None:
    url = bithuman_api.url + MINT
    tokens = []
    for body in (
        mint_body("r1", "ws://lk"),
        mint_body("r2", "ws://lk"),
        mint_body("r1", "ws://other"),
        mint_body("r1", "ws://lk", agent_code="B99"),
    ):
        status, answer = await post(url, body, ACCOUNT_SECRET)
        assert status == 200
        tokens.append(answer["data"]["scoped_token"])
    assert len(set(tokens)) == 4 and ACCOUNT_SECRET not in tokens
    assert [m.token for m in bithuman_api.minted] == tokens
    assert (bithuman_api.minted[3].agent_code, bithuman_api.minted[2].livekit_url) == (
        "B99",
        "ws://other",
    )
    assert bithuman_api.minted_for("r2").token == tokens[1]
    # a scoped token cannot mint more
    status, answer = await post(url, mint_body("r3", "ws://lk"), tokens[0])
    assert (status, answer["code"]) == (401, "UNAUTHORIZED")
    status, answer = await post(url, {"scope": "other", "room_name": "r", "livekit_url": "u"}, "")
    assert status == 401
    status, answer = await post(url, {"scope": "other", "room_name": "r"}, ACCOUNT_SECRET)
    assert (status, answer["code"]) == (400, "VALIDATION_ERROR")


@pytest.mark.parametrize(
    "change",
    [{"room_name": "other-room"}, {"livekit_url": "ws://elsewhere"}, {"agent_id": "B99"}],
)
async def test_a_scoped_token_only_opens_its_own_room(
    bithuman_api: BithumanStub, change: dict[str, str]
) -> None:
    status, minted = await post(
        bithuman_api.url + MINT, mint_body("room-1", "ws://lk"), ACCOUNT_SECRET
    )
    assert status == 200
    scoped = minted["data"]["scoped_token"]
    body = {
        "livekit_url": "ws://lk",
        "livekit_token": "x.y.z",
        "room_name": "room-1",
        "mode": "cpu",
        "agent_id": AGENT_ID,
    }
    status, answer = await post(bithuman_api.session_request_url, body | change, scoped)
    assert (status, answer["code"]) == (403, "FORBIDDEN")
    status, _ = await post(bithuman_api.session_request_url, body, scoped)
    assert status == 200
    # the account secret opens any room
    status, _ = await post(bithuman_api.session_request_url, body | change, ACCOUNT_SECRET)
    assert status == 200
    status, answer = await post(bithuman_api.session_request_url, body | change, "bh-scoped-x")
    assert (status, answer["code"]) == (401, "UNAUTHORIZED")


async def test_a_malformed_session_request_is_refused(bithuman_api: BithumanStub) -> None:
    body = {"livekit_url": "ws://lk", "room_name": "r", "mode": "cpu", "agent_id": AGENT_ID}
    status, answer = await post(bithuman_api.session_request_url, body, ACCOUNT_SECRET)
    assert (status, answer["code"]) == (400, "VALIDATION_ERROR")
    body |= {"livekit_token": "t", "model": "essence-3"}
    status, answer = await post(bithuman_api.session_request_url, body, ACCOUNT_SECRET)
    assert (status, answer["code"]) == (400, "VALIDATION_ERROR")


# -- the cloud avatar stand-in on the real server --------------------------------------------


async def test_full_loop_voice_video_gestures_and_clear_buffer(
    livekit_server: LiveKitServer, bithuman_cloud: BithumanStub, rooms: Rooms
) -> None:
    room_name = unique_room()
    agent = await rooms.join(room_name, "agent-loop", kind="agent")
    user = await rooms.join(room_name, "user-loop")
    viewer = Viewer(user)
    try:
        async with asyncio.timeout(15):
            session = await start_session(bithuman_cloud, livekit_server, room_name, "agent-loop")
            assert session.identity == AVATAR and session.kind == "agent"
            assert session.agent_identity == "agent-loop" and session.agent_id == AGENT_ID
            assert session.scoped_token == bithuman_cloud.minted_for(room_name).token
            assert session.attributes["api_secret"] == session.scoped_token
            for room in (agent, user):
                seen = await utils.wait_for_participant(room, identity=AVATAR)
                assert seen.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
                assert seen.attributes["lk.publish_on_behalf"] == "agent-loop"

            # the agent's voice, over the data stream, comes back as the avatar's audio and video
            output = DataStreamAudioOutput(agent, destination_identity=AVATAR)
            for frame in tone(1.5):
                await output.capture_frame(frame)
            output.flush()
            await session.wait_audio(seconds=1.4)
            await viewer.until(lambda: viewer.loudest > 0.05 and len(viewer.lumas) >= 40)
            finished = await output.wait_for_playout()
            assert not finished.interrupted and session.audio_segments == 1
            # every 40 ms of voice played with one speaking frame: 1.5 s = 37 frames and a half
            assert session.audio_seconds_played == pytest.approx(1.5)
            assert session.speaking_frames == 38
            await viewer.until(lambda: len(viewer.lumas) >= 60)  # and idle frames after it

            # gestures: performed only when the catalog has them
            for action, triggered in (("laugh_react", True), ("moonwalk", False)):
                reply = await agent.local_participant.perform_rpc(
                    destination_identity=AVATAR,
                    method="trigger_dynamics",
                    payload=json.dumps({"action": action, "identity": "agent-loop"}),
                )
                assert json.loads(reply) == {
                    "action": action,
                    "animation_triggered": triggered,
                    "service": "bithuman-avatar",
                    "status": "success" if triggered else "ignored",
                }
            await session.wait_gestures(2)
            assert [(g.caller_identity, g.action, g.triggered) for g in session.gestures] == [
                ("agent-loop", "laugh_react", True),
                ("agent-loop", "moonwalk", False),
            ]
            with pytest.raises(rtc.RpcError) as refused:
                await agent.local_participant.perform_rpc(
                    destination_identity=AVATAR, method="trigger_dynamics", payload="{}"
                )
            assert refused.value.code == rtc.RpcError.ErrorCode.APPLICATION_ERROR

            # an interruption drops what was queued
            for frame in tone(5.0):
                await output.capture_frame(frame)
            output.flush()
            await session.wait_audio(seconds=1.5 + 2.0)
            output.clear_buffer()
            await session.wait_clear_buffer()
            finished = await output.wait_for_playout()
            assert finished.interrupted
            speaking, frames = session.speaking_frames, session.video_frames
            await session.wait_video(frames + 25)  # one more second
            # at most what the AV synchronizer already held, then idle frames only
            assert session.speaking_frames - speaking <= 4, session.summary()
            assert session.audio_seconds_played < 1.5 + 5.0 - 1.0, session.summary()
    finally:
        await viewer.aclose()

    assert viewer.loudest > 0.05, "the avatar's audio was silent"
    bright, dark = max(viewer.lumas), min(viewer.lumas)
    assert bright - dark > 40, f"video did not change: luma {dark:.0f}..{bright:.0f}"


async def test_removing_the_avatar_ends_its_session(
    livekit_server: LiveKitServer, bithuman_cloud: BithumanStub, rooms: Rooms
) -> None:
    room_name = unique_room()
    agent = await rooms.join(room_name, "agent-rm", kind="agent")
    async with asyncio.timeout(15):
        session = await start_session(bithuman_cloud, livekit_server, room_name, "agent-rm")
        await utils.wait_for_participant(agent, identity=AVATAR)
        left = asyncio.Event()
        agent.on("participant_disconnected", lambda p: p.identity == AVATAR and left.set())
        async with api.LiveKitAPI(
            livekit_server.http_url, livekit_server.api_key, livekit_server.api_secret
        ) as lkapi:
            await lkapi.room.remove_participant(
                api.RoomParticipantIdentity(room=room_name, identity=AVATAR)
            )
        await session.wait_ended()
        await left.wait()
    assert session.state == "ended" and session.error is None
    assert session.end_reason == "disconnected: PARTICIPANT_REMOVED"
    assert session.room is not None and not session.room.isconnected()


async def test_the_avatar_leaves_with_its_agent(
    livekit_server: LiveKitServer, bithuman_cloud: BithumanStub, rooms: Rooms
) -> None:
    room_name = unique_room()
    bystander = await rooms.join(room_name, "other-agent", kind="agent")
    agent = await rooms.join(room_name, "agent-gone", kind="agent")
    async with asyncio.timeout(15):
        session = await start_session(bithuman_cloud, livekit_server, room_name, "agent-gone")
        await utils.wait_for_participant(bystander, identity=AVATAR)
        await agent.disconnect()
        await session.wait_ended()
    assert session.end_reason == "agent left"
    assert bystander.isconnected()


async def test_leave_never_join_and_join_delay(livekit_server: LiveKitServer, rooms: Rooms) -> None:
    room_name = unique_room()
    agent = await rooms.join(room_name, "agent-knobs", kind="agent")
    async with asyncio.timeout(15):
        async with BithumanStub(avatar=AvatarStandIn(never_join=True)) as stub:
            status, _ = await post(
                stub.session_request_url,
                session_body(livekit_server, room_name, "agent-knobs", stub.secret),
                stub.secret,
            )
            assert status == 200
            assert stub.avatar is not None
            ghost = await stub.avatar.wait_session(room_name)
            assert ghost.scoped_token is None
            with pytest.raises(TimeoutError, match="no join"):
                await ghost.wait_joined(within=0.5)
            assert AVATAR not in agent.remote_participants
        assert ghost.state == "ended" and ghost.end_reason == "closed"

        async with BithumanStub(avatar=AvatarStandIn(join_delay=0.3)) as stub:
            assert stub.avatar is not None
            joined = asyncio.Event()
            agent.on("participant_connected", lambda p: p.identity == AVATAR and joined.set())
            status, _ = await post(
                stub.session_request_url,
                session_body(livekit_server, room_name, "agent-knobs", stub.secret),
                stub.secret,
            )
            assert status == 200
            session = stub.avatar.session(room_name)
            assert session.state == "accepted"
            await session.wait_joined()
            await joined.wait()
            await stub.avatar.leave(room_name)
            assert session.end_reason == "left"
            with pytest.raises(AssertionError, match="ended"):
                await session.wait_gestures(1)
        assert session.state == "ended"


async def test_a_session_whose_token_is_refused_fails_visibly(
    livekit_server: LiveKitServer,
) -> None:
    room_name = unique_room()
    async with asyncio.timeout(15), BithumanStub(avatar=AvatarStandIn()) as stub:
        body = session_body(livekit_server, room_name, "agent-x", stub.secret)
        body["livekit_token"] = (
            api.AccessToken(livekit_server.api_key, "not-the-servers-secret-0123456789")
            .with_identity(AVATAR)
            .with_grants(api.VideoGrants(room_join=True, room=room_name))
            .to_jwt()
        )
        status, _ = await post(stub.session_request_url, body, stub.secret)
        assert status == 200
        assert stub.avatar is not None
        session = await stub.avatar.wait_session(room_name)
        with pytest.raises(AssertionError, match="failed"):
            await session.wait_joined()
        assert session.state == "failed" and session.error is not None
