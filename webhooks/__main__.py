"""`python -m webhooks`: the long-lived deliverer, and the outbox's dead letters.

    python -m webhooks                 deliver until SIGTERM/SIGINT (the default)
    python -m webhooks dead-letters    print dead-lettered deliveries as JSON lines
    python -m webhooks requeue         give every dead letter a fresh set of attempts

Job processes live only as long as their conversation, so retries that outlast a job (or
events left behind by a crashed job) need a deliverer that stays up: this one, run next to the
worker (same host for the SQLite outbox, anywhere for Redis). With WEBHOOK_DELIVER_PORT it
serves `GET /healthz` and `GET /metrics`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from urllib.parse import urlsplit

from aiohttp import web
from prometheus_client import REGISTRY

from common import logs
from common.settings import fail, load_settings
from common.web import HANDLER_ARGS, add_status_routes, error_middleware
from webhooks.clock import SYSTEM_CLOCK
from webhooks.deliverer import Deliverer
from webhooks.outbox import open_outbox
from webhooks.settings import WebhookSettings

log = logs.get_logger("webhooks")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m webhooks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "command", nargs="?", default="run", choices=["run", "dead-letters", "requeue"]
    )
    parser.add_argument("--limit", type=int, default=100, help="dead letters to print")
    parser.add_argument("--body", action="store_true", help="print dead letters' bodies too")
    args = parser.parse_args(argv)
    settings = load_settings(WebhookSettings)
    logs.setup(json=settings.json_logs, level=settings.log_level, secrets=settings.secret_values())
    if args.command == "dead-letters":
        print_dead_letters(settings, limit=args.limit, with_body=args.body)
    elif args.command == "requeue":
        store = open_outbox(settings)
        try:
            print(f"requeued {store.requeue_dead(SYSTEM_CLOCK.now())} dead letters")
        finally:
            store.close()
    else:
        if not settings.enabled:
            fail("configuration error: WEBHOOK_URLS is not set (the receivers to deliver to)")
        asyncio.run(serve(settings))


def print_dead_letters(settings: WebhookSettings, *, limit: int, with_body: bool) -> None:
    store = open_outbox(settings)
    try:
        letters = store.dead_letters(limit)
    finally:
        store.close()
    for letter in letters:
        line: dict[str, object] = {
            "event_id": letter.event_id,
            "event_type": letter.event_type,
            "destination": urlsplit(letter.url).hostname,  # paths may carry tokens
            "attempts": letter.attempts,
            "last_status": letter.last_status,
            "last_error": letter.last_error,
            "dead_at": letter.dead_at,
        }
        if with_body:
            line["body"] = letter.body.decode("utf-8", "replace")
        sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")


async def serve(settings: WebhookSettings) -> None:
    deliverer = await Deliverer.open(settings)
    deliverer.start()
    runner: web.AppRunner | None = None
    if settings.deliver_port is not None:
        runner = web.AppRunner(_status_app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, settings.deliver_host, settings.deliver_port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log.info(
        "webhook deliverer running",
        destinations=len(settings.urls),
        outbox="redis" if settings.redis_url else str(settings.outbox_path),
    )
    await stop.wait()
    log.info("webhook deliverer stopping")
    await deliverer.aclose()
    if runner is not None:
        await runner.cleanup()


def _status_app() -> web.Application:
    app = web.Application(middlewares=[error_middleware], handler_args=HANDLER_ARGS)
    add_status_routes(app, REGISTRY)
    return app


if __name__ == "__main__":
    main()
