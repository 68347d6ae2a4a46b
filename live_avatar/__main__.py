"""`python -m live_avatar [flags]`: see docs/live-microphone-avatar.md."""

from __future__ import annotations

import asyncio
import contextlib
import sys

from live_avatar.options import parse
from live_avatar.run import run


def main(argv: list[str]) -> None:
    options = parse(argv)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: stop, the MP4 is finished first
        asyncio.run(run(options))


if __name__ == "__main__":
    main(sys.argv[1:])
