"""A protocol-level stand-in for bitHuman's cloud avatar service: a real LiveKit room participant.

Attach it to the REST stub (devkit/bithuman_api.py): every session request the stub accepts
(`POST /v1/runtime-tokens/request`, right secret or right scoped token) starts, in the running
event loop, one `StandInSession` that

- joins the room with the `livekit_url` / `livekit_token` it was sent, so under the identity,
  kind and attributes the caller (the livekit bitHuman plugin) put in that token;
- receives the agent's audio with livekit's `DataStreamAudioReceiver` (byte-stream topic
  `lk.audio_stream`, RPC `lk.clear_buffer`, answering `lk.playback_started/finished`) from the
  agent named in the token's `lk.publish_on_behalf` attribute (else the first agent participant);
- publishes `avatar_audio` (the voice, passed through in sync) and `avatar_video` (256x256 at
  25 fps: a dark idle frame when silent, a bright "speaking" frame whose brightness follows the
  loudness of each 40 ms of voice) through livekit's `AvatarRunner`, which publishes the video
  only once someone subscribes to the audio;
- answers RPC `trigger_dynamics` as bitHuman documents: `{action, animation_triggered, service,
  status}`, `animation_triggered` true only for a gesture in the stub's catalog (`stub.gestures`);
  a payload without a string `action` is an RpcError 1500. bitHuman publishes no exact `service`
  and `status` values: ours are "bithuman-avatar" and "success" / "ignored";
- ends by itself when its room disconnects (the agent removed it, the room closed), or when the
  agent it serves leaves the room (`end_reason` "agent left").

Usage, in a test with the real server (fixture `livekit_server`):

    # or the tests' `bithuman_cloud` fixture (tests/conftest.py)
    async with BithumanStub(avatar=AvatarStandIn()) as stub:
        env = {"BITHUMAN_API_URL": stub.session_request_url,  # the plugin's session request
               "BITHUMAN_REST_URL": stub.url,                  # our REST client (mint, dynamics)
               "BITHUMAN_API_SECRET": stub.secret, **livekit_server.env()}
        ... start the agent (a subprocess with env, or in-process) for room "r1" ...
        session = await stub.avatar.wait_session("r1")        # the request was accepted
        await session.wait_joined()                           # in the room, RPC registered
        await session.wait_audio(seconds=1.0)                 # agent voice received
        await session.wait_gestures(1)
        assert session.gestures[0].action == "laugh_react" and session.gestures[0].triggered
        assert session.scoped_token is not None               # the agent never sent its secret

Recorded per session: `request` (the JSON body), `room_name`, `livekit_url`, `agent_id`, `model`,
`mode`, `scoped_token` (the scoped token that authorised the request, None for the account
secret), `claims` (the LiveKit token's decoded, unverified payload), `identity`, `kind`,
`attributes` (its participant attributes, e.g. `api_secret`, `agent_id`,
`lk.publish_on_behalf`), `agent_identity`; `state` ("accepted", "joined", "ended", "failed"),
`error`, `end_reason` ("left", "closed", "agent left", "disconnected: PARTICIPANT_REMOVED",
...); `audio_frames` / `audio_seconds` received, `audio_segments` (segment ends received),
`audio_seconds_played`, `clear_buffers`, `gestures` (`GestureCall`: `caller_identity`,
`payload`, `action`, `triggered`), `video_frames` (handed to the AV synchronizer),
`speaking_frames`.

Waits (each bounded by `within` seconds, default 10 s; they raise at once when the session
failed or ended before the condition): `AvatarStandIn.wait_session(room_name=None)`, and on a
session `wait_joined()`, `wait_audio(seconds=0)`, `wait_gestures(n)`, `wait_clear_buffer(n)`,
`wait_video(frames)`, `wait_ended()`. `AvatarStandIn.session(room_name)` is the latest session
of a room without waiting.

Knobs: `AvatarStandIn(never_join=True)` accepts requests but never joins; `join_delay=seconds`
joins late; `await avatar.leave(room_name)` makes the avatar leave mid-session. The stub closes
every session on exit (`AvatarStandIn.aclose`).

Caveat (livekit-agents): `DataStreamAudioReceiver` keeps its `lk.clear_buffer` handlers in a
class-level map keyed by the caller's identity, so two live sessions in one process whose agents
share an identity would share clear_buffer routing; give agents distinct identities.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Literal

import jwt
import numpy as np
from livekit import rtc
from livekit.agents.voice.avatar import (
    AudioSegmentEnd,
    AvatarOptions,
    AvatarRunner,
    DataStreamAudioReceiver,
    VideoGenerator,
)

log = logging.getLogger("devkit.bithuman_avatar")

GESTURE_METHOD = "trigger_dynamics"
PUBLISH_ON_BEHALF = "lk.publish_on_behalf"
SERVICE = "bithuman-avatar"
WIDTH = HEIGHT = 256
FPS = 25
SAMPLE_RATE = 24_000
LEVELS = 8  # speaking frames, one per loudness step
IDLE_LUMA = 30
SPEAKING_LUMA = (110, 250)  # background of the quietest and the loudest speaking frame
FULL_SCALE_RMS = 0.25  # an RMS this loud (of full scale) shows the brightest frame

State = Literal["accepted", "joined", "ended", "failed"]


@dataclass(frozen=True)
class GestureCall:
    caller_identity: str
    payload: Any  # the decoded JSON payload (the raw text when it was not JSON)
    action: str | None
    triggered: bool


def _frame(background: int, mouth: int | None) -> rtc.VideoFrame:
    """A face on a flat background; `mouth` draws an open mouth of that brightness."""
    pixels = np.full((HEIGHT, WIDTH, 4), background, dtype=np.uint8)
    pixels[..., 3] = 255
    ys, xs = np.ogrid[:HEIGHT, :WIDTH]
    face = (ys - HEIGHT // 2) ** 2 + (xs - WIDTH // 2) ** 2 <= (WIDTH // 3) ** 2
    pixels[face, :3] = (background + 60) // 2 + 30
    if mouth is not None:
        pixels[HEIGHT * 5 // 8 : HEIGHT * 3 // 4, WIDTH * 3 // 8 : WIDTH * 5 // 8, :3] = mouth
    return rtc.VideoFrame(WIDTH, HEIGHT, rtc.VideoBufferType.RGBA, pixels.tobytes())


class PulseVideoGenerator(VideoGenerator):
    """Cheap frames for the voice it is given: pre-rendered idle and speaking frames, one video
    frame per 40 ms of audio (passed through right after its frame), idle frames when silent."""

    def __init__(self, session: StandInSession) -> None:
        self._session = session
        self._samples_per_frame = SAMPLE_RATE // FPS
        self._idle = _frame(IDLE_LUMA, None)
        low, high = SPEAKING_LUMA
        self._speaking = [
            _frame(low + (high - low) * level // (LEVELS - 1), 255) for level in range(LEVELS)
        ]
        self._queue: deque[rtc.AudioFrame | AudioSegmentEnd] = deque()
        self._pending = np.zeros(0, dtype=np.int16)
        self._resampler: rtc.AudioResampler | None = None
        self._resampler_rate = SAMPLE_RATE

    async def push_audio(self, frame: rtc.AudioFrame | AudioSegmentEnd) -> None:
        session = self._session
        if isinstance(frame, AudioSegmentEnd):
            if self._resampler is not None:
                for out in self._resampler.flush():
                    self._append(out)
                self._resampler = None
            self._cut(final=True)
            self._queue.append(frame)
            session.audio_segments += 1
        else:
            session.audio_frames += 1
            session.audio_seconds += frame.duration
            for out in self._to_output_rate(frame):
                self._append(out)
            self._cut(final=False)
        session._notify()

    def _to_output_rate(self, frame: rtc.AudioFrame) -> list[rtc.AudioFrame]:
        if frame.num_channels != 1:
            samples = np.asarray(frame.data, dtype=np.int16).reshape(-1, frame.num_channels)
            mono = samples.mean(axis=1).astype(np.int16)
            frame = rtc.AudioFrame(mono.tobytes(), frame.sample_rate, 1, len(mono))
        if frame.sample_rate == SAMPLE_RATE:
            return [frame]
        if self._resampler is None or self._resampler_rate != frame.sample_rate:
            self._resampler = rtc.AudioResampler(frame.sample_rate, SAMPLE_RATE)
            self._resampler_rate = frame.sample_rate
        return self._resampler.push(frame)

    def _append(self, frame: rtc.AudioFrame) -> None:
        samples = np.asarray(frame.data, dtype=np.int16)
        self._pending = np.concatenate([self._pending, samples])

    def _cut(self, *, final: bool) -> None:
        size = self._samples_per_frame
        while len(self._pending) >= size or (final and len(self._pending)):
            chunk, self._pending = self._pending[:size], self._pending[size:]
            self._queue.append(rtc.AudioFrame(chunk.tobytes(), SAMPLE_RATE, 1, len(chunk)))

    def clear_buffer(self) -> None:
        self._queue.clear()
        self._pending = np.zeros(0, dtype=np.int16)
        self._resampler = None
        self._session.clear_buffers += 1
        self._session._notify()

    def _level(self, frame: rtc.AudioFrame) -> int:
        samples = np.asarray(frame.data, dtype=np.int16).astype(np.float32) / 32768.0
        rms = float(np.sqrt(np.mean(samples**2))) if len(samples) else 0.0
        return min(LEVELS - 1, int(rms / FULL_SCALE_RMS * (LEVELS - 1)))

    def __aiter__(self) -> AsyncIterator[rtc.VideoFrame | rtc.AudioFrame | AudioSegmentEnd]:
        return self._stream()

    async def _stream(self) -> AsyncIterator[rtc.VideoFrame | rtc.AudioFrame | AudioSegmentEnd]:
        # paced by the consumer: AvatarRunner's AV synchronizer holds ~100 ms of each kind
        session = self._session
        while True:
            if not self._queue:
                session.video_frames += 1
                session._notify()
                yield self._idle
                continue
            item = self._queue.popleft()
            if isinstance(item, AudioSegmentEnd):
                yield item
                continue
            session.video_frames += 1
            session.speaking_frames += 1
            session._notify()
            yield self._speaking[self._level(item)]
            yield item
            session.audio_seconds_played += item.duration


@dataclass
class StandInSession:
    """One avatar session: the request, the participant, and what happened to it."""

    request: dict[str, Any]
    scoped_token: str | None
    catalog: Callable[[], Collection[str]]
    claims: dict[str, Any] = field(default_factory=dict)
    state: State = "accepted"
    error: BaseException | None = None
    end_reason: str | None = None
    audio_frames: int = 0
    audio_seconds: float = 0.0
    audio_segments: int = 0
    audio_seconds_played: float = 0.0
    clear_buffers: int = 0
    gestures: list[GestureCall] = field(default_factory=list)
    video_frames: int = 0
    speaking_frames: int = 0
    room: rtc.Room | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        try:
            self.claims = jwt.decode(
                self.request["livekit_token"], options={"verify_signature": False}
            )
        except jwt.PyJWTError:
            self.claims = {}

    # -- what the request and token said ---------------------------------------------------

    @property
    def room_name(self) -> str:
        return str(self.request["room_name"])

    @property
    def livekit_url(self) -> str:
        return str(self.request["livekit_url"])

    @property
    def agent_id(self) -> str | None:
        return self.request.get("agent_id")

    @property
    def model(self) -> str | None:
        return self.request.get("model")

    @property
    def mode(self) -> str:
        return str(self.request["mode"])

    @property
    def identity(self) -> str | None:
        return self.claims.get("sub")

    @property
    def kind(self) -> str | None:
        return self.claims.get("kind")

    @property
    def attributes(self) -> dict[str, str]:
        return dict(self.claims.get("attributes") or {})

    @property
    def agent_identity(self) -> str | None:
        return self.attributes.get(PUBLISH_ON_BEHALF)

    # -- waits -----------------------------------------------------------------------------

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait(self, done: Callable[[], bool], what: str, within: float) -> None:
        try:
            async with asyncio.timeout(within):
                while not done():
                    if self.state == "failed":
                        raise AssertionError(f"avatar in {self.room_name} failed: {self.error!r}")
                    if self.state == "ended" and what != "ended":
                        raise AssertionError(
                            f"avatar in {self.room_name} ended ({self.end_reason}) before {what}"
                        )
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(
                f"avatar in {self.room_name}: no {what} within {within} s ({self.summary()})"
            ) from None

    async def wait_joined(self, within: float = 10.0) -> None:
        """In the room under its token's identity, `trigger_dynamics` registered."""
        await self._wait(lambda: self.state in ("joined", "ended"), "join", within)
        if self.state != "joined":
            raise AssertionError(f"avatar in {self.room_name} ended ({self.end_reason})")

    async def wait_audio(self, seconds: float = 0.0, within: float = 10.0) -> None:
        """At least one frame, and at least `seconds` of the agent's voice received."""
        await self._wait(
            lambda: self.audio_frames > 0 and self.audio_seconds >= seconds,
            f"{seconds} s of agent audio",
            within,
        )

    async def wait_gestures(self, count: int = 1, within: float = 10.0) -> None:
        await self._wait(lambda: len(self.gestures) >= count, f"{count} gesture call(s)", within)

    async def wait_clear_buffer(self, count: int = 1, within: float = 10.0) -> None:
        await self._wait(lambda: self.clear_buffers >= count, f"{count} clear_buffer", within)

    async def wait_video(self, frames: int = 1, within: float = 10.0) -> None:
        await self._wait(lambda: self.video_frames >= frames, f"{frames} video frames", within)

    async def wait_ended(self, within: float = 10.0) -> None:
        await self._wait(lambda: self.state in ("ended", "failed"), "ended", within)

    def summary(self) -> str:
        return (
            f"state={self.state} end_reason={self.end_reason} error={self.error!r}"
            f" audio={self.audio_seconds:.2f}s/{self.audio_segments} segments"
            f" played={self.audio_seconds_played:.2f}s clear_buffers={self.clear_buffers}"
            f" gestures={len(self.gestures)} video_frames={self.video_frames}"
        )

    # -- the participant -------------------------------------------------------------------

    def _on_gesture(self, data: rtc.RpcInvocationData) -> str:
        try:
            payload: Any = json.loads(data.payload)
        except ValueError:
            payload = data.payload
        action = payload.get("action") if isinstance(payload, dict) else None
        if not isinstance(action, str):
            self.gestures.append(GestureCall(data.caller_identity, payload, None, False))
            self._notify()
            raise rtc.RpcError(rtc.RpcError.ErrorCode.APPLICATION_ERROR, "action is required")
        triggered = action in self.catalog()
        self.gestures.append(GestureCall(data.caller_identity, payload, action, triggered))
        self._notify()
        return json.dumps(
            {
                "action": action,
                "animation_triggered": triggered,
                "service": SERVICE,
                "status": "success" if triggered else "ignored",
            }
        )

    def _on_disconnected(self, reason: rtc.DisconnectReason.ValueType) -> None:
        if self.end_reason is None:
            self.end_reason = f"disconnected: {rtc.DisconnectReason.Name(reason)}"
        self._stop.set()

    def _on_participant_left(self, participant: rtc.RemoteParticipant) -> None:
        if self.agent_identity is not None and participant.identity == self.agent_identity:
            self.stop("agent left")

    def stop(self, reason: str) -> None:
        if self.end_reason is None:
            self.end_reason = reason
        self._stop.set()

    async def run(self, *, join_delay: float, never_join: bool) -> None:
        runner: AvatarRunner | None = None
        receiver: DataStreamAudioReceiver | None = None
        starting: asyncio.Task[None] | None = None
        room = rtc.Room()
        try:
            if join_delay:
                await asyncio.sleep(join_delay)  # the scripted delay itself
            if never_join:
                await self._stop.wait()
                return
            self.room = room
            room.on("disconnected", self._on_disconnected)
            room.on("participant_disconnected", self._on_participant_left)
            await room.connect(self.livekit_url, self.request["livekit_token"])
            room.local_participant.register_rpc_method(GESTURE_METHOD, self._on_gesture)
            receiver = DataStreamAudioReceiver(
                room, sender_identity=self.agent_identity, frame_size_ms=1000 // FPS
            )
            options = AvatarOptions(
                video_width=WIDTH,
                video_height=HEIGHT,
                video_fps=FPS,
                audio_sample_rate=SAMPLE_RATE,
                audio_channels=1,
            )
            runner = AvatarRunner(
                room, audio_recv=receiver, video_gen=PulseVideoGenerator(self), options=options
            )
            self.state = "joined"
            self._notify()
            starting = asyncio.create_task(runner.start())  # waits for the agent participant
            stopped = asyncio.ensure_future(self._stop.wait())
            try:
                done, _ = await asyncio.wait(
                    {starting, stopped}, return_when=asyncio.FIRST_COMPLETED
                )
                if starting in done:
                    starting.result()  # a receiver or runner that failed to start
                    await stopped
            finally:
                stopped.cancel()
        except Exception as exc:
            self.error = exc
            self.state = "failed"
            log.warning("avatar stand-in in %s failed: %r", self.room_name, exc)
        finally:
            await self._shut(room, runner, receiver, starting)
            if self.state != "failed":
                self.state = "ended"
            self._notify()

    async def _shut(
        self,
        room: rtc.Room,
        runner: AvatarRunner | None,
        receiver: DataStreamAudioReceiver | None,
        starting: asyncio.Task[None] | None,
    ) -> None:
        try:
            if starting is not None:
                starting.cancel()
                await asyncio.gather(starting, return_exceptions=True)
                if not starting.cancelled() and starting.exception() is None:
                    assert runner is not None
                    await runner.aclose()  # also closes the receiver
                    receiver = None
            if receiver is not None:
                await receiver.aclose()
        finally:
            room.off("disconnected", self._on_disconnected)
            room.off("participant_disconnected", self._on_participant_left)
            if room.isconnected():
                await room.disconnect()


@dataclass
class AvatarStandIn:
    """The cloud avatar service: one `StandInSession` per accepted session request."""

    join_delay: float = 0.0
    never_join: bool = False
    sessions: list[StandInSession] = field(default_factory=list)
    _changed: asyncio.Event | None = None

    def start_session(
        self,
        request: dict[str, Any],
        *,
        catalog: Callable[[], Collection[str]],
        scoped_token: str | None = None,
    ) -> StandInSession:
        """Called by the stub for an accepted request; starts the session in this event loop."""
        session = StandInSession(request=dict(request), scoped_token=scoped_token, catalog=catalog)
        self.sessions.append(session)
        session._task = asyncio.get_running_loop().create_task(
            session.run(join_delay=self.join_delay, never_join=self.never_join),
            name=f"bithuman-avatar-standin.{session.room_name}",
        )
        self._notify()
        return session

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
        self._changed = asyncio.Event()

    def session(self, room_name: str) -> StandInSession:
        """The latest session for a room (KeyError if none was requested)."""
        for session in reversed(self.sessions):
            if session.room_name == room_name:
                return session
        raise KeyError(f"no avatar session was requested for room {room_name!r}")

    async def wait_session(
        self, room_name: str | None = None, within: float = 10.0
    ) -> StandInSession:
        """The latest session for `room_name` (any room if None), once its request was accepted."""
        try:
            async with asyncio.timeout(within):
                while True:
                    matching = [s for s in self.sessions if room_name in (None, s.room_name)]
                    if matching:
                        return matching[-1]
                    if self._changed is None:
                        self._changed = asyncio.Event()
                    await self._changed.wait()
        except TimeoutError:
            rooms = [s.room_name for s in self.sessions]
            raise TimeoutError(
                f"no avatar session request for room {room_name!r} within {within} s"
                f" (requested: {rooms})"
            ) from None

    async def leave(self, room_name: str, within: float = 10.0) -> None:
        """The avatar leaves the room mid-session (its participant disconnects)."""
        session = self.session(room_name)
        session.stop("left")
        await session.wait_ended(within)

    async def aclose(self) -> None:
        for session in self.sessions:
            session.stop("closed")
        tasks = [s._task for s in self.sessions if s._task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=10)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
