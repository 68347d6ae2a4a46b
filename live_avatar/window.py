"""The local window, through Tk (the OpenCV wheel here is headless, without `imshow`).

Tk is pumped from the asyncio loop (`run`), so frames, audio and the window share one thread.
`q` (or closing the window) quits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from typing import Any

from livekit import rtc
from PIL import Image

PUMP_SECONDS = 0.01


class NoDisplay(Exception):
    """No window can open here: the message is the one line to print."""


class Window:
    def __init__(self, title: str) -> None:
        if sys.platform.startswith("linux") and not (
            os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
        ):
            raise NoDisplay("no display to open a window on (DISPLAY is not set); use --output")
        try:
            import tkinter
        except ImportError:
            raise NoDisplay(
                "no window: Python's tkinter is missing (Debian/Ubuntu: sudo apt-get install "
                "python3-tk); use --output"
            ) from None
        try:
            self._root = tkinter.Tk()
        except tkinter.TclError as error:
            raise NoDisplay(f"no window: {error}; use --output") from None
        self._tcl_error = tkinter.TclError
        self._root.title(title)
        self._root.configure(background="black")
        self._label = tkinter.Label(self._root, background="black")
        self._label.pack()
        self._root.bind("<KeyPress-q>", lambda _: self.close())
        self._root.bind("<KeyPress-Q>", lambda _: self.close())
        self._root.protocol("WM_DELETE_WINDOW", self.close)
        self._photo: Any = None
        self.closed = asyncio.Event()

    def show(self, video: rtc.VideoFrame) -> None:
        from PIL import ImageTk

        if self.closed.is_set():
            return
        rgb = video.convert(rtc.VideoBufferType.RGB24)
        image = Image.frombuffer("RGB", (rgb.width, rgb.height), bytes(rgb.data), "raw")
        self._photo = ImageTk.PhotoImage(image)  # Tk shows it only while a reference is held
        self._label.configure(image=self._photo)

    async def run(self) -> None:
        """Handle the window's events until it is closed."""
        while not self.closed.is_set():
            try:
                self._root.update()
            except self._tcl_error:  # destroyed under us
                self.closed.set()
                break
            await asyncio.sleep(PUMP_SECONDS)

    def close(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        with contextlib.suppress(self._tcl_error):
            self._root.destroy()
