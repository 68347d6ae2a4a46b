"""`--output`: the avatar's frames and audio as an MP4 (H.264, or MPEG-4 part 2 where PyAV has
no H.264 encoder, plus AAC), one video frame per frame time and the audio kept on the same clock.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from livekit import rtc

from live_avatar.audio import SAMPLE_RATE


def video_codec() -> str:
    try:
        av.codec.Codec("libx264", "w")
    except av.codec.codec.UnknownCodecError:
        return "mpeg4"
    return "libx264"


class Mp4Writer:
    """Streams are created at the first frame, when the picture's size is known."""

    def __init__(self, path: Path, fps: int) -> None:
        self.path = path
        self.fps = fps
        self.frames = 0
        self._samples_per_frame = SAMPLE_RATE // fps
        self._audio_samples = 0
        self._container: Any = av.open(str(path), mode="w", format="mp4")
        self._video: Any = None
        self._audio: Any = None

    def _open_streams(self, width: int, height: int) -> None:
        codec = video_codec()
        self._video = self._container.add_stream(codec, rate=self.fps)
        self._video.width, self._video.height = width, height
        self._video.pix_fmt = "yuv420p"
        self._video.time_base = Fraction(1, self.fps)
        if codec == "libx264":
            self._video.options = {"preset": "veryfast", "crf": "18"}
        else:
            self._video.bit_rate = 2_000_000
        self._audio = self._container.add_stream("aac", rate=SAMPLE_RATE)
        self._audio.layout = "mono"

    def write(self, video: rtc.VideoFrame, audio: np.ndarray) -> None:
        """One frame and the audio under it; audio short of the frame's time is padded with
        silence so the two streams end together."""
        if self._video is None:
            self._open_streams(video.width, video.height)
        out = self._picture(video)
        out.pts = self.frames
        out.time_base = Fraction(1, self.fps)
        self._mux(self._video.encode(out))
        self.frames += 1
        self._write_audio(audio)
        missing = self.frames * self._samples_per_frame - self._audio_samples
        if missing > 0:
            self._write_audio(np.zeros(missing, np.int16))

    @staticmethod
    def _picture(video: rtc.VideoFrame) -> av.VideoFrame:
        if video.type == rtc.VideoBufferType.I420:
            planes = np.frombuffer(video.data, np.uint8).reshape(video.height * 3 // 2, -1)
            return av.VideoFrame.from_ndarray(planes, format="yuv420p")
        rgb = video.convert(rtc.VideoBufferType.RGB24)
        pixels = np.frombuffer(rgb.data, np.uint8).reshape(rgb.height, rgb.width, 3)
        return av.VideoFrame.from_ndarray(pixels, format="rgb24")

    def _write_audio(self, samples: np.ndarray) -> None:
        if not samples.size:
            return
        frame = av.AudioFrame.from_ndarray(
            samples.astype(np.int16).reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._audio_samples
        frame.time_base = Fraction(1, SAMPLE_RATE)
        self._audio_samples += samples.size
        self._mux(self._audio.encode(frame))

    def _mux(self, packets: Any) -> None:
        for packet in packets:
            self._container.mux(packet)

    def close(self) -> None:
        if self._video is not None:
            self._mux(self._video.encode(None))
            self._mux(self._audio.encode(None))
        self._container.close()

    @property
    def seconds(self) -> float:
        return self.frames / self.fps
