"""The placeholder avatar in a job: livekit's `AvatarRunner` in the job process, fed the
agent's speech through an in-process `QueueAudioOutput`, and a built-in gesture catalog.

Like a local bitHuman `.imx` avatar, the placeholder publishes from the agent's own participant:
the tracks `avatar_audio` (the voice, played in step with the face) and `avatar_video`. There is
no second participant, no network and no credit involved; the session's own room audio output
must be off (the entrypoint does that whenever an avatar is running), so the user hears one
voice. livekit's runner publishes the tracks once the first listener subscribes.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, cast

from livekit import rtc
from livekit.agents import AgentSession, get_job_context
from livekit.agents.voice.avatar import (
    AvatarOptions,
    AvatarRunner,
    AvatarSession,
    QueueAudioOutput,
)

from agent.dynamics import Dynamics
from agent.dynamics.catalog import CatalogCache
from agent.dynamics.stats import Outcome
from agent.placeholder.art import face_art
from agent.placeholder.generator import (
    FPS,
    HEIGHT,
    SAMPLE_RATE,
    WIDTH,
    PlaceholderVideoGenerator,
    idle_refresh_every,
)
from bithuman_client import DynamicsCatalog
from common.logs import get_logger

if TYPE_CHECKING:
    from agent.dynamics.settings import DynamicsSettings
    from bithuman_client import BithumanClient

log = get_logger("agent.placeholder")

CATALOG_ID = "placeholder"
# bitHuman-style names, so a keyword map written for a real avatar's usual gestures applies
# here too; each name's words sort it into a kind of the derived default keyword map
GESTURES = (
    "blow_kiss_heart",
    "bow_thanks",
    "clap_cheer",
    "dance",
    "head_shake",
    "laugh_react",
    "mini_wave_hello",
    "shrug",
    "surprise_wow",
    "talk_head_nod_subtle",
    "think_hmm",
    "thumbs_up",
)


def builtin_catalog() -> DynamicsCatalog:
    return DynamicsCatalog(
        agent_id=CATALOG_ID,
        url="builtin:placeholder",
        status="ready",
        gestures=dict.fromkeys(GESTURES),
    )


def prewarm_placeholder() -> None:
    """Draw the face and the gesture banners once per process, before any job."""
    face_art(WIDTH, HEIGHT).prepare_banners(GESTURES)


VIDEO_BITRATE = 1_000_000  # bits/s: plenty for a flat drawing at 512x512, 25 fps


class _Runner(AvatarRunner):
    """livekit's runner, publishing the video as one layer at full size and 25 fps.

    Its default publish options simulcast: a viewer then starts on a smaller layer and jumps
    to 512x512 later (with a key frame wait in between), and the job encodes every layer. One
    layer of a simple drawing costs less and reaches everyone whole. Otherwise as livekit's
    `_publish_track`: the voice first, the video once someone listens.
    """

    async def _publish_track(self) -> None:
        async with self._lock:
            await self._room_connected_fut
            participant = self._room.local_participant
            voice = rtc.LocalAudioTrack.create_audio_track("avatar_audio", self._audio_source)
            self._audio_publication = await participant.publish_track(
                voice, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
            )
            await self._audio_publication.wait_for_subscription()
            face = rtc.LocalVideoTrack.create_video_track("avatar_video", self._video_source)
            options = rtc.TrackPublishOptions(
                source=rtc.TrackSource.SOURCE_CAMERA,
                simulcast=False,
                video_encoding=rtc.VideoEncoding(
                    max_bitrate=VIDEO_BITRATE, max_framerate=self._options.video_fps
                ),
            )
            self._video_publication = await participant.publish_track(face, options)

    async def resync(self) -> None:
        await resync(self.av_sync)


async def resync(sync: rtc.AVSynchronizer) -> None:
    """Before frames flow again after the generator sent none for a while: once the
    synchronizer has shown what it holds, its frame clock restarts from now (instead of
    capturing in a burst to catch up, and warning that it fell behind schedule). Its clock is
    reset only while it waits for a frame, never in the middle of capturing one."""
    try:
        async with asyncio.timeout(1.0):
            await sync.wait_for_playout()
    except TimeoutError:
        return  # still busy: let it catch up on its own
    sync.reset()


class PlaceholderAvatar(AvatarSession[Any]):
    """A drawn face rendered in the job process; `generator` draws it."""

    def __init__(
        self, generator: PlaceholderVideoGenerator | None = None, *, fps: int = FPS
    ) -> None:
        super().__init__()
        self.generator = generator or PlaceholderVideoGenerator(
            fps=fps, idle_refresh_frames=idle_refresh_every(fps)
        )
        self.audio: QueueAudioOutput | None = None
        self._runner: _Runner | None = None
        self._identity = ""

    @property
    def avatar_identity(self) -> str:
        """The agent's own identity: the placeholder publishes from the agent's participant."""
        return self._identity

    @property
    def provider(self) -> str:
        return "placeholder"

    async def start(self, agent_session: AgentSession[Any], room: rtc.Room) -> None:
        # Not the base class's start: it waits for an avatar participant to join and, at
        # close, removes that participant from the room, which here is the agent itself.
        self._identity = room.local_participant.identity
        # wait_playback_start: the session learns that speech started when it really plays,
        # which keeps the transcript in step with the face
        self.audio = QueueAudioOutput(sample_rate=SAMPLE_RATE, wait_playback_start=True)
        options = AvatarOptions(
            video_width=self.generator.art.width,
            video_height=self.generator.art.height,
            video_fps=self.generator.fps,
            audio_sample_rate=self.generator.sample_rate,
            audio_channels=1,
        )
        self._runner = _Runner(
            room, audio_recv=self.audio, video_gen=self.generator, options=options
        )
        self.generator.before_resume = self._runner.resync
        await self._runner.start()
        agent_session.output.replace_audio_tail(self.audio)
        job = get_job_context(required=False)
        if job is not None:
            job.add_shutdown_callback(self.aclose)
        log.info(
            "placeholder avatar started",
            width=options.video_width,
            height=options.video_height,
            fps=options.video_fps,
        )

    async def wait_for_join(self, *, timeout: float | None = 30.0) -> None:  # noqa: ASYNC109
        """Nothing joins: the tracks are the agent's own (published at the first listener)."""
        return None

    async def aclose(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.aclose()
            log.info(
                "placeholder avatar closed",
                video_frames=self.generator.video_frames,
                speaking_frames=self.generator.speaking_frames,
                frames_drawn=self.generator.frames_drawn,
            )


class PlaceholderGestures:
    """`GestureTarget` for the placeholder: a gesture of the catalog shows on the face."""

    def __init__(self, generator: PlaceholderVideoGenerator) -> None:
        self._generator = generator

    def is_ready(self) -> bool:
        return True

    async def perform(self, gesture: str) -> Outcome:
        if gesture not in GESTURES:
            return Outcome.NOT_PERFORMED
        self._generator.show_gesture(gesture)
        return Outcome.PERFORMED


class _BuiltinCatalogClient:
    """Answers `Dynamics.start`'s catalog request with the built-in catalog, offline."""

    async def get_dynamics(self, agent_id: str) -> DynamicsCatalog:
        return builtin_catalog()

    async def aclose(self) -> None:
        return None


async def start_placeholder_gestures(
    session: AgentSession[Any], avatar: PlaceholderAvatar, settings: DynamicsSettings
) -> Dynamics:
    """Keyword gestures (and the optional tool) for the placeholder, through the same
    `Dynamics` as the bitHuman avatars, with the built-in catalog in place of bitHuman's."""
    return await Dynamics.start(
        session=session,
        target=PlaceholderGestures(avatar.generator),
        settings=settings,
        agent_id=CATALOG_ID,
        # the controller only calls get_dynamics on its client
        client=cast("BithumanClient", _BuiltinCatalogClient()),
        cache=CatalogCache(),
    )
