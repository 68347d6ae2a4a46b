"""The simulated users of benchmarks/capacity.py: N livekit rtc clients in one process.

    python benchmarks/capacity_users.py --token-url URL --users N --voice agent|avatar ...

Each user joins its own room (a token from our token server, which dispatches the worker),
publishes a microphone (silence between turns, as a real one), waits for the greeting, then
talks in turns until told to stop: a pause, SPEECH_S of speech-like audio, the reply heard to its
end. It subscribes to everything (so the worker encodes and sends its video) but decodes only
audio: the load generator shares a core with the server and the stand-ins.

Protocol on stdout, one JSON object a line: {"ready": t, "joined": n, "failed": [...]} once every
user has greeted or failed; then, after "stop" on stdin, {"turns": [...], "failed": [...]}.
A turn: its start (wall clock), latency (end of speech -> first voiced reply frame at the user,
s), expected/voiced/gap 10 ms frames of the reply (gaps: silent frames inside the reply's span).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp
import numpy as np
from livekit import rtc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.dynamics.settings import AVATAR_IDENTITY  # noqa: E402
from benchmarks.e2e_latency_bench import BenchUser  # noqa: E402
from devkit.harness import SILENT_RMS, Heard, agent_identity  # noqa: E402

SPEECH_S = 1.5
PAUSE_S = (1.0, 3.0)  # the user thinks this long after a reply, uniformly
REPLY_WAIT_S = 20.0
REPLY_QUIET_S = 0.5  # a reply is over after this long without a voiced frame
GREETING_WAIT_S = 90.0


@dataclass
class Turn:
    started: float
    latency: float | None
    expected: int
    voiced: int
    gaps: int


class LoadUser(BenchUser):
    """A user that listens to audio only and keeps, per voice, where in the stream (10 ms
    frames) each voiced frame fell and when it arrived."""

    def __init__(self, identity: str, room: rtc.Room) -> None:
        super().__init__(identity, room)
        self.voiced_pos: dict[str, list[int]] = {}

    def _on_track(
        self,
        track: rtc.Track,
        publication: rtc.RemoteTrackPublication,
        participant: rtc.RemoteParticipant,
    ) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO:
            super()._on_track(track, publication, participant)

    async def _listen(self, stream: rtc.AudioStream, heard: Heard) -> None:
        positions = self.voiced_pos.setdefault(heard.participant, [])
        times = self.voiced_at[heard.participant]
        threshold = (SILENT_RMS * 32768) ** 2
        async for event in stream:
            heard.frames += 1
            samples = np.frombuffer(event.frame.data, dtype=np.int16).astype(np.float32)
            if samples.size and float(np.dot(samples, samples)) / samples.size >= threshold:
                heard.voiced += 1
                positions.append(heard.frames)
                times.append(time.time())
                await self._notify()


def replied(user: LoadUser, voice: str, spoke_at: float) -> Callable[[], bool]:
    return lambda: user.voiced_after(voice, spoke_at) is not None


async def converse(
    user: LoadUser, voice: str, expected: int, rng: random.Random, turns: list[Turn]
) -> None:
    """Turns until cancelled."""
    while True:
        await asyncio.sleep(rng.uniform(*PAUSE_S))
        started = time.time()
        said = await user.say(SPEECH_S)
        spoke_at = time.time() - (time.monotonic() - said)
        try:
            await user.until(replied(user, voice, spoke_at), within=REPLY_WAIT_S)
        except TimeoutError:
            turns.append(Turn(started, None, expected, 0, 0))
            continue
        first = user.voiced_after(voice, spoke_at)
        assert first is not None
        while time.time() - user.voiced_at[voice][-1] < REPLY_QUIET_S:
            await asyncio.sleep(0.1)
        times, positions = user.voiced_at[voice], user.voiced_pos[voice]
        start = bisect.bisect_right(times, spoke_at)
        span = positions[start:]
        gaps = (span[-1] - span[0] + 1 - len(span)) if span else 0
        turns.append(Turn(started, first - spoke_at, expected, len(span), gaps))


async def one_user(
    args: argparse.Namespace,
    http: aiohttp.ClientSession,
    number: int,
    greeted: asyncio.Queue[str | None],
    turns: list[Turn],
    users: list[LoadUser],
) -> None:
    room_name = f"cap-{args.tag}-{number}"
    try:
        async with asyncio.timeout(GREETING_WAIT_S):
            user = await LoadUser.join(args.token_url, room_name, session=http)
            assert isinstance(user, LoadUser)
    except Exception as exc:
        await greeted.put(f"{room_name}: join: {type(exc).__name__}: {exc}")
        return
    users.append(user)
    try:
        await user.open_mic()
        async with asyncio.timeout(GREETING_WAIT_S):
            await user.until(lambda: agent_identity(user) is not None, within=GREETING_WAIT_S)
            agent = agent_identity(user)
            assert agent is not None
            voice = AVATAR_IDENTITY if args.voice == "avatar" else agent
            await user.until(lambda: user.voiced(voice) > 0, within=GREETING_WAIT_S)
            await user.until_quiet(voice)
    except Exception as exc:
        await greeted.put(f"{room_name}: no greeting: {type(exc).__name__}: {exc}")
        return
    await greeted.put(None)
    await converse(user, voice, args.reply_frames, random.Random(number), turns)


async def run(args: argparse.Namespace) -> None:
    turns: list[Turn] = []
    users: list[LoadUser] = []
    greeted: asyncio.Queue[str | None] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    async with aiohttp.ClientSession() as http:
        tasks = []
        for number in range(args.users):
            tasks.append(asyncio.create_task(one_user(args, http, number, greeted, turns, users)))
            await asyncio.sleep(1 / args.join_rate)
        failed = [f for f in [await greeted.get() for _ in range(args.users)] if f is not None]
        ready = time.time()
        print(json.dumps({"ready": ready, "joined": args.users - len(failed), "failed": failed}))
        sys.stdout.flush()
        await stdin.readline()  # "stop", or the orchestrator gone
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # a session the agent dropped during the run: its voice went quiet for good
        for user in users:
            with contextlib.suppress(Exception):
                if user.room.isconnected() and agent_identity(user) is None:
                    failed.append(f"{user.room.name}: the agent left during the run")
        print(json.dumps({"turns": [asdict(t) for t in turns if t.started >= ready],
                          "failed": failed}))  # fmt: skip
        sys.stdout.flush()
        await asyncio.gather(*(u.leave() for u in users), return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--token-url", required=True)
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--voice", choices=("agent", "avatar"), default="agent")
    parser.add_argument("--reply-frames", type=int, required=True, help="10 ms frames a reply")
    parser.add_argument("--join-rate", type=float, default=2.0, help="users joining per second")
    parser.add_argument("--tag", default="x", help="room names: cap-<tag>-<n>")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
