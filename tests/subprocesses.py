"""Helpers for tests that run one of our services as a subprocess."""

from __future__ import annotations

import asyncio
import io
import signal
import sys
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

import pexpect

T = TypeVar("T")


async def unless_exited(process: asyncio.subprocess.Process, waiting: Awaitable[T]) -> T:
    """`waiting`'s result, or a failure as soon as the worker process dies first."""
    result = asyncio.ensure_future(waiting)
    exited = asyncio.ensure_future(process.wait())
    try:
        await asyncio.wait({result, exited}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        exited.cancel()
    if not result.done():
        result.cancel()
        raise AssertionError(f"worker exited early with status {process.returncode}")
    return result.result()


async def terminate(process: asyncio.subprocess.Process) -> int:
    """SIGTERM (what Cloud Run and Fargate send), then the exit status after the drain."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(30):
            return await process.wait()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise


def spawn_console(
    env: dict[str, str], cwd: Path, *, columns: int
) -> tuple[pexpect.spawn, io.StringIO]:
    """`python -m agent console --text` in a pseudo-terminal, and what it prints."""
    child = pexpect.spawn(
        sys.executable,
        ["-m", "agent", "console", "--text"],
        cwd=str(cwd),
        env=env,
        encoding="utf-8",
        timeout=60,
        dimensions=(40, columns),
    )
    child.logfile_read = printed = io.StringIO()
    return child, printed
