"""System packages some tests need; `scripts/system-packages.sh` installs them where it can.

Without one, its tests skip and say why. In CI (`CI` set, as `.ci/run` sets it) they fail
instead: CI installs everything, so a missing package there is a broken setup, not a reason.
"""

from __future__ import annotations

import ctypes.util
import importlib.util
import os
import shutil
from typing import NoReturn

import pytest

INSTALL = "scripts/system-packages.sh installs it (root or sudo)"


def unavailable(reason: str) -> NoReturn:
    """Skip with `reason`; fail in CI."""
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def require(missing: str | None) -> None:
    """Skip (fail in CI) with `missing` as the reason, unless it is None."""
    if missing is not None:
        unavailable(missing)


def portaudio_missing() -> str | None:
    """The lookup `sounddevice` makes at import (console mode imports it, even with --text)."""
    if ctypes.util.find_library("portaudio") is None:
        return f"PortAudio is not installed (console mode needs libportaudio2): {INSTALL}"
    return None


def module_missing(name: str, package: str) -> str | None:
    if importlib.util.find_spec(name) is None:
        return f"Python's {name} is not installed (Debian package {package}): {INSTALL}"
    return None


def program_missing(name: str, package: str) -> str | None:
    if shutil.which(name) is None:
        return f"{name} is not installed (Debian package {package}): {INSTALL}"
    return None


@pytest.fixture(name="portaudio")
def portaudio_fixture() -> None:
    """For tests that start `console`: they skip without PortAudio (fail in CI)."""
    require(portaudio_missing())
