"""`python -m agent dev|start|console|connect|download-files`, through livekit-agents' CLI, and
`python -m agent doctor` (agent/doctor.py), which checks the setup without starting a worker."""

from __future__ import annotations

import asyncio
import os
import sys

from agent.dynamics.settings import DynamicsSettings
from agent.settings import AgentSettings, LiveKitCredentials
from common import logs, noise
from common.settings import EXIT_CONFIG_ERROR, fail, json_logs, load_settings
from webhooks.settings import WebhookSettings

NEEDS_SERVER = {"dev", "start", "connect"}
NEEDS_SETTINGS = NEEDS_SERVER | {"console"}
WORKER_COMMANDS = {"dev", "start"}  # console and connect keep livekit's terminal UI
LOOP_BLOCK_WARN_VARIABLE = "LIVEKIT_AGENTS_LOOP_BLOCK_WARN_MS"


def check_credentials(credentials: LiveKitCredentials) -> None:
    """A refused key can never connect: say so now instead of after minutes of retries."""
    from agent.livekit_check import refusal

    refused = asyncio.run(
        refusal(credentials.url, credentials.api_key, credentials.api_secret.get_secret_value())
    )
    if refused:
        fail(f"configuration error: {refused}")


def check_console(settings: AgentSettings) -> None:
    """`console` needs PortAudio (even with --text) and talks to the model at once: without
    either, one line and a non-zero exit, not a page of tracebacks under an open prompt."""
    from agent.doctor import DEFAULT_TIMEOUT, check_openai, check_portaudio

    for line in (check_portaudio(), asyncio.run(check_openai(settings, DEFAULT_TIMEOUT))):
        if line.failed:
            print(line.render(), file=sys.stderr, flush=True)
            raise SystemExit(EXIT_CONFIG_ERROR if line.bad_setting else 1)


def main(argv: list[str]) -> None:
    command = next((arg for arg in argv[1:] if not arg.startswith("-")), None)
    noise.quiet_short_jwt_keys()
    if command == "doctor":
        from agent import doctor

        raise SystemExit(doctor.main(argv[2:]))
    settings: AgentSettings | None = None
    webhook_settings: WebhookSettings | None = None
    if command in NEEDS_SETTINGS and "--help" not in argv:
        settings = load_settings(AgentSettings)
        webhook_settings = load_settings(WebhookSettings)
        credentials = settings.require_livekit() if command in NEEDS_SERVER else None
        settings.check_files()
        load_settings(DynamicsSettings).check_map()
        if credentials is not None:
            check_credentials(credentials)
        if command == "console":
            check_console(settings)
        logs.register_secrets(settings.secret_values() + webhook_settings.secret_values())
        logs.configure_structlog()

    # livekit preloads its local end-of-turn model (~240 MB) into every job process; turns here
    # are ended by the realtime model, so that memory would be spent on nothing
    os.environ.setdefault("LIVEKIT_AGENTS_PRELOAD_LOCAL_INFERENCE", "0")
    if settings is not None and settings.agent_loop_block_warn_ms is not None:
        # livekit reads it from the environment in each job process, which inherits ours
        os.environ[LOOP_BLOCK_WARN_VARIABLE] = f"{settings.agent_loop_block_warn_ms:g}"

    # imported only now, so a configuration error answers before livekit's heavy imports
    from livekit.agents import cli

    from agent.webhook_events import deliver_from_worker
    from agent.worker import build_server

    # --help and download-files need no credentials: build the server from the defaults
    server = build_server(settings or AgentSettings.model_construct())
    if settings is not None and command in WORKER_COMMANDS:
        as_json = json_logs(settings.log_format, settings.app_env)
        # livekit's CLI installs its handler first; ours then formats every line the same way
        server.on("worker_started", lambda: logs.install_formatter(json=as_json))
    if webhook_settings is not None and command in NEEDS_SERVER:
        deliver_from_worker(server, webhook_settings)
    noise.quiet_livekit_cli()
    try:
        cli.run_app(server)
    finally:
        if server.failure is not None:
            url = settings.livekit_url if settings else None
            print(f"worker stopped: {server.failure} (LIVEKIT_URL={url})", file=sys.stderr)
            raise SystemExit(1)


if __name__ == "__main__":
    main(sys.argv)
