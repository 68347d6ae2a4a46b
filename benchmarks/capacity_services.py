"""The stand-ins of benchmarks/capacity.py, each in its own process (pinned by the caller).

    python benchmarks/capacity_services.py realtime --ms-per-char 50 --transcript "..."
    python benchmarks/capacity_services.py bithuman --livekit-url ws://... (cloud avatar)

Prints one JSON line with its URLs, then serves until SIGTERM. The realtime stand-in paces its
replies in real time (one 100 ms audio delta every 100 ms, as heard); the stand-ins' records of
every event are pruned, since a run of many sessions for minutes would otherwise grow them by
the whole input audio.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devkit.bithuman_api import BithumanStub  # noqa: E402
from devkit.bithuman_avatar import AvatarStandIn  # noqa: E402
from devkit.openai_realtime import FakeRealtimeServer, Script  # noqa: E402

CHUNK_MS = 100
PRUNE_EVERY_S = 5.0


async def prune_realtime(server: FakeRealtimeServer) -> None:
    while True:
        await asyncio.sleep(PRUNE_EVERY_S)
        server.connections = [c for c in server.connections if not c.ws.closed]
        for conn in server.connections:
            conn.received.clear()
            conn.sent.clear()


async def prune_avatar(avatar: AvatarStandIn) -> None:
    while True:
        await asyncio.sleep(PRUNE_EVERY_S)
        avatar.sessions = [s for s in avatar.sessions if s.state not in ("ended", "failed")]


async def serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with contextlib.AsyncExitStack() as stack:
        if args.service == "realtime":
            script = Script(
                default_transcript=args.transcript,
                ms_per_char=args.ms_per_char,
                chunk_ms=CHUNK_MS,
                delta_delay_s=CHUNK_MS / 1000,
            )
            realtime = await stack.enter_async_context(FakeRealtimeServer(script))
            pruning = asyncio.create_task(prune_realtime(realtime))
            urls = {"base_url": realtime.base_url}
        else:
            avatar = AvatarStandIn()
            stub = await stack.enter_async_context(BithumanStub(avatar=avatar))
            pruning = asyncio.create_task(prune_avatar(avatar))
            urls = {
                "secret": stub.secret,
                "session_request_url": stub.session_request_url,
                "url": stub.url,
            }
        print(json.dumps(urls), flush=True)
        await stop.wait()
        pruning.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("service", choices=("realtime", "bithuman"))
    parser.add_argument("--ms-per-char", type=int, default=50)
    parser.add_argument("--transcript", default="hello")
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
