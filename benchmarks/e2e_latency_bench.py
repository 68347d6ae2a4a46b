"""End-to-end latency through a real livekit-server: audio-only, and with the cloud avatar stand-in.

What a user waits for, measured at a real LiveKit client (livekit rtc) on 127.0.0.1:

- joined -> greeting: room connected -> first non-silent frame of the agent's greeting;
- stops -> reply: the last frame of 1.2 s of speech handed to the microphone -> first non-silent
  frame of the reply;
- keyword -> gesture (avatar mode): the same start -> `trigger_dynamics` received by the avatar
  (the realtime stand-in transcribes the turn as "that's so funny": "so funny" is a keyword of the
  default map's laugh gesture, `laugh_react` in the stub's catalog);

and where that time goes, from timestamps taken on one clock where possible.

The stack: tools/livekit-server (built by scripts/livekit-server.sh), one `python -m agent start`
per mode from a written `.env` with nothing of ours exported (reused across runs, as in
production), a fresh room per run joined with a token from our token server. In this process:
the token server, the OpenAI Realtime stand-in (no inference: its "model" time is protocol and
scheduling only) and, in avatar mode, the bitHuman stub with its cloud avatar stand-in (a real
room participant publishing 25 fps video). Their timestamps and the user's are `time.time()`; the
agent's are its JSON log timestamps (ISO UTC, written by the worker's main process) and the
server's log (ms resolution), compared on the same wall clock. The server runs with
agents.target_load raised: on a shared machine the host's CPU use alone would stop dispatch.

    python benchmarks/e2e_latency_bench.py [--runs 20] [--modes audio,avatar] [--keep DIR]

`--keep DIR` keeps the server's and the agents' logs (the agent logs the job loop's stalls).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import logging
import math
import os
import secrets
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp.test_utils import TestServer
from livekit import rtc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.dynamics.settings import AVATAR_IDENTITY  # noqa: E402
from common import logs  # noqa: E402
from devkit.bithuman_api import BithumanStub  # noqa: E402
from devkit.harness import (  # noqa: E402
    OUR_VARIABLES,
    AgentProcess,
    Heard,
    User,
    agent_identity,
    write_env,
)
from devkit.livekit_server import LiveKitServer, require_server, running_server  # noqa: E402
from devkit.openai_realtime import FakeRealtimeServer, RealtimeConnection  # noqa: E402
from token_server.app import create_app  # noqa: E402
from token_server.settings import TokenServerSettings  # noqa: E402

if TYPE_CHECKING:
    from devkit.bithuman_avatar import AvatarStandIn, StandInSession

SPEECH_S = 1.2
TRANSCRIPT = "that's so funny"  # "so funny": the default map's laugh keyword
GESTURE = "laugh_react"
AVATAR_ID = "A00E2E0001"
GREETING_FRAMES = 30  # voiced 10 ms frames before the greeting may count as over
QUIET_S = 0.4  # then this long without a voiced frame
RUN_TIMEOUT_S = 90.0
WAIT_S = 30.0


# --- timestamps ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stamp:
    at: float
    direction: str  # "sent" by the realtime stand-in, or "received" by it
    type: str


@contextlib.contextmanager
def stamped_realtime() -> Iterator[dict[int, list[Stamp]]]:
    """Every event the realtime stand-in sends or handles, per connection, on time.time()."""
    stamps: dict[int, list[Stamp]] = defaultdict(list)
    send, handle = RealtimeConnection.send, RealtimeConnection.handle

    async def stamped_send(self: RealtimeConnection, event: dict[str, Any]) -> None:
        stamps[id(self)].append(Stamp(time.time(), "sent", str(event.get("type"))))
        await send(self, event)

    async def stamped_handle(self: RealtimeConnection, event: dict[str, Any]) -> None:
        stamps[id(self)].append(Stamp(time.time(), "received", str(event.get("type"))))
        await handle(self, event)

    setattr(RealtimeConnection, "send", stamped_send)  # noqa: B010
    setattr(RealtimeConnection, "handle", stamped_handle)  # noqa: B010
    try:
        yield stamps
    finally:
        setattr(RealtimeConnection, "send", send)  # noqa: B010
        setattr(RealtimeConnection, "handle", handle)  # noqa: B010


@dataclass
class AvatarStamps:
    requested: dict[str, float] = field(default_factory=dict)  # room -> session request
    gestures: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))


def stamp_avatar(avatar: AvatarStandIn, stamps: AvatarStamps) -> None:
    """Time each session request the stub accepts and each `trigger_dynamics` call."""
    start_session = avatar.start_session

    def stamped_start(request: dict[str, Any], **kwargs: Any) -> StandInSession:
        at = time.time()
        session = start_session(request, **kwargs)
        stamps.requested[session.room_name] = at
        on_gesture = session._on_gesture  # registered by the session's task, which runs later

        def stamped_gesture(data: rtc.RpcInvocationData) -> str:
            stamps.gestures[session.room_name].append(time.time())  # parallel to .gestures
            return on_gesture(data)

        setattr(session, "_on_gesture", stamped_gesture)  # noqa: B010
        return session

    setattr(avatar, "start_session", stamped_start)  # noqa: B010


def log_time(record: dict[str, Any]) -> float:
    return datetime.fromisoformat(record["timestamp"]).timestamp()


def server_log_time(lk: LiveKitServer, message: str, **fields: str) -> float | None:
    """When livekit-server first logged `message` with these fields (ms resolution)."""
    with lk.log_path.open(errors="replace") as log:
        for line in log:
            parts = line.split("\t", 5)
            if len(parts) < 6 or parts[4] != message:
                continue
            try:
                values = json.loads(parts[5])
            except ValueError:
                continue
            if all(values.get(k) == v for k, v in fields.items()):
                return datetime.fromisoformat(parts[0]).timestamp()
    return None


# --- the user -----------------------------------------------------------------------------------


class BenchUser(User):
    """The harness's user, with wall-clock times of what it sees and hears."""

    def __init__(self, identity: str, room: rtc.Room) -> None:
        super().__init__(identity, room)
        self.voiced_at: dict[str, list[float]] = defaultdict(list)
        self.joined_at: dict[str, float] = {}
        self.track_at: dict[tuple[str, str], float] = {}
        room.on("participant_connected", self._on_participant)

    def _on_participant(self, participant: rtc.RemoteParticipant) -> None:
        self.joined_at.setdefault(participant.identity, time.time())

    def _on_track(
        self,
        track: rtc.Track,
        publication: rtc.RemoteTrackPublication,
        participant: rtc.RemoteParticipant,
    ) -> None:
        kind = "audio" if track.kind == rtc.TrackKind.KIND_AUDIO else "video"
        self.track_at.setdefault((participant.identity, kind), time.time())
        super()._on_track(track, publication, participant)

    async def _listen(self, stream: rtc.AudioStream, heard: Heard) -> None:
        async for event in stream:
            before = heard.voiced
            heard.add(event.frame)
            if heard.voiced > before:
                self.voiced_at[heard.participant].append(time.time())
            await self._notify()

    def _on_transcription(self, reader: rtc.TextStreamReader, participant: str) -> None:
        async def drain() -> None:
            with contextlib.suppress(rtc.StreamError):
                await reader.read_all()

        self._spawn(drain())  # transcripts are not measured; a stream cut by leaving is fine

    def voiced_after(self, identity: str, moment: float) -> float | None:
        times = self.voiced_at.get(identity, [])
        index = bisect.bisect_right(times, moment)
        return times[index] if index < len(times) else None

    async def until_quiet(self, identity: str) -> None:
        """The greeting is over: enough of it heard, then QUIET_S of silence."""
        async with asyncio.timeout(WAIT_S):
            while True:
                times = self.voiced_at.get(identity, [])
                if len(times) >= GREETING_FRAMES and time.time() - times[-1] >= QUIET_S:
                    return
                await asyncio.sleep(0.05)


@dataclass
class Joined:
    user: BenchUser
    token_at: float  # token in hand: room.connect() starts (the room and its dispatch are
    connected_at: float  # created during it)


async def join(http: aiohttp.ClientSession, token_url: str, room_name: str) -> Joined:
    async with asyncio.timeout(WAIT_S):
        async with http.post(f"{token_url}/token", json={"room_name": room_name}) as answer:
            body = await answer.json()
            if answer.status not in (200, 201):
                raise RuntimeError(f"token server answered {answer.status}: {body}")
        token_at = time.time()
        room = rtc.Room()
        user = BenchUser(body.get("participant_identity", ""), room)
        await room.connect(body["server_url"], body["participant_token"])
    connected_at = time.time()
    user.identity = room.local_participant.identity
    for participant in room.remote_participants.values():  # already there: seen at connect
        user.joined_at.setdefault(participant.identity, connected_at)
    return Joined(user, token_at, connected_at)


# --- one mode -----------------------------------------------------------------------------------


@dataclass
class Mode:
    name: str
    avatar: bool
    agent: AgentProcess
    token_url: str
    token_server: TestServer


@dataclass
class Run:
    values: dict[str, float]
    note: str = ""


GREETING_STAGES = ("dispatch", "connect", "avatar request", "avatar join", "setup", "model")
REPLY_STAGES = ("turn end", "reply model")
GESTURE_STAGES = ("transcript",)


class Bench:
    def __init__(
        self,
        lk: LiveKitServer,
        realtime: FakeRealtimeServer,
        realtime_stamps: dict[int, list[Stamp]],
        stub: BithumanStub | None,
        avatar_stamps: AvatarStamps,
        http: aiohttp.ClientSession,
        folder: Path,
    ) -> None:
        self.lk = lk
        self.realtime = realtime
        self.realtime_stamps = realtime_stamps
        self.stub = stub
        self.avatar_stamps = avatar_stamps
        self.http = http
        self.folder = folder
        self.turn_detection = ""  # the session's, as the realtime stand-in applies it
        self.step = ""  # what the current run waits for, named when it fails
        self.silence_s = 0.0

    def settings(self, agent_name: str, avatar: bool) -> dict[str, str]:
        settings = {
            **self.lk.env(),
            "OPENAI_API_KEY": "sk-bench",
            "OPENAI_BASE_URL": self.realtime.base_url,
            "AGENT_NAME": agent_name,
            "LOG_FORMAT": "json",
            "AGENT_LOAD_THRESHOLD": "inf",  # the machine may be busy: never refuse a job
            "AGENT_IDLE_PROCESSES": "1",
            "AGENT_HTTP_PORT": "0",
            "AGENT_DRAIN_TIMEOUT": "30",
        }
        if avatar:
            assert self.stub is not None
            settings |= {
                "BITHUMAN_API_SECRET": self.stub.secret,
                "BITHUMAN_AVATAR_ID": AVATAR_ID,
                "BITHUMAN_API_URL": self.stub.session_request_url,
                "BITHUMAN_REST_URL": self.stub.url,
            }
        return settings

    @contextlib.asynccontextmanager
    async def mode(self, name: str, avatar: bool) -> AsyncIterator[Mode]:
        agent_name = f"bench-{name}-{secrets.token_hex(3)}"
        token_settings = TokenServerSettings(
            _env_file=None,  # type: ignore[call-arg]
            **self.lk.env(),
            AGENT_NAME=agent_name,
            TOKEN_SERVER_RATE_LIMIT_PER_MINUTE=0,
        )
        token_server = TestServer(create_app(token_settings), host="127.0.0.1")
        await token_server.start_server()
        folder = self.folder / name
        folder.mkdir()
        write_env(folder, self.settings(agent_name, avatar))
        agent = await AgentProcess.start(folder)
        try:
            await agent.wait_for_log("registered worker", within=120)
            url = str(token_server.make_url("")).rstrip("/")
            yield Mode(name, avatar, agent, url, token_server)
        finally:
            try:
                await agent.stop(within=60)
            except TimeoutError:
                print(f"{name}: the worker did not stop within 60 s: killed", file=sys.stderr)
            await token_server.close()

    async def run(self, mode: Mode, number: int) -> Run:
        # production's steady state: a warm idle process waiting, the previous job gone
        self.step = "a warm idle job process"
        await mode.agent.wait_for_log("process initialized", count=number + 1, within=60)
        room_name = f"bench-{mode.name}-{number}-{secrets.token_hex(3)}"
        connections_before = len(self.realtime.connections)
        self.step = "token and room connection"
        joined = await join(self.http, mode.token_url, room_name)
        user = joined.user
        try:
            values = await self._conversation(mode, joined, room_name, connections_before)
        finally:
            await user.leave()
        self.step = "the job to end after the user left"
        await mode.agent.wait_for_log("session usage", room=room_name, within=WAIT_S)
        if mode.avatar:
            assert self.stub is not None and self.stub.avatar is not None
            with contextlib.suppress(Exception):
                await self.stub.avatar.session(room_name).wait_ended(within=15)
        return Run(values)

    async def _conversation(
        self, mode: Mode, joined: Joined, room_name: str, connections_before: int
    ) -> dict[str, float]:
        user = joined.user
        await user.open_mic()  # as a client does on joining: silence until it speaks
        self.step = "the agent participant"
        await user.until(lambda: agent_identity(user) is not None, within=WAIT_S)
        agent = agent_identity(user)
        assert agent is not None
        voice = AVATAR_IDENTITY if mode.avatar else agent
        self.step = "greeting audio"
        await user.until(lambda: user.voiced(voice) > 0, within=WAIT_S)
        self.step = "the greeting to end"
        await user.until_quiet(voice)
        if mode.avatar and agent in user.audio_publishers():
            raise RuntimeError("the agent published its own voice: the avatar did not start")

        self.realtime.script.transcripts.append(TRANSCRIPT)
        said = await user.say(SPEECH_S)
        spoke_at = time.time() - (time.monotonic() - said)
        self.step = "reply audio"
        await user.until(lambda: user.voiced_after(voice, spoke_at) is not None, within=WAIT_S)
        reply_at = user.voiced_after(voice, spoke_at)
        assert reply_at is not None

        gesture_at: float | None = None
        if mode.avatar:
            assert self.stub is not None and self.stub.avatar is not None
            session = self.stub.avatar.session(room_name)
            self.step = "a gesture at the avatar"
            await session.wait_gestures(1, within=WAIT_S)
            times = self.avatar_stamps.gestures[room_name]
            calls = zip(session.gestures, times, strict=False)
            laughs = [at for call, at in calls if call.action == GESTURE and at > spoke_at]
            if not laughs:
                raise RuntimeError(f"no {GESTURE} gesture: {session.gestures}")
            gesture_at = laughs[0]

        self.step = "the job request in the agent log"
        job = await mode.agent.wait_for_log("received job request", room=room_name, within=10)
        stamps = self._realtime_stamps(connections_before)

        def sent(type_: str, after: float) -> float:
            found = [s.at for s in stamps if s.direction == "sent" and s.type == type_]
            later = [at for at in found if at >= after]
            if not later:
                raise RuntimeError(f"the realtime stand-in sent no {type_} after {after}")
            return later[0]

        created = [
            s.at for s in stamps if s.direction == "received" and s.type == "response.create"
        ]
        if not created:
            raise RuntimeError("the realtime stand-in received no response.create")
        greeting_at = user.voiced_at[voice][0]
        opened = sent("session.created", 0.0)  # the realtime websocket of this job
        greeting_delta = sent("response.output_audio.delta", created[0])
        stopped = sent("input_audio_buffer.speech_stopped", spoke_at - SPEECH_S)
        transcribed = sent("conversation.item.input_audio_transcription.completed", stopped)
        reply_delta = sent("response.output_audio.delta", stopped)
        agent_seen = user.joined_at.get(agent, joined.connected_at)
        room_joined = server_log_time(
            self.lk, "starting RTC session", room=room_name, participant=user.identity
        )
        # the agent in the room, as the server saw it: the user may see it much later (below)
        agent_in = server_log_time(self.lk, "participant active", room=room_name, participant=agent)
        if agent_in is None:
            agent_in = agent_seen

        values = {
            "joined -> greeting": greeting_at - joined.connected_at,
            "join": joined.connected_at - joined.token_at,
            "token -> greeting": greeting_at - joined.token_at,
            "dispatch": log_time(job[0]) - joined.token_at,
            "connect": agent_in - log_time(job[0]),
            "agent visible": agent_seen - log_time(job[0]),
            "model": greeting_delta - created[0],
            "playout": greeting_at - greeting_delta,
            "stops -> reply": reply_at - spoke_at,
            "turn end": stopped - spoke_at,
            "audio path": stopped - spoke_at - self.silence_s,
            "reply model": reply_delta - stopped,
            "reply playout": reply_at - reply_delta,
        }
        if room_joined is not None:
            values |= {
                "room created": room_joined - joined.token_at,
                "selection": log_time(job[0]) - room_joined,
            }
        if mode.avatar:
            requested = self.avatar_stamps.requested[room_name]
            video_at = user.track_at[(AVATAR_IDENTITY, "video")]
            values |= {
                "avatar request": requested - agent_in,
                "avatar join": video_at - requested,
                "setup": created[0] - video_at,
                "realtime open": opened - video_at,
            }
        else:
            values |= {"setup": created[0] - agent_in, "realtime open": opened - agent_in}
        values["greeting asked"] = created[0] - opened
        if gesture_at is not None:
            values |= {
                "keyword -> gesture": gesture_at - spoke_at,
                "transcript": transcribed - spoke_at,
                "gesture rpc": gesture_at - transcribed,
            }
        return values

    def _realtime_stamps(self, connections_before: int) -> list[Stamp]:
        """The events of this run's realtime connection (the one that got a response.create)."""
        for conn in reversed(self.realtime.connections[connections_before:]):
            stamps = self.realtime_stamps.get(id(conn), [])
            if any(s.type == "response.create" for s in stamps):
                if not self.turn_detection:
                    td = conn.session["audio"]["input"].get("turn_detection") or {}
                    wait = td.get("silence_duration_ms") or 500  # the stand-in's default
                    self.turn_detection = f"{wait} ms silence wait ({td.get('type')})"
                    self.silence_s = wait / 1000
                return stamps
        raise RuntimeError("no realtime connection of this run asked for a response")


# --- figures ------------------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    """Nearest rank."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


ROWS: tuple[tuple[str, str, int], ...] = (
    # key, label, indent
    ("joined -> greeting", "joined -> greeting heard (room connected -> first voiced frame)", 0),
    ("join", "join: token in hand -> room connected", 2),
    ("token -> greeting", "token in hand -> greeting heard, of which:", 2),
    ("dispatch", "dispatch: -> agent's 'received job request'", 4),
    ("room created", "user's RTC session at the server (its log)", 6),
    ("selection", "-> job request (server waits 200 ms for bids)", 6),
    ("connect", "connect: job -> agent participant active (server log)", 4),
    ("avatar request", "avatar request: -> session request at the stub", 4),
    ("avatar join", "avatar join: request -> avatar video track visible", 4),
    ("setup", "setup: -> response.create at the realtime stand-in", 4),
    ("realtime open", "-> realtime websocket open (session.created)", 6),
    ("greeting asked", "-> response.create (session.update, on_enter)", 6),
    ("model", "model: response.create -> first audio delta sent", 4),
    ("playout", "playout/transport: first delta -> first voiced frame", 4),
    ("agent visible", "job -> agent participant visible to the user", 2),
    ("stops -> reply", "stops speaking -> reply heard, of which:", 0),
    ("turn end", "turn end: -> speech_stopped at the stand-in", 4),
    ("audio path", "beyond the stand-in's {turn}", 6),
    ("reply model", "model: speech_stopped -> first audio delta sent", 4),
    ("reply playout", "playout/transport: first delta -> first voiced frame", 4),
    ("keyword -> gesture", "keyword spoken (speech end) -> trigger_dynamics at avatar", 0),
    ("transcript", "transcript: -> transcription sent by the stand-in", 4),
    ("gesture rpc", "gesture: transcription -> RPC received at the avatar", 4),
)
LABEL_WIDTH = 62


def print_mode(title: str, runs: list[Run], failures: list[str], turn: str) -> None:
    print(f"{title}: {len(runs)} runs" + (f", {len(failures)} failed" if failures else ""))
    print(f"  {'ms':{LABEL_WIDTH}} {'p50':>7} {'p95':>7} {'min':>7} {'max':>7}")
    for key, label, indent in ROWS:
        values = [run.values[key] * 1000 for run in runs if key in run.values]
        if not values:
            continue
        text = " " * indent + label.format(turn=turn)
        print(
            f"  {text:{LABEL_WIDTH}} {percentile(values, 0.5):7.0f} {percentile(values, 0.95):7.0f}"
            f" {min(values):7.0f} {max(values):7.0f}"
        )
    for failure in failures:
        print(f"  failed: {failure}")
    print()


RATIO_ROWS = {
    "joined -> greeting": "joined -> greeting heard",
    "playout": "  greeting playout/transport",
    "stops -> reply": "stops speaking -> reply heard",
    "reply playout": "  reply playout/transport",
}


def print_ratios(audio: list[Run], avatar: list[Run]) -> None:
    print("avatar vs audio-only")
    print(f"  {'ms, p50':{LABEL_WIDTH}} {'audio':>7} {'avatar':>7} {'ratio':>7}  (p95 ratio)")
    for key, label in RATIO_ROWS.items():
        a = [run.values[key] for run in audio if key in run.values]
        b = [run.values[key] for run in avatar if key in run.values]
        if not a or not b:
            continue
        ratio50 = percentile(b, 0.5) / percentile(a, 0.5)
        ratio95 = percentile(b, 0.95) / percentile(a, 0.95)
        print(
            f"  {label:{LABEL_WIDTH}} {percentile(a, 0.5) * 1000:7.0f}"
            f" {percentile(b, 0.5) * 1000:7.0f} {ratio50:6.2f}x  ({ratio95:.2f}x)"
        )
    print()


# --- main ---------------------------------------------------------------------------------------


async def measure(
    modes: list[str], runs: int, keep: Path | None
) -> dict[str, tuple[list[Run], list[str]]]:
    results: dict[str, tuple[list[Run], list[str]]] = {}
    avatar_stamps = AvatarStamps()
    avatar: AvatarStandIn | None = None
    if "avatar" in modes:
        from devkit.bithuman_avatar import AvatarStandIn

        avatar = AvatarStandIn()
        stamp_avatar(avatar, avatar_stamps)
    with (
        tempfile.TemporaryDirectory(prefix="e2e-latency-") as scratch,
        running_server(workdir := prepare(keep, scratch)) as lk,
        stamped_realtime() as realtime_stamps,
    ):
        async with (
            FakeRealtimeServer() as realtime,
            BithumanStub(avatar=avatar) as stub,
            aiohttp.ClientSession() as http,
        ):
            bench = Bench(lk, realtime, realtime_stamps, stub, avatar_stamps, http, workdir)
            for name in modes:
                done: list[Run] = []
                failures: list[str] = []
                async with bench.mode(name, avatar=name == "avatar") as mode:
                    for number in range(runs):
                        try:
                            async with asyncio.timeout(RUN_TIMEOUT_S):
                                done.append(await bench.run(mode, number))
                        except Exception as exc:
                            reason = (
                                f"run {number}, waiting for {bench.step}:"
                                f" {type(exc).__name__}: {exc}"
                            )
                            failures.append(reason)
                            print(f"{name} {reason}", file=sys.stderr)
                            if len(failures) > max(2, runs // 4):
                                failures.append("too many failures: mode abandoned")
                                break
                results[name] = (done, failures)
                print_mode(TITLES[name], done, failures, bench.turn_detection)
    return results


class Quiet(logging.Filter):
    """Drops expected lines: the avatar stand-in's receiver calls lk.playback_started on an
    agent that does not wait for it (once per reply), rtc's handle warnings at teardown, and
    video frames the user's decoder dropped (counted instead: a sign of a starved process)."""

    dropped_video = 0

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "video stream queue overflow" in message:
            Quiet.dropped_video += 1
            return False
        return "lk.playback_started" not in message and "unknown FFI handle" not in message


def prepare(keep: Path | None, scratch: str) -> Path:
    """The folder for the server's and agents' logs: kept with --keep, else a temporary one."""
    if keep is None:
        return Path(scratch)
    keep.mkdir(parents=True, exist_ok=False)
    return keep.resolve()


TITLES = {
    "audio": "audio-only (agent publishes its voice)",
    "avatar": "cloud avatar stand-in (agent -> avatar data stream -> avatar tracks)",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="runs per mode (default 20)")
    parser.add_argument("--modes", default="audio,avatar", help="audio, avatar or both")
    parser.add_argument("--keep", type=Path, help="a new folder to keep the logs in")
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or set(modes) - set(TITLES) or args.runs < 1:
        parser.error("--modes takes audio and/or avatar; --runs at least 1")
    for name in [n for n in os.environ if n.startswith(OUR_VARIABLES)]:
        del os.environ[name]  # the token server here reads the environment too

    version = require_server()
    load = os.getloadavg()
    print(
        f"end-to-end latency, {version} on 127.0.0.1, {args.runs} runs per mode;"
        f" {os.cpu_count()} CPUs, load {load[0]:.2f} {load[1]:.2f} at start"
    )
    print(
        "one worker per mode (python -m agent start, reused), a fresh room per run; in this"
        " process: user client, token server, OpenAI Realtime stand-in (no inference),"
        " bitHuman stub + avatar stand-in; times on the wall clock (agent: its log timestamps);"
        " server agents.target_load raised as in the tests (default 0.7: a busy host gets no jobs)"
    )
    print()
    logs.configure_structlog()  # the in-process services log through stdlib logging...
    logging.basicConfig(level=logging.WARNING)  # ...and only their warnings are shown
    for handler in logging.getLogger().handlers:
        handler.addFilter(Quiet())
    results = asyncio.run(measure(modes, args.runs, args.keep))
    if "audio" in results and "avatar" in results:
        print_ratios(results["audio"][0], results["avatar"][0])
    load = os.getloadavg()
    print(f"load {load[0]:.2f} {load[1]:.2f} at the end", end="")
    if Quiet.dropped_video:
        print(f"; the user's video stream overflowed {Quiet.dropped_video} times", end="")
    print()
    if any(not done for done, _ in results.values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
