"""The placeholder avatar through the real LiveKit server: AVATAR_MODE=placeholder, no bitHuman
anywhere. The user sees 512x512 video whose mouth opens while the agent's voice plays (and at
the same time), hears that one voice, and a keyword puts the gesture's banner on the face."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import numpy as np
import pytest
from livekit import rtc

from agent.placeholder.art import Eyes, face_art
from devkit.harness import SILENT_RMS, User, agent_identity
from devkit.openai_realtime import GREETING, FunctionCall
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e

SIZE = 512
# where to look, in pixels of the 512x512 picture: the middle of the mouth, and the middle of
# the gesture banner (below the neck, where the plain picture shows the shirt)
MOUTH = (slice(312, 372), slice(216, 296))
BANNER = (slice(462, 482), slice(216, 296))


def _luma(frame: rtc.VideoFrame, region: tuple[slice, slice]) -> float:
    y = np.frombuffer(frame.data, dtype=np.uint8)[: frame.width * frame.height]
    return float(y.reshape(frame.height, frame.width)[region].mean())


def _drawn(eyes: Eyes, mouth: int, banner: str | None, region: tuple[slice, slice]) -> float:
    """The luma of a region as drawn, before any video coding."""
    return _luma(face_art().compose(eyes, mouth, banner), region)


@dataclass
class Watcher:
    """What the user receives from the agent, with arrival times: per video frame the luma of
    the mouth and of the banner, per audio frame whether it is voiced."""

    frames: list[tuple[float, float, float]] = field(default_factory=list)
    voiced: list[float] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def attach_to_agent(self, user: User) -> str:
        """Once the agent has joined the user's room: its identity, watched from now on."""
        await user.until(lambda: agent_identity(user) is not None, within=60)
        speaker = agent_identity(user)
        assert speaker is not None
        self.attach(user, speaker)
        return speaker

    def attach(self, user: User, identity: str) -> None:
        def on_track(
            track: rtc.Track, _: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant
        ) -> None:
            if participant.identity != identity:
                return
            if track.kind == rtc.TrackKind.KIND_VIDEO:
                self._spawn(self._watch(rtc.VideoStream(track, format=rtc.VideoBufferType.I420)))
            elif track.kind == rtc.TrackKind.KIND_AUDIO:
                self._spawn(self._listen(rtc.AudioStream(track, sample_rate=48_000)))

        user.room.on("track_subscribed", on_track)
        for participant in user.room.remote_participants.values():
            for publication in participant.track_publications.values():
                if publication.track is not None:
                    on_track(publication.track, publication, participant)  # type: ignore[arg-type]

    def _spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self.tasks.add(task)

    async def _watch(self, stream: rtc.VideoStream) -> None:
        async for event in stream:
            frame = event.frame
            if (frame.width, frame.height) == (SIZE, SIZE):
                now = time.monotonic()
                self.frames.append((now, _luma(frame, MOUTH), _luma(frame, BANNER)))

    async def _listen(self, stream: rtc.AudioStream) -> None:
        async for event in stream:
            samples = np.frombuffer(event.frame.data, dtype=np.int16).astype(np.float32)
            if samples.size and np.sqrt(np.mean(samples**2)) / 32768 >= SILENT_RMS:
                self.voiced.append(time.monotonic())

    def mouth_open_times(self, threshold: float) -> list[float]:
        return [t for t, mouth, _ in self.frames if mouth < threshold]

    async def aclose(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def _runs(times: list[float], gap: float = 0.2) -> list[tuple[float, float]]:
    """Consecutive times closer than `gap` merged into (start, end) runs."""
    runs: list[tuple[float, float]] = []
    for t in times:
        if runs and t - runs[-1][1] <= gap:
            runs[-1] = (runs[-1][0], t)
        else:
            runs.append((t, t))
    return runs


async def test_the_user_sees_the_face_talk_in_step_with_one_voice_and_a_keyword_gesture(
    stack: Stack,
) -> None:
    stack.realtime.script.transcripts.append("haha that's so funny")
    agent = await stack.start_agent(stack.settings(AVATAR_MODE="placeholder"))
    user = await stack.join()
    watcher = Watcher()
    try:
        speaker = await watcher.attach_to_agent(user)

        # the greeting: the agent's own participant publishes the face and the voice
        await user.until(lambda: GREETING in user.final_texts(), within=60)
        await user.until(lambda: user.voiced(speaker) >= 25, within=60)
        await user.until(lambda: user.seen.get(speaker) is not None, within=60)
        await user.until(lambda: user.seen[speaker].frames >= 25, within=60)
        seen = user.seen[speaker]
        assert seen.sizes == {(SIZE, SIZE)}

        # one voice: a single audio track in the room, the agent's, and no bitHuman call
        audio_tracks = [
            (participant.identity, publication.name)
            for participant in user.room.remote_participants.values()
            for publication in participant.track_publications.values()
            if publication.kind == rtc.TrackKind.KIND_AUDIO
        ]
        assert audio_tracks == [(speaker, "avatar_audio")]
        assert stack.bithuman.requests == []
        (ready,) = agent.logged("avatar ready", mode="placeholder")
        assert ready["identity"] == speaker

        # the mouth opens while the voice plays, and only then, within about 3 frames of it
        closed = _drawn(Eyes.OPEN, 0, None, MOUTH)
        wide = _drawn(Eyes.OPEN, 7, None, MOUTH)
        threshold = (closed + wide) / 2
        await user.open_mic()
        await user.say(1.0)
        reply = "You said: haha that's so funny."
        await user.until(lambda: reply in user.final_texts(speaker), within=60)
        await asyncio.sleep(1.0)  # the reply plays out, then idle frames
        speaking = _runs(watcher.mouth_open_times(threshold))
        voiced = _runs(watcher.voiced)
        assert speaking and voiced, (len(watcher.frames), len(watcher.voiced))
        mouths = [mouth for _, mouth, _ in watcher.frames]
        assert min(mouths) < threshold < max(mouths), "the picture changes while it speaks"
        assert watcher.frames[-1][1] > threshold, "the mouth is closed when the voice stops"
        # the reply's voice has an open mouth that starts and ends with it (the greeting is
        # left out: it may start while the viewer's video is still starting)
        start, end = voiced[-1]
        match = [run for run in speaking if run[0] < end and run[1] > start]
        assert match, f"no open mouth for the voice at {start:.2f}-{end:.2f}: {speaking}"
        assert abs(match[0][0] - start) < 0.25, (start, match[0])  # loaded CI machines jitter
        assert abs(match[-1][1] - end) < 0.25, (end, match[-1])

        # the keyword: one gesture, performed on the face, its banner seen by the user
        (performed,) = await agent.wait_for_log("gesture performed", gesture="laugh_react")
        assert performed["source"] == "user_speech"
        plain = _drawn(Eyes.SMILING, 0, None, BANNER)
        bannered = _drawn(Eyes.SMILING, 0, "laugh_react", BANNER)
        assert bannered > plain + 20
        middle = (plain + bannered) / 2
        shown = [t for t, _, banner in watcher.frames if banner > middle]
        assert shown, "the gesture's banner reached the user"
        # about GESTURE_SECONDS of banner, then the plain face again
        await asyncio.sleep(3)
        gone = next(t for t, _, banner in watcher.frames if t > shown[0] and banner < middle)
        assert 1.4 <= gone - shown[0] <= 2.6, gone - shown[0]  # 2 s, give or take delivery
        assert watcher.frames[-1][2] < middle
    finally:
        await watcher.aclose()


async def test_the_model_gestures_on_the_placeholder_through_its_tool(stack: Stack) -> None:
    """DYNAMICS_FUNCTION_TOOL: the realtime model's call of the gesture tool (scripted) shows
    on the face like a keyword does."""
    stack.realtime.script.transcripts.append("wave at me please")  # no keyword in it
    agent = await stack.start_agent(
        stack.settings(AVATAR_MODE="placeholder", DYNAMICS_FUNCTION_TOOL="true")
    )
    user = await stack.join()
    watcher = Watcher()
    try:
        speaker = await watcher.attach_to_agent(user)
        await user.until(lambda: GREETING in user.final_texts(), within=60)
        await agent.wait_for_log("dynamics on", tool=True)
        stack.realtime.script.replies.extend(
            [FunctionCall(name="perform_gesture", arguments={"gesture": "mini_wave_hello"}), "Hi!"]
        )
        await user.open_mic()
        await user.say(1.0)
        await user.until(lambda: "Hi!" in user.final_texts(speaker), within=60)
        (performed,) = await agent.wait_for_log("gesture performed", gesture="mini_wave_hello")
        assert performed["source"] == "tool"
        plain = _drawn(Eyes.SMILING, 0, None, BANNER)
        bannered = _drawn(Eyes.SMILING, 0, "mini_wave_hello", BANNER)
        middle = (plain + bannered) / 2
        await user.until(lambda: any(b > middle for _, _, b in watcher.frames), within=10)
        (output,) = [
            e["item"]
            for e in stack.realtime.received_of("conversation.item.create")
            if e["item"]["type"] == "function_call_output"
        ]
        assert "performing" in output["output"]
    finally:
        await watcher.aclose()


async def test_at_placeholder_fps_12_the_face_arrives_at_12_frames_a_second_in_step(
    stack: Stack,
) -> None:
    stack.realtime.script.ms_per_char = 120  # "You said: hello." speaks for about 2 s
    agent = await stack.start_agent(stack.settings(AVATAR_MODE="placeholder", PLACEHOLDER_FPS="12"))
    user = await stack.join()
    watcher = Watcher()
    try:
        speaker = await watcher.attach_to_agent(user)
        await user.until(lambda: GREETING in user.final_texts(), within=60)
        await user.open_mic()
        await user.say(1.0)
        await user.until(lambda: "You said: hello." in user.final_texts(speaker), within=60)
        await asyncio.sleep(1.0)  # the reply plays out
        (started,) = agent.logged("placeholder avatar started")
        assert started["fps"] == 12

        start, end = _runs(watcher.voiced)[-1]
        assert end - start > 1.5, (start, end)
        during = [t for t, _, _ in watcher.frames if start <= t <= end]
        rate = len(during) / (end - start)
        assert 9 <= rate <= 14, rate  # every frame moves while it speaks: none is thinned
        threshold = (_drawn(Eyes.OPEN, 0, None, MOUTH) + _drawn(Eyes.OPEN, 7, None, MOUTH)) / 2
        speaking = _runs(watcher.mouth_open_times(threshold), gap=0.3)
        match = [run for run in speaking if run[0] < end and run[1] > start]
        assert match, f"no open mouth for the voice at {start:.2f}-{end:.2f}: {speaking}"
        assert abs(match[0][0] - start) < 0.3, (start, match[0])  # a frame is 83 ms now
        assert abs(match[-1][1] - end) < 0.3, (end, match[-1])
    finally:
        await watcher.aclose()
