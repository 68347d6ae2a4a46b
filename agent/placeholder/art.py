"""The placeholder face, drawn once per process and kept as ready I420 pieces.

Every frame of the placeholder is the same face with three things that change: the eyes (open,
half closed, closed, smiling), the mouth (closed, then wider openings for louder speech) and an
optional banner naming the gesture being performed. Each of these lives in its own horizontal
band of the picture, so a frame is the base picture with up to three bands of rows replaced:
`FaceArt.compose` is a few memory copies, with no drawing and no colour conversion per frame.

The drawing happens once per process (`face_art()`, called by the worker's prewarm) with Pillow
at twice the size and scaled down, for smooth edges, then converted to I420 by livekit's own
converter, the format the video source takes without converting again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from functools import lru_cache

import numpy as np
from livekit import rtc
from PIL import Image, ImageDraw, ImageFont

MOUTH_LEVELS = 8
"""Mouth openings: 0 is closed (a smile), MOUTH_LEVELS - 1 the widest."""

SUPERSAMPLE = 2

# the bands, as fractions of the height (rounded to even rows: I420 halves them for colour)
EYES_BAND = (0.31, 0.53)
MOUTH_BAND = (0.57, 0.78)
BANNER_BAND = (0.85, 0.98)

BACKGROUND_TOP = (28, 36, 58)
BACKGROUND_BOTTOM = (52, 70, 104)
HAIR = (58, 40, 32)
SKIN = (241, 198, 166)
SKIN_SHADE = (226, 176, 142)
CHEEK = (238, 140, 140, 90)
SHIRT = (76, 132, 170)
EYE_WHITE = (250, 250, 248)
IRIS = (60, 92, 120)
PUPIL = (22, 24, 30)
LINE = (70, 46, 40)
MOUTH_INSIDE = (120, 36, 48)
TONGUE = (222, 112, 118)
TEETH = (250, 248, 240)
BANNER = (255, 214, 92)
BANNER_TEXT = (40, 30, 20)


class Eyes(IntEnum):
    OPEN = 0
    HALF = 1
    CLOSED = 2
    SMILING = 3  # closed in a smile, brows raised: the gesture reaction


def _even(value: float) -> int:
    return round(value / 2) * 2


@dataclass(frozen=True)
class Band:
    """Rows [top, bottom) of the Y plane (even bounds), and their pixels in each plane."""

    top: int
    bottom: int
    y: np.ndarray
    u: np.ndarray
    v: np.ndarray


class FaceArt:
    """The pre-rendered pieces of one face size; `compose` builds a frame from them."""

    def __init__(self, width: int = 512, height: int = 512) -> None:
        if width % 2 or height % 2:
            raise ValueError("width and height must be even (I420)")
        self.width = width
        self.height = height
        self._painter = _Painter(width, height)
        base = self._painter.face(Eyes.OPEN, 0)
        self._base = _i420(base)
        self.eyes = [self._band(self._painter.face(eyes, 0), EYES_BAND) for eyes in Eyes]
        self.mouths = [
            self._band(self._painter.face(Eyes.OPEN, level), MOUTH_BAND)
            for level in range(MOUTH_LEVELS)
        ]
        self._banners: dict[str, Band] = {}

    def banner(self, label: str) -> Band:
        """The banner band showing `label` (drawn on first use, then kept)."""
        band = self._banners.get(label)
        if band is None:
            band = self._band(self._painter.face(Eyes.OPEN, 0, banner=label), BANNER_BAND)
            self._banners[label] = band
        return band

    def prepare_banners(self, labels: Iterable[str]) -> None:
        """Draw these banners now, then let go of the drawing surface (4 MB at twice the
        size); a banner asked for later is drawn from scratch."""
        for label in labels:
            self.banner(label)
        self._painter.forget()

    def _band(self, image: Image.Image, band: tuple[float, float]) -> Band:
        top, bottom = _even(band[0] * self.height), _even(band[1] * self.height)
        y, u, v = self._planes(_i420(image))
        return Band(
            top,
            bottom,
            y[top:bottom].copy(),
            u[top // 2 : bottom // 2].copy(),
            v[top // 2 : bottom // 2].copy(),
        )

    def _planes(self, data: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        w, h = self.width, self.height
        luma = w * h
        chroma = luma // 4
        return (
            data[:luma].reshape(h, w),
            data[luma : luma + chroma].reshape(h // 2, w // 2),
            data[luma + chroma :].reshape(h // 2, w // 2),
        )

    def compose(self, eyes: Eyes, mouth: int, banner: str | None = None) -> rtc.VideoFrame:
        """A new I420 frame: the base with the eyes, mouth and banner bands pasted in."""
        data = self._base.copy()
        y, u, v = self._planes(data)
        bands = [self.eyes[eyes], self.mouths[mouth]]
        if banner is not None:
            bands.append(self.banner(banner))
        for band in bands:
            y[band.top : band.bottom] = band.y
            u[band.top // 2 : band.bottom // 2] = band.u
            v[band.top // 2 : band.bottom // 2] = band.v
        return rtc.VideoFrame(self.width, self.height, rtc.VideoBufferType.I420, data.data)

    def draw(self, eyes: Eyes, mouth: int, banner: str | None = None) -> Image.Image:
        """The same picture as an RGBA image, drawn now."""
        return self._painter.face(eyes, mouth, banner=banner)


def _i420(image: Image.Image) -> np.ndarray:
    rgba = image.convert("RGBA")
    frame = rtc.VideoFrame(rgba.width, rgba.height, rtc.VideoBufferType.RGBA, rgba.tobytes())
    converted = frame.convert(rtc.VideoBufferType.I420)
    return np.frombuffer(bytes(converted.data), dtype=np.uint8).copy()


class _Painter:
    """Draws the face in coordinates that are fractions of the picture's size."""

    def __init__(self, width: int, height: int, supersample: int = SUPERSAMPLE) -> None:
        self.width = width
        self.height = height
        self.scale = supersample
        self._font = ImageFont.load_default(size=max(10, height * 30 // 512) * supersample)
        self._still: Image.Image | None = None

    def _box(self, cx: float, cy: float, rx: float, ry: float) -> tuple[float, float, float, float]:
        w, h = self.width * self.scale, self.height * self.scale
        return ((cx - rx) * w, (cy - ry) * h, (cx + rx) * w, (cy + ry) * h)

    def _px(self, value: float) -> int:
        return max(1, round(value * self.width * self.scale))

    def face(
        self, eyes: Eyes, mouth: int, *, banner: str | None = None, from_scratch: bool = False
    ) -> Image.Image:
        """The face at the output size; `from_scratch` redraws the parts that never change
        too, instead of starting from a copy of them."""
        if from_scratch or self._still is None:
            still = self._draw_still()
            if not from_scratch:
                self._still = still
        else:
            still = self._still
        image = still.copy()
        draw = ImageDraw.Draw(image)
        self._eyes(draw, eyes)
        self._mouth(draw, mouth)
        if banner is not None:
            self._banner(draw, banner)
        return image.reduce(self.scale) if self.scale > 1 else image

    def forget(self) -> None:
        self._still = None

    def _draw_still(self) -> Image.Image:
        """Background, body, head, cheeks and nose: what every frame shares."""
        w, h = self.width * self.scale, self.height * self.scale
        gradient = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
        top, bottom = np.array(BACKGROUND_TOP), np.array(BACKGROUND_BOTTOM)
        rows = (top + (bottom - top) * gradient).astype(np.uint8)  # (h, 3)
        pixels = np.repeat(rows[:, None, :], w, axis=1)
        image = Image.fromarray(pixels, "RGB").convert("RGBA")
        draw = ImageDraw.Draw(image)

        draw.ellipse(self._box(0.5, 1.06, 0.40, 0.22), fill=SHIRT)  # shoulders
        draw.rectangle(self._box(0.5, 0.84, 0.07, 0.06), fill=SKIN_SHADE)  # neck
        draw.ellipse(self._box(0.5, 0.41, 0.34, 0.33), fill=HAIR)
        for side in (-1, 1):
            draw.ellipse(self._box(0.5 + side * 0.30, 0.50, 0.045, 0.065), fill=SKIN_SHADE)
        draw.ellipse(self._box(0.5, 0.50, 0.30, 0.34), fill=SKIN)
        # fringe: the hair's lower edge across the forehead
        draw.chord(self._box(0.5, 0.30, 0.31, 0.17), 180, 360, fill=HAIR)

        overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
        ImageDraw.Draw(overlay).ellipse(self._box(0.34, 0.58, 0.05, 0.03), fill=CHEEK)
        ImageDraw.Draw(overlay).ellipse(self._box(0.66, 0.58, 0.05, 0.03), fill=CHEEK)
        image = Image.alpha_composite(image, overlay)
        draw = ImageDraw.Draw(image)

        draw.arc(self._box(0.5, 0.535, 0.025, 0.02), 20, 160, fill=LINE, width=self._px(0.006))
        return image

    def _eyes(self, draw: ImageDraw.ImageDraw, eyes: Eyes) -> None:
        line = self._px(0.009)
        brow_y = 0.375 if eyes is Eyes.SMILING else 0.39
        for side in (-1, 1):
            cx, cy = 0.5 + side * 0.115, 0.455
            draw.arc(self._box(cx, brow_y + 0.02, 0.055, 0.025), 200, 340, fill=HAIR, width=line)
            if eyes is Eyes.SMILING:
                draw.arc(self._box(cx, cy + 0.012, 0.045, 0.03), 200, 340, fill=LINE, width=line)
                continue
            if eyes is Eyes.CLOSED:
                draw.arc(self._box(cx, cy - 0.01, 0.045, 0.025), 20, 160, fill=LINE, width=line)
                continue
            draw.ellipse(self._box(cx, cy, 0.048, 0.036), fill=EYE_WHITE)
            draw.ellipse(self._box(cx, cy + 0.004, 0.024, 0.027), fill=IRIS)
            draw.ellipse(self._box(cx, cy + 0.004, 0.012, 0.014), fill=PUPIL)
            draw.ellipse(self._box(cx + 0.008, cy - 0.006, 0.006, 0.006), fill=EYE_WHITE)
            if eyes is Eyes.HALF:  # the upper lid down to the middle of the eye
                draw.rectangle(self._box(cx, cy - 0.022, 0.052, 0.022), fill=SKIN)
                x0, y0, x1, _ = self._box(cx, cy, 0.05, 0)
                draw.line([(x0, y0), (x1, y0)], fill=LINE, width=line)

    def _mouth(self, draw: ImageDraw.ImageDraw, level: int) -> None:
        cx, cy = 0.5, 0.665
        if level == 0:
            draw.arc(
                self._box(cx, cy - 0.02, 0.07, 0.035), 25, 155, fill=LINE, width=self._px(0.01)
            )
            return
        opening = level / (MOUTH_LEVELS - 1)
        rx, ry = 0.055 + 0.025 * opening, 0.012 + 0.05 * opening
        box = self._box(cx, cy, rx, ry)
        draw.ellipse(box, fill=MOUTH_INSIDE, outline=LINE, width=self._px(0.006))
        if opening > 0.3:  # tongue, then upper teeth for the wider openings
            draw.chord(self._box(cx, cy + ry * 0.55, rx * 0.6, ry * 0.5), 180, 360, fill=TONGUE)
            draw.chord(self._box(cx, cy - ry * 0.75, rx * 0.75, ry * 0.35), 0, 180, fill=TEETH)

    def _banner(self, draw: ImageDraw.ImageDraw, label: str) -> None:
        w, h = self.width * self.scale, self.height * self.scale
        text = label.replace("_", " ")
        left, top, right, bottom = draw.textbbox((0, 0), text, font=self._font)
        pad_x, pad_y = 0.04 * w, 0.018 * h
        box_w = min(0.92 * w, right - left + 2 * pad_x)
        box_h = bottom - top + 2 * pad_y
        x0, y0 = (w - box_w) / 2, 0.915 * h - box_h / 2
        draw.rounded_rectangle((x0, y0, x0 + box_w, y0 + box_h), radius=box_h / 2, fill=BANNER)
        draw.text((w / 2, 0.915 * h), text, font=self._font, fill=BANNER_TEXT, anchor="mm")


@lru_cache(maxsize=4)
def face_art(width: int = 512, height: int = 512) -> FaceArt:
    """The process's face of this size (drawn on the first call: about 0.1-0.3 s)."""
    return FaceArt(width, height)
