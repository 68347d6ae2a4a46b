"""The avatar (bitHuman cloud, bitHuman local .imx, or the drawn placeholder of
`agent.placeholder`), chosen by AVATAR_MODE, started with a fallback to audio-only.

Cloud avatars never see the account secret: a room-scoped runtime token is minted per session
and handed to the plugin in its place (the plugin copies what it is given into the avatar
participant's attributes, which everyone in the room can read). Whatever goes wrong while the
avatar starts (a refused mint, an API error, an avatar that never joins), the conversation goes
on audio-only and the log says why.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from livekit import rtc
from livekit.agents import NOT_GIVEN, AgentSession, APIConnectOptions, room_io
from livekit.agents.voice.avatar import AvatarSession

# RoomIO's own voice track, the one an audio-only session publishes; livekit offers no public
# way to create it after the session started, which is when an avatar can leave
from livekit.agents.voice.room_io._output import _ParticipantAudioOutput

from agent.dynamics import AvatarRpc, Dynamics, DynamicsSettings, LocalRuntime
from agent.dynamics.sender import GestureTarget
from agent.process_state import ProcessState
from agent.settings import (
    AgentSettings,
    Avatar,
    AvatarMode,
    CloudAvatar,
    LocalAvatar,
    NoAvatar,
    PlaceholderFace,
)
from bithuman_client import BithumanClient
from common.logs import describe, get_logger

if TYPE_CHECKING:
    from bithuman import AsyncBithuman
    from livekit.plugins import bithuman

log = get_logger("agent.avatar")

# The plugin retries its session request itself; keep that short, our timeout bounds it all.
_PLUGIN_CONN = APIConnectOptions(max_retry=2, retry_interval=1.0, timeout=10.0)


def prewarm_avatar(avatar: Avatar) -> AsyncBithuman | None:
    """Import the plugin on the process's main thread, and load a local runtime once (returned)
    or draw the placeholder's face once."""
    match avatar:
        case NoAvatar():
            return None
        case PlaceholderFace():
            from agent.placeholder import prewarm_placeholder

            prewarm_placeholder()
            return None
    from livekit.plugins import bithuman  # noqa: F401  (plugins register on the main thread)

    _route_loguru_to_logging()
    if not isinstance(avatar, LocalAvatar):
        return None
    from bithuman import AsyncBithuman

    runtime = asyncio.run(
        AsyncBithuman.create(
            model_path=str(avatar.model_path), api_secret=avatar.api_secret.get_secret_value()
        )
    )
    log.info("bithuman runtime loaded", model_path=str(avatar.model_path))
    return runtime


def _route_loguru_to_logging() -> None:
    """The bitHuman plugin and SDK log with loguru straight to stdout, outside our JSON lines
    and secret masking: hand their records to the standard logging pipeline instead."""
    from loguru import logger as loguru_logger

    target = logging.getLogger("bithuman")

    def sink(message: Any) -> None:
        record = message.record
        target.log(record["level"].no, record["message"])

    loguru_logger.remove()
    loguru_logger.add(sink, level="INFO", format="{message}")


async def _cloud_avatar(
    avatar: CloudAvatar, settings: AgentSettings, room_name: str
) -> bithuman.AvatarSession:
    from livekit.plugins import bithuman

    if settings.livekit_url is None:  # the avatar service joins this server's room
        raise ValueError("a cloud avatar needs LIVEKIT_URL")
    async with BithumanClient(
        avatar.api_secret.get_secret_value(), base_url=settings.bithuman_rest_url
    ) as client:
        token = await client.mint_runtime_token(
            room_name=room_name, livekit_url=settings.livekit_url, agent_code=avatar.avatar_id
        )
    return bithuman.AvatarSession(
        api_secret=token.scoped_token,
        api_url=settings.bithuman_api_url or NOT_GIVEN,
        avatar_id=avatar.avatar_id or NOT_GIVEN,
        avatar_image=avatar.avatar_image or NOT_GIVEN,
        model=avatar.model or NOT_GIVEN,
        avatar_participant_identity=settings.avatar_identity,
        conn_options=_PLUGIN_CONN,
    )


def _local_avatar(avatar: LocalAvatar, state: ProcessState) -> bithuman.AvatarSession:
    from livekit.plugins import bithuman

    return bithuman.AvatarSession(
        model_path=str(avatar.model_path),
        api_secret=avatar.api_secret.get_secret_value(),
        runtime=state.bithuman_runtime or NOT_GIVEN,
    )


async def start_avatar(
    session: AgentSession[Any], room: rtc.Room, state: ProcessState
) -> AvatarSession[Any] | None:
    """Start the configured avatar and wait until it has joined; None means audio-only.

    Runs inside a job context (the plugin reads the agent's identity from it) after the room
    is connected, before the session starts.
    """
    settings = state.settings
    chosen = settings.avatar
    match chosen:
        case NoAvatar():
            return None
        case PlaceholderFace(fps=fps):
            return await _placeholder_avatar(session, room, fps)

    mode = chosen.mode
    avatar: AvatarSession[Any] | None = None
    stage = "start"
    try:
        async with asyncio.timeout(settings.avatar_start_timeout):
            if isinstance(chosen, LocalAvatar):
                avatar = _local_avatar(chosen, state)
            else:
                avatar = await _cloud_avatar(chosen, settings, room.name)
            await avatar.start(
                session,
                room,
                livekit_url=settings.livekit_url or NOT_GIVEN,
                livekit_api_key=settings.livekit_api_key or NOT_GIVEN,
                livekit_api_secret=(
                    settings.livekit_api_secret.get_secret_value()
                    if settings.livekit_api_secret
                    else NOT_GIVEN
                ),
            )
        stage = "join"
        await avatar.wait_for_join(timeout=settings.avatar_join_timeout)
    except Exception as exc:
        log.warning(
            "avatar unavailable, continuing audio-only",
            mode=mode.value,
            stage=stage,
            reason="timed out" if isinstance(exc, TimeoutError) else describe(exc),
        )
        # the plugin may already have routed the agent's audio to the avatar
        session.output.audio = None
        if avatar is not None:
            await avatar.aclose()  # also removes a half-joined avatar participant
        return None

    log.info("avatar ready", mode=mode.value, identity=avatar.avatar_identity)
    return avatar


async def _placeholder_avatar(
    session: AgentSession[Any], room: rtc.Room, fps: int
) -> AvatarSession[Any] | None:
    """The drawn face, rendered in this process: nothing to wait for, nothing billed."""
    from agent.placeholder import PlaceholderAvatar

    avatar = PlaceholderAvatar(fps=fps)
    try:
        await avatar.start(session, room)
    except Exception as exc:
        log.warning(
            "avatar unavailable, continuing audio-only",
            mode=AvatarMode.PLACEHOLDER.value,
            stage="start",
            reason=describe(exc),
        )
        session.output.audio = None
        await avatar.aclose()
        return None
    log.info("avatar ready", mode=AvatarMode.PLACEHOLDER.value, identity=avatar.avatar_identity)
    return avatar


async def start_gestures(
    session: AgentSession[Any],
    room: rtc.Room,
    avatar: AvatarSession[Any] | None,
    settings: AgentSettings,
    dynamics: DynamicsSettings,
) -> Dynamics | None:
    """Keyword gestures for a running session: RPCs to a cloud avatar, or the local runtime."""
    if avatar is None or not dynamics.dynamics_enabled:
        return None
    if isinstance(settings.avatar, PlaceholderFace):
        from agent.placeholder import PlaceholderAvatar, start_placeholder_gestures

        if not isinstance(avatar, PlaceholderAvatar):
            raise TypeError(f"the placeholder mode started a {type(avatar).__name__}")
        return await start_placeholder_gestures(session, avatar, dynamics)
    if isinstance(settings.avatar, LocalAvatar):
        from livekit.plugins import bithuman

        if not isinstance(avatar, bithuman.AvatarSession):
            raise TypeError(f"the local mode started a {type(avatar).__name__}")
        target: GestureTarget = LocalRuntime(avatar.runtime)
    else:
        target = AvatarRpc(
            room, identity=avatar.avatar_identity, response_timeout=dynamics.dynamics_rpc_timeout
        )
    return await Dynamics.start(
        session=session, target=target, settings=dynamics, agent_id=settings.gesture_agent_id
    )


class VoiceFallback:
    """When the avatar leaves mid-session (its service crashed, or someone removed it), the
    agent publishes its own voice track from then on: the user loses the face, not the voice.
    The avatar is not restarted: that is a new paid session and takes 20-30 s."""

    def __init__(self, session: AgentSession[Any], room: rtc.Room, identity: str) -> None:
        self._session = session
        self._room = room
        self._identity = identity
        self._task: asyncio.Task[None] | None = None
        self._output: _ParticipantAudioOutput | None = None
        room.on("participant_disconnected", self._on_disconnected)

    def _on_disconnected(self, participant: rtc.RemoteParticipant) -> None:
        if participant.identity != self._identity or self._task is not None:
            return
        if not self._room.isconnected():  # the job is ending anyway
            return
        self._task = asyncio.create_task(self._fall_back())

    async def _fall_back(self) -> None:
        log.warning("avatar left the room, continuing audio-only", identity=self._identity)
        # what was streaming to the avatar is lost: end that speech instead of waiting on it
        try:
            await self._session.interrupt()
        except Exception as exc:
            log.debug("interrupt after the avatar left raised", error=describe(exc))
        options = room_io.AudioOutputOptions()
        self._output = _ParticipantAudioOutput(
            self._room,
            sample_rate=options.sample_rate,
            num_channels=options.num_channels,
            track_publish_options=options.track_publish_options,
        )
        await self._output.start()
        self._session.output.replace_audio_tail(self._output)

    async def aclose(self) -> None:
        self._room.off("participant_disconnected", self._on_disconnected)
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        if self._output is not None:
            await self._output.aclose()
