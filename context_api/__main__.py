"""`python -m context_api`: serve the Agent Context API (settings from the environment and
`.env`; a missing or bad value stops start-up with one line and exit status 2)."""

from __future__ import annotations

import argparse

from aiohttp import web

from common import logs
from common.settings import load_settings
from context_api.app import create_app
from context_api.settings import ContextApiSettings

log = logs.get_logger("context_api")


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(
        prog="python -m context_api",
        description="bitHuman-compatible Agent Context API (speak / add-context) for live "
        "LiveKit sessions of our agent.",
    ).parse_args(argv)
    settings = load_settings(ContextApiSettings)
    logs.setup(json=settings.json_logs, level=settings.log_level, secrets=settings.secret_values())
    app = create_app(settings)
    log.info(
        "context API starting",
        host=settings.host,
        port=settings.port,
        livekit_url=settings.livekit_url,
        delivery=settings.delivery,
        agent_codes=settings.agent_codes or "any",
        room_timeout_s=settings.room_timeout_seconds,
    )
    web.run_app(app, host=settings.host, port=settings.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
