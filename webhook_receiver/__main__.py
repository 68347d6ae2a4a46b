"""`python -m webhook_receiver`: the example receiver, and its dead letters.

    python -m webhook_receiver                 serve (the default)
    python -m webhook_receiver dead-letters    print failed handler runs as JSON lines
    python -m webhook_receiver requeue         give parked dead letters a fresh set of attempts

Handlers come from WEBHOOK_RECEIVER_HANDLERS (`module:attribute` naming a Router); without it
every event is logged, which is handy to watch an agent's webhooks during development.
"""

from __future__ import annotations

import argparse
import json
import sys

from aiohttp import web

from common import logs
from common.settings import fail, load_settings
from webhook_receiver.app import create_app
from webhook_receiver.router import ALL_EVENTS, ReceivedEvent, Router, load_router
from webhook_receiver.settings import ReceiverSettings
from webhook_receiver.store import ReceiverStore
from webhooks.clock import SYSTEM_CLOCK

log = logs.get_logger("webhook_receiver")


_MAX_LOGGED_TEXT = 200


def logging_router() -> Router:
    """Log each event's type and fields; message text is left out of the log on purpose."""
    router = Router()

    @router.on(ALL_EVENTS)
    async def log_event(event: ReceivedEvent) -> None:
        # `data` is nested, not spread into the call: its field names are the sender's, and
        # one named like an argument (`key`, `event`) would break the call.
        data = {_text(k): _loggable(v) for k, v in event.data.items() if k != "message"}
        log.info(
            "webhook event",
            event_type=event.event_type,
            agent_id=_loggable(event.agent_id),
            key=event.key,
            data=data,
        )

    return router


def _loggable(value: object) -> object:
    """A field as the log shows it: scalars as they are, text shortened and made encodable
    (a lone surrogate cannot be written to a UTF-8 stream), containers by their size."""
    if isinstance(value, str):
        return _text(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, list | dict):
        return f"<{type(value).__name__} of {len(value)}>"
    return f"<{type(value).__name__}>"


def _text(value: str) -> str:
    return value[:_MAX_LOGGED_TEXT].encode("utf-8", "replace").decode("utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m webhook_receiver",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "command", nargs="?", default="serve", choices=["serve", "dead-letters", "requeue"]
    )
    parser.add_argument("--limit", type=int, default=100, help="dead letters to print")
    args = parser.parse_args(argv)
    settings = load_settings(ReceiverSettings)
    logs.setup(json=settings.json_logs, level=settings.log_level, secrets=settings.secret_values())
    if args.command == "serve":
        serve(settings)
        return
    store = ReceiverStore.open(settings.store_path)
    try:
        if args.command == "requeue":
            print(f"requeued {store.requeue(SYSTEM_CLOCK.now())} dead letters")
        else:
            for letter in store.dead_letters(args.limit):
                line = {
                    "event_key": letter.event_key,
                    "event_type": letter.event_type,
                    "handler": letter.handler,
                    "attempts": letter.attempts,
                    "error": letter.error,
                    "failed_at": letter.failed_at,
                    "parked": letter.next_at is None,
                }
                sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
    finally:
        store.close()


def serve(settings: ReceiverSettings) -> None:
    router = logging_router()
    if settings.handlers:
        try:
            router = load_router(settings.handlers)
        except ValueError as exc:
            fail(f"configuration error: WEBHOOK_RECEIVER_HANDLERS is invalid: {exc}")
    app = create_app(settings, router)
    log.info(
        "webhook receiver listening", host=settings.host, port=settings.port, path=settings.path
    )
    web.run_app(app, host=settings.host, port=settings.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
