"""The placeholder's `VideoGenerator`: a face whose mouth follows the voice it plays.

livekit's `AvatarRunner` pushes the agent's speech in (`push_audio`) and forwards what the
generator yields to an AV synchronizer, which paces video at the frame rate and audio in real
time. For every 40 ms of speech this generator yields one video frame, whose mouth opening
comes from the loudness of exactly those 40 ms, and that audio. With nothing to say it yields
idle frames (mouth closed, eyes blinking every few seconds), paced the same way.

Keeping them in step: the synchronizer holds the next frames in a short video queue (two frames
with livekit's default 100 ms) that is always full, since idle frames keep it so, while the audio
source is empty whenever the agent is silent. Audio yielded right after its frame would therefore
play about 80 ms before the face shows it. So each 40 ms of audio is yielded `audio_delay_frames`
frames after its video frame: both then play at the same time.

`show_gesture(name)` puts the gesture's name in a banner under the face and closes the eyes in
a smile for `GESTURE_SECONDS`.

Time inside the generator is counted in frames, not read from a clock: what a frame shows
depends only on what came before it, which makes it testable and free of clock reads.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import AsyncIterator

import numpy as np
from livekit import rtc
from livekit.agents.voice.avatar import AudioSegmentEnd, VideoGenerator

from agent.placeholder.art import MOUTH_LEVELS, Eyes, FaceArt, face_art

WIDTH = HEIGHT = 512
FPS = 25
SAMPLE_RATE = 24_000  # what OpenAI Realtime speaks; the session resamples anything else
GESTURE_SECONDS = 2.0
# frames of livekit's AV synchronizer video queue (fps x AvatarRunner's 100 ms queue size)
AUDIO_DELAY_FRAMES = 2

# loudness (RMS, dB of full scale) of the quietest and the loudest mouth opening
QUIET_DB = -42.0
LOUD_DB = -14.0
# how fast the mouth opens and closes, in levels per frame
CLOSING_STEP = 2

# blinks: every 2.4-5.6 s, lid half closed, closed, closed, half closed
BLINK_GAP_FRAMES = (60, 140)
BLINK = (Eyes.HALF, Eyes.CLOSED, Eyes.CLOSED, Eyes.HALF)


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
        audio_delay_frames: int = AUDIO_DELAY_FRAMES,
        seed: int | None = None,
    ) -> None:
        self.art = art if art is not None else face_art(WIDTH, HEIGHT)
        self.fps = fps
        self.sample_rate = sample_rate
        self._chunk = sample_rate // fps  # samples per video frame
        self._gesture_frames = max(1, round(gesture_seconds * fps))
        self._rng = random.Random(seed)
        self._queue: deque[tuple[int, rtc.AudioFrame] | AudioSegmentEnd] = deque()
        self._audio_delay = audio_delay_frames
        # audio (and segment ends) whose video frames are already out
        self._held: deque[rtc.AudioFrame | AudioSegmentEnd] = deque()
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
        self._held.clear()
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
        held = self._held
        while True:
            item = self._queue.popleft() if self._queue else None
            if isinstance(item, AudioSegmentEnd):
                if held:
                    held.append(item)  # it follows the segment's last audio, still held
                else:
                    yield item
                continue
            if item is None:
                yield self.next_frame(None)
                keep = 0  # no new audio: let out what is held, one chunk per frame
            else:
                level, audio = item
                yield self.next_frame(level)
                held.append(audio)
                keep = self._audio_delay
            if sum(isinstance(x, rtc.AudioFrame) for x in held) > keep:
                yield held.popleft()
                while held and isinstance(held[0], AudioSegmentEnd):
                    yield held.popleft()

    def next_frame(self, level: int | None) -> rtc.VideoFrame:
        """The next video frame: speaking at `level`, or idle (None). A picture like the last
        one is the last frame again: nothing is copied for it."""
        state = self.advance(level)
        if state != self._last_state or self._last_frame is None:
            self._last_state = state
            self._last_frame = self.art.compose(*state)
            self.frames_drawn += 1
        return self._last_frame

    def advance(self, level: int | None) -> tuple[Eyes, int, str | None]:
        """Move on one frame; what it shows: eyes, mouth opening, gesture banner."""
        if level is None:
            self._mouth = max(0, self._mouth - CLOSING_STEP)
        else:
            self._mouth = level
            self.speaking_frames += 1
        state = (self._eyes(), self._mouth, self.gesture)
        self.frame_index += 1
        self.video_frames += 1
        return state

    def _blink_gap(self) -> int:
        return self._rng.randint(*BLINK_GAP_FRAMES)

    def _eyes(self) -> Eyes:
        if self.gesture is not None:
            return Eyes.SMILING
        if self._blink_step < 0 and self.frame_index >= self._next_blink:
            self._blink_step = 0
        if self._blink_step >= 0:
            eyes = BLINK[self._blink_step]
            self._blink_step += 1
            if self._blink_step == len(BLINK):
                self._blink_step = -1
                self._next_blink = self.frame_index + self._blink_gap()
            return eyes
        return Eyes.OPEN

    @property
    def state(self) -> tuple[Eyes, int, str | None] | None:
        """What the last frame showed: eyes, mouth opening, gesture banner."""
        return self._last_state
