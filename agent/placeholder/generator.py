"""The placeholder's `VideoGenerator`: a face whose mouth follows the voice it plays.

livekit's `AvatarRunner` pushes the agent's speech in (`push_audio`) and forwards what the
generator yields to an AV synchronizer, which paces video at the frame rate and audio in real
time. For every 40 ms of speech this generator yields one video frame, whose mouth opening
comes from the loudness of exactly those 40 ms, and that audio. With nothing to say it yields
idle frames (mouth closed, eyes blinking every few seconds), paced the same way.

Keeping them in step: each 40 ms of audio is yielded right after its video frame. The
synchronizer holds the next frames in a video queue (livekit's 100 ms, two frames at 25 fps)
and shows one every 40 ms; the audio source plays what it is given in order. When speech
starts after idle frames were thinned, the runner has let the queue drain first (`resync`), so
the first frames go in at once with their audio: picture and sound start together, and from
then on the audio source holds as much audio as the queue holds frames (80 ms), which plays
each chunk as its frame is shown. That lead matters: fed one chunk per frame just in time (as
an earlier version did, to hold audio back for the queue), the source ran dry whenever a chunk
came a little late, and the user heard gaps, about 5% of each reply (benchmarks/capacity.py
counts them). Speech that starts while the queue is full (during a blink) plays up to two
frames ahead of the mouth. `PLACEHOLDER_FPS` sets another frame rate: frames of 1/fps s.

Idle thinning (`idle_refresh_frames`, on in the job): while nothing moves (no voice, no blink,
no gesture), the same picture is sent only every few frames instead of 25 times a second, since
every frame sent is a frame WebRTC encodes, the largest cost of a session; the generator then
keeps time itself, and `before_resume` lets the runner restart its frame clock before motion
resumes (it would otherwise log that it fell behind schedule).

`show_gesture(name)` puts the gesture's name in a banner under the face and closes the eyes in
a smile for `GESTURE_SECONDS`.

Time inside the generator is counted in frames: what a frame shows depends only on what came
before it (and a seeded random blink schedule), which makes it testable.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable

import numpy as np
from livekit import rtc
from livekit.agents.voice.avatar import AudioSegmentEnd, VideoGenerator

from agent.placeholder.art import MOUTH_LEVELS, Eyes, FaceArt, face_art

WIDTH = HEIGHT = 512
FPS = 25
SAMPLE_RATE = 24_000  # what OpenAI Realtime speaks; the session resamples anything else
GESTURE_SECONDS = 2.0
# the frame rates at which a frame holds a whole number of samples (at others sound and picture
# would drift apart), from 10 up: 10, 12, 15, 16, 20, 24, 25, 30
FRAME_RATES = tuple(fps for fps in range(10, 31) if SAMPLE_RATE % fps == 0)
# in the job, an unchanged idle picture is sent every 0.4 s (every 10th frame at 25 fps)
IDLE_REFRESH_SECONDS = 0.4

# loudness (RMS, dB of full scale) of the quietest and the loudest mouth opening
QUIET_DB = -42.0
LOUD_DB = -14.0
# how fast the mouth closes, in levels per 40 ms
CLOSING_STEP = 2

# blinks: every 2.4-5.6 s, lid half closed, closed, closed, half closed (40 ms each)
BLINK_GAP_SECONDS = (2.4, 5.6)
BLINK = (Eyes.HALF, Eyes.CLOSED, Eyes.CLOSED, Eyes.HALF)


def idle_refresh_every(fps: int) -> int:
    """In frames, how often an unchanged idle picture is sent again at `fps`."""
    return max(1, round(IDLE_REFRESH_SECONDS * fps))


def mouth_level(samples: np.ndarray) -> int:
    """The mouth opening (0 closed .. MOUTH_LEVELS - 1) for int16 samples' loudness."""
    if samples.size == 0:
        return 0
    values = samples.astype(np.float32)
    rms = float(np.sqrt(np.mean(values * values))) / 32768.0
    if rms <= 0.0:
        return 0
    db = 20.0 * float(np.log10(rms))
    if db <= QUIET_DB:
        return 0
    share = min(1.0, (db - QUIET_DB) / (LOUD_DB - QUIET_DB))
    return max(1, round(share * (MOUTH_LEVELS - 1)))


class PlaceholderVideoGenerator(VideoGenerator):
    """Frames of the placeholder face for the audio pushed in (mono 24 kHz expected; other rates
    and channel counts are converted)."""

    def __init__(
        self,
        *,
        art: FaceArt | None = None,
        fps: int = FPS,
        sample_rate: int = SAMPLE_RATE,
        gesture_seconds: float = GESTURE_SECONDS,
        idle_refresh_frames: int | None = None,
        seed: int | None = None,
    ) -> None:
        if fps not in FRAME_RATES:
            raise ValueError(f"fps {fps}: must be one of {', '.join(map(str, FRAME_RATES))}")
        self.art = art if art is not None else face_art(WIDTH, HEIGHT)
        self.fps = fps
        self.sample_rate = sample_rate
        self._chunk = sample_rate // fps  # samples per video frame
        self._gesture_frames = max(1, round(gesture_seconds * fps))
        self._rng = random.Random(seed)
        self._queue: deque[tuple[int, rtc.AudioFrame] | AudioSegmentEnd] = deque()
        # motion keeps its speed in seconds whatever the frame rate
        self._closing_step = max(1, round(CLOSING_STEP * FPS / fps))
        self._blink_gap_frames = (
            round(BLINK_GAP_SECONDS[0] * fps),
            round(BLINK_GAP_SECONDS[1] * fps),
        )
        self._blink = BLINK[:: max(1, round(FPS / fps))]
        self._pending = np.zeros(0, dtype=np.int16)
        self._resampler: rtc.AudioResampler | None = None
        self._resampler_rate = sample_rate
        # what the picture shows, advanced once per video frame
        self.frame_index = 0
        self._mouth = 0
        self._next_blink = self._blink_gap()
        self._blink_step = -1
        self._gesture: str | None = None
        self._gesture_until = 0
        self._last_state: tuple[Eyes, int, str | None] | None = None
        self._last_frame: rtc.VideoFrame | None = None
        # idle thinning: an unchanged idle picture is sent only every `idle_refresh_frames`
        self._refresh = idle_refresh_frames
        self._skipped = 0
        self._tick_at: float | None = None
        self.before_resume: Callable[[], Awaitable[None]] | None = None
        """Awaited before the first frame after skipped ones (the runner's clock restarts)."""
        # counters for tests, logs and benchmarks
        self.video_frames = 0
        self.speaking_frames = 0
        self.frames_drawn = 0
        self.audio_seconds_in = 0.0
        self.clears = 0

    # --- audio in -------------------------------------------------------------------------------

    async def push_audio(self, frame: rtc.AudioFrame | AudioSegmentEnd) -> None:
        if isinstance(frame, AudioSegmentEnd):
            if self._resampler is not None:
                for out in self._resampler.flush():
                    self._append(out)
                self._resampler = None
            self._cut(final=True)
            self._queue.append(frame)
            return
        self.audio_seconds_in += frame.duration
        for out in self._to_output_rate(frame):
            self._append(out)
        self._cut(final=False)

    def _to_output_rate(self, frame: rtc.AudioFrame) -> list[rtc.AudioFrame]:
        if frame.num_channels != 1:
            samples = np.frombuffer(frame.data, dtype=np.int16).reshape(-1, frame.num_channels)
            mono = samples.mean(axis=1).astype(np.int16)
            frame = rtc.AudioFrame(mono.tobytes(), frame.sample_rate, 1, len(mono))
        if frame.sample_rate == self.sample_rate:
            return [frame]
        if self._resampler is None or self._resampler_rate != frame.sample_rate:
            self._resampler = rtc.AudioResampler(frame.sample_rate, self.sample_rate)
            self._resampler_rate = frame.sample_rate
        return self._resampler.push(frame)

    def _append(self, frame: rtc.AudioFrame) -> None:
        samples = np.frombuffer(frame.data, dtype=np.int16)
        self._pending = np.concatenate([self._pending, samples]) if self._pending.size else samples

    def _cut(self, *, final: bool) -> None:
        """Queue whole video frames' worth of audio, each with its mouth opening; at the end of
        a segment the rest is padded with silence, so video and audio keep one rate."""
        size = self._chunk
        pending = self._pending
        start = 0
        while len(pending) - start >= size:
            self._enqueue(pending[start : start + size])
            start += size
        rest = pending[start:]
        if final and rest.size:
            padded = np.zeros(size, dtype=np.int16)
            padded[: rest.size] = rest
            self._enqueue(padded)
            rest = rest[:0]
        self._pending = rest.copy() if rest.size else np.zeros(0, dtype=np.int16)

    def _enqueue(self, samples: np.ndarray) -> None:
        audio = rtc.AudioFrame(samples.tobytes(), self.sample_rate, 1, samples.size)
        self._queue.append((mouth_level(samples), audio))

    def clear_buffer(self) -> None:
        """Interrupted: drop every sample not yet played; the mouth closes over a few frames."""
        self._queue.clear()
        self._pending = np.zeros(0, dtype=np.int16)
        self._resampler = None
        self.clears += 1

    # --- gestures -------------------------------------------------------------------------------

    def show_gesture(self, name: str) -> None:
        """Show `name` in the banner, eyes smiling, for the next `gesture_seconds`."""
        self._gesture = name
        self._gesture_until = self.frame_index + self._gesture_frames

    @property
    def gesture(self) -> str | None:
        """The gesture on screen now, if any."""
        return self._gesture if self.frame_index < self._gesture_until else None

    # --- frames out -----------------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[rtc.VideoFrame | rtc.AudioFrame | AudioSegmentEnd]:
        return self._stream()

    async def _stream(self) -> AsyncIterator[rtc.VideoFrame | rtc.AudioFrame | AudioSegmentEnd]:
        # paced by the consumer: AvatarRunner's AV synchronizer blocks while its queues are full
        while True:
            item = self._queue.popleft() if self._queue else None
            if isinstance(item, AudioSegmentEnd):
                yield item
                continue
            if item is None:
                state = self.advance(None)
                if self._skippable(state):
                    await self._tick()  # nothing to show: no frame, no encoding
                    continue
                await self._resume()
                yield self._render(state)
                continue
            level, audio = item
            state = self.advance(level)
            await self._resume()
            yield self._render(state)
            yield audio

    def _skippable(self, state: tuple[Eyes, int, str | None]) -> bool:
        """An idle picture like the last one sent, with a refresh not yet due."""
        if self._refresh is None or self._last_frame is None:
            return False
        if state != self._last_state or self._skipped + 1 >= self._refresh:
            return False
        self._skipped += 1
        return True

    async def _tick(self) -> None:
        """Wait one frame's time, on a schedule of our own while no frame paces us."""
        now = asyncio.get_running_loop().time()
        if self._tick_at is None or self._tick_at < now - 1.0 / self.fps:
            self._tick_at = now
        self._tick_at += 1.0 / self.fps
        await asyncio.sleep(self._tick_at - now)

    async def _resume(self) -> None:
        if not self._skipped:
            return
        self._skipped = 0
        self._tick_at = None
        if self.before_resume is not None:
            await self.before_resume()

    def next_frame(self, level: int | None) -> rtc.VideoFrame:
        """The next video frame: speaking at `level`, or idle (None)."""
        return self._render(self.advance(level))

    def _render(self, state: tuple[Eyes, int, str | None]) -> rtc.VideoFrame:
        """The frame for `state`: a picture like the last one is the last frame again, with
        nothing copied for it."""
        self.video_frames += 1
        if state != self._last_state or self._last_frame is None:
            self._last_state = state
            self._last_frame = self.art.compose(*state)
            self.frames_drawn += 1
        return self._last_frame

    def advance(self, level: int | None) -> tuple[Eyes, int, str | None]:
        """Move on one frame; what it shows: eyes, mouth opening, gesture banner."""
        if level is None:
            self._mouth = max(0, self._mouth - self._closing_step)
        else:
            self._mouth = level
            self.speaking_frames += 1
        state = (self._eyes(), self._mouth, self.gesture)
        self.frame_index += 1
        return state

    def _blink_gap(self) -> int:
        return self._rng.randint(*self._blink_gap_frames)

    def _eyes(self) -> Eyes:
        if self.gesture is not None:
            return Eyes.SMILING
        if self._blink_step < 0 and self.frame_index >= self._next_blink:
            self._blink_step = 0
        if self._blink_step >= 0:
            eyes = self._blink[self._blink_step]
            self._blink_step += 1
            if self._blink_step == len(self._blink):
                self._blink_step = -1
                self._next_blink = self.frame_index + self._blink_gap()
            return eyes
        return Eyes.OPEN

    @property
    def state(self) -> tuple[Eyes, int, str | None] | None:
        """What the last frame showed: eyes, mouth opening, gesture banner."""
        return self._last_state
