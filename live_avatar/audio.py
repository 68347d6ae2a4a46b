"""Audio in: 24 kHz mono int16 in 10 ms chunks, its loudness, the gain and the silence rule."""

from __future__ import annotations

import math

import numpy as np

SAMPLE_RATE = 24_000
CHUNK_SAMPLES = 240  # 10 ms at 24 kHz, as bitHuman's example reads the microphone
SILENCE_TIMEOUT = 3.0  # seconds below the threshold that stop the animation


def level_db(samples: np.ndarray) -> float:
    """RMS loudness of int16 samples in dB of full scale (-inf for digital silence)."""
    if samples.size == 0:
        return -math.inf
    values = samples.astype(np.float64) / 32768.0
    rms = math.sqrt(float(np.mean(values * values)))
    return 20.0 * math.log10(rms) if rms > 0 else -math.inf


def apply_volume(samples: np.ndarray, volume: float) -> np.ndarray:
    """`samples` times `volume`, clipped to int16 rather than wrapped around."""
    if volume == 1.0:
        return samples
    scaled = np.rint(samples.astype(np.float32) * volume)
    clipped: np.ndarray = np.clip(scaled, -32768, 32767).astype(np.int16)
    return clipped


class SilenceGate:
    """Whether the avatar should animate: from the first chunk at or above the threshold until
    `timeout` seconds of audio in a row stayed below it. Time is counted in samples, so the
    rule is the same for live and file input."""

    def __init__(
        self,
        threshold_db: float,
        *,
        timeout: float = SILENCE_TIMEOUT,
        sample_rate: int = SAMPLE_RATE,
    ) -> None:
        self.threshold_db = threshold_db
        self._timeout_samples = round(timeout * sample_rate)
        self._quiet_samples = 0
        self.active = False

    def update(self, samples: np.ndarray) -> bool:
        """Take the next chunk; whether the avatar animates for it."""
        if level_db(samples) >= self.threshold_db:
            self.active = True
            self._quiet_samples = 0
        elif self.active:
            self._quiet_samples += samples.size
            if self._quiet_samples >= self._timeout_samples:
                self.active = False
        return self.active
