"""End-to-end pieces (tests/e2e and the benchmarks): the agent as users run it, and users as
real LiveKit clients.

The agent is `python -m agent start`, started in a folder holding a written `.env` and nothing
of ours exported. A user holds a token from our token server and joins the real LiveKit server
with livekit rtc: it hears audio, reads the transcription text streams, and speaks.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from livekit import rtc

# What our settings classes read: each service's prefix plus the names they share. Tests and
# the agent processes started here see none of them from the developer's shell.
OUR_VARIABLES = (
    "LIVEKIT_",
    "OPENAI_",
    "BITHUMAN_",
    "AGENT_",
    "AVATAR_",
    "DYNAMICS_",
    "TOKEN_SERVER_",
    "WEBHOOK_",
    "CONTEXT_",
    "LOG_",
    "REDIS_URL",
    "APP_ENV",
)
RATE = 48_000
FRAME = RATE // 100  # 10 ms
SILENT_RMS = 0.003  # of full scale: below this a frame counts as silence


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_env(folder: Path, settings: dict[str, str]) -> Path:
    path = folder / ".env"
    path.write_text("".join(f"{name}={value}\n" for name, value in settings.items()))
    return path


@dataclass
class AgentProcess:
    """`python -m agent start` in `folder`, its stdout and stderr in `folder/agent.log`."""

    process: asyncio.subprocess.Process
    log_path: Path

    @classmethod
    async def start(cls, folder: Path, command: str = "start") -> AgentProcess:
        # none of our settings may leak from the test's environment: the agent reads its .env
        env = {k: v for k, v in os.environ.items() if not k.startswith(OUR_VARIABLES)}
        log_path = folder / "agent.log"
        with log_path.open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "agent", command, cwd=folder, env=env,
                stdout=log, stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C in the test run is not the agent's
            )  # fmt: skip
        return cls(process, log_path)

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def records(self) -> list[dict[str, Any]]:
        found = []
        for line in self.text().splitlines():
            if line.startswith("{"):
                try:
                    found.append(json.loads(line))
                except ValueError:
                    continue
        return found

    def logged(self, message: str, **fields: Any) -> list[dict[str, Any]]:
        return [
            r
            for r in self.records()
            if r.get("message") == message and all(r.get(k) == v for k, v in fields.items())
        ]

    async def wait_for_log(
        self, message: str, *, count: int = 1, within: float = 60, **fields: Any
    ) -> list[dict[str, Any]]:
        """The first `count` JSON log records with this message (and fields), as they come."""
        async with asyncio.timeout(within):
            while True:
                found = self.logged(message, **fields)
                if len(found) >= count:
                    return found
                if self.process.returncode is not None:
                    raise AssertionError(
                        f"agent exited ({self.process.returncode}) before logging {message!r}:\n"
                        + self.text()[-4000:]
                    )
                await asyncio.sleep(0.05)

    async def registered(self) -> None:
        await self.wait_for_log("registered worker")

    async def stop(self, within: float = 60) -> int:
        """SIGTERM, as Cloud Run, Fargate and Kubernetes send it; the exit status after drain."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(within):
                return await self.process.wait()
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            raise

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()


@dataclass
class Heard:
    """One remote audio track as a user hears it."""

    participant: str
    frames: int = 0
    voiced: int = 0
    first_voiced_at: float | None = None
    voiced_event: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, frame: rtc.AudioFrame) -> None:
        self.frames += 1
        samples = np.frombuffer(frame.data, dtype=np.int16).astype(np.float32)
        if samples.size and math.sqrt(float(np.mean(samples**2))) / 32768 >= SILENT_RMS:
            self.voiced += 1
            if self.first_voiced_at is None:
                self.first_voiced_at = time.monotonic()
            self.voiced_event.set()


@dataclass
class Seen:
    """One remote video track as a user sees it."""

    participant: str
    frames: int = 0
    sizes: set[tuple[int, int]] = field(default_factory=set)
    lumas: list[float] = field(default_factory=list)

    def add(self, frame: rtc.VideoFrame) -> None:
        self.frames += 1
        self.sizes.add((frame.width, frame.height))
        if frame.type == rtc.VideoBufferType.I420:
            luma = np.frombuffer(frame.data, dtype=np.uint8)[: frame.width * frame.height]
            self.lumas.append(float(luma.mean()))


@dataclass
class Transcript:
    participant: str
    segment: str
    text: str
    final: bool


class User:
    """A person in a room: a livekit rtc client holding a token from our token server."""

    def __init__(self, identity: str, room: rtc.Room) -> None:
        self.identity = identity
        self.room = room
        self.heard: dict[str, Heard] = {}
        self.seen: dict[str, Seen] = {}
        self.transcripts: list[Transcript] = []
        self._changed = asyncio.Condition()
        self._tasks: set[asyncio.Task[None]] = set()
        self._mic: rtc.AudioSource | None = None
        self._to_say = 0
        self._said = asyncio.Event()
        room.on("track_subscribed", self._on_track)
        room.register_text_stream_handler("lk.transcription", self._on_transcription)

    @classmethod
    async def join(
        cls, token_server: str, room_name: str, *, session: aiohttp.ClientSession, **body: Any
    ) -> User:
        async with session.post(f"{token_server}/token", json={"room_name": room_name} | body) as r:
            answer = await r.json()
            assert r.status in (200, 201), answer
        room = rtc.Room()
        user = cls(answer.get("participant_identity", ""), room)
        await room.connect(answer["server_url"], answer["participant_token"])
        user.identity = room.local_participant.identity
        return user

    # --- what the user receives ----------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_track(
        self,
        track: rtc.Track,
        _: rtc.RemoteTrackPublication,
        participant: rtc.RemoteParticipant,
    ) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO:
            heard = self.heard.setdefault(participant.identity, Heard(participant.identity))
            self._spawn(self._listen(rtc.AudioStream(track, sample_rate=RATE), heard))
        elif track.kind == rtc.TrackKind.KIND_VIDEO:
            seen = self.seen.setdefault(participant.identity, Seen(participant.identity))
            self._spawn(self._watch(rtc.VideoStream(track), seen))

    async def _listen(self, stream: rtc.AudioStream, heard: Heard) -> None:
        async for event in stream:
            heard.add(event.frame)
            await self._notify()

    async def _watch(self, stream: rtc.VideoStream, seen: Seen) -> None:
        async for event in stream:
            seen.add(event.frame)
            await self._notify()

    def _on_transcription(self, reader: rtc.TextStreamReader, participant: str) -> None:
        async def read() -> None:
            text = await reader.read_all()
            attributes = reader.info.attributes or {}
            self.transcripts.append(
                Transcript(
                    participant,
                    attributes.get("lk.segment_id", ""),
                    text,
                    attributes.get("lk.transcription_final") == "true",
                )
            )
            await self._notify()

        self._spawn(read())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def until(self, condition: Callable[[], bool], within: float = 30) -> None:
        """Wait until `condition()` holds over what this user has received."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(condition)

    def voiced(self, identity: str) -> int:
        heard = self.heard.get(identity)
        return heard.voiced if heard else 0

    def final_texts(self, participant: str | None = None) -> list[str]:
        return [
            t.text
            for t in self.transcripts
            if t.final and (participant is None or t.participant == participant)
        ]

    def audio_publishers(self) -> set[str]:
        return {
            p.identity
            for p in self.room.remote_participants.values()
            for pub in p.track_publications.values()
            if pub.kind == rtc.TrackKind.KIND_AUDIO
        }

    # --- what the user says ---------------------------------------------------------------------

    async def open_mic(self) -> None:
        """Publish a microphone that, like a real one, sends frames all the time (silence
        between turns), paced in real time by the source's short queue."""
        self._mic = rtc.AudioSource(RATE, 1, queue_size_ms=50)
        track = rtc.LocalAudioTrack.create_audio_track("microphone", self._mic)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        await self.room.local_participant.publish_track(track, options)
        self._spawn(self._microphone(self._mic))

    async def _microphone(self, source: rtc.AudioSource) -> None:
        index = 0
        while True:
            if self._to_say > 0:
                frame = speech_frame(index)
                index += 1
                self._to_say -= 1
                if self._to_say == 0:
                    self._said.set()
            else:
                frame = speech_frame(0, loud=False)
            await source.capture_frame(frame)

    async def say(self, seconds: float = 1.0) -> float:
        """Speech-like audio for `seconds`; returns (monotonic) when its last frame went out."""
        assert self._mic is not None, "open_mic() first"
        self._said = asyncio.Event()
        self._to_say = int(seconds * 100)
        await self._said.wait()
        return time.monotonic()

    async def leave(self) -> None:
        await self.room.disconnect()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def agent_identity(user: User) -> str | None:
    """The agent participant the user sees (the avatar, also of kind agent, publishes on its
    behalf and says so in `lk.publish_on_behalf`)."""
    for participant in user.room.remote_participants.values():
        if (
            participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
            and "lk.publish_on_behalf" not in participant.attributes
        ):
            return participant.identity
    return None


def speech_frame(index: int, *, loud: bool = True) -> rtc.AudioFrame:
    """10 ms of a vowel-like sound (150 Hz and harmonics, 4 Hz syllables) or of silence."""
    frame = rtc.AudioFrame.create(RATE, 1, FRAME)
    if loud:
        t = (np.arange(FRAME) + index * FRAME) / RATE
        voice = sum(np.sin(2 * np.pi * 150 * h * t) / h for h in (1, 2, 3, 4))
        envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)
        samples = (voice * envelope * 6000).astype(np.int16)
        np.frombuffer(frame.data, dtype=np.int16)[:] = samples
    return frame
