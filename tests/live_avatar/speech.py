"""A deterministic speech-like WAV: voiced bursts (a 130 Hz voice with harmonics, its loudness
rising and falling with syllables) between pauses of faint noise."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

# (seconds, voiced?): a pause shorter than the 3 s silence rule, and a tail longer than it
LAYOUT = ((0.6, False), (1.6, True), (0.8, False), (1.6, True), (3.6, False))
SECONDS = sum(length for length, _ in LAYOUT)


def voiced_spans() -> list[tuple[float, float]]:
    spans, start = [], 0.0
    for length, voiced in LAYOUT:
        if voiced:
            spans.append((start, start + length))
        start += length
    return spans


def silent_spans() -> list[tuple[float, float]]:
    spans, start = [], 0.0
    for length, voiced in LAYOUT:
        if not voiced:
            spans.append((start, start + length))
        start += length
    return spans


Layout = tuple[tuple[float, bool], ...]


def speech_like(rate: int, layout: Layout = LAYOUT, seed: int = 11) -> np.ndarray:
    """Mono float samples in [-1, 1]."""
    rng = np.random.default_rng(seed)
    pieces = []
    for length, voiced in layout:
        t = np.arange(round(length * rate)) / rate
        if voiced:
            voice = sum(np.sin(2 * np.pi * 130 * k * t) / k for k in range(1, 8))
            syllables = np.abs(np.sin(np.pi * 4.5 * t)) ** 0.7  # 9 syllables a second
            pieces.append(0.25 * voice * syllables)
        else:
            pieces.append(rng.normal(0.0, 0.0005, t.size))  # about -66 dBFS
    return np.clip(np.concatenate(pieces), -1.0, 1.0)


def write_wav(path: Path, rate: int = 16_000, channels: int = 2, layout: Layout = LAYOUT) -> Path:
    mono = (speech_like(rate, layout) * 32767).astype(np.int16)
    frames = np.repeat(mono[:, None], channels, axis=1)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames.tobytes())
    return path
