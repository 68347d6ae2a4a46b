"""`python -m token_server [serve]` runs the HTTP service; `mint` prints one token.

serve: in development the server starts without LiveKit credentials (so a frontend can be
wired up first) and `/token` answers 503 until they are set; in production a missing credential
stops start-up with exit status 2, because a replica that cannot mint should never look healthy.
mint: needs the credentials; prints a token and the server URL for the Agents Playground.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from aiohttp import web

from common import logs
from common.settings import fail, load_settings
from token_server.app import create_app
from token_server.minting import Grant, TokenMinter
from token_server.policy import GrantPolicy, is_valid_room_name, new_identity
from token_server.settings import TokenServerSettings, require_client_auth, require_livekit
from token_server.state import SERVICES
from token_server.webclient import is_built

log = logs.get_logger("token_server")


def serve(settings: TokenServerSettings) -> None:
    logs.setup(json=settings.json_logs, level=settings.log_level, secrets=settings.secret_values())
    if settings.production:
        require_livekit(settings)
        require_client_auth(settings)
    elif not settings.livekit_configured:
        log.warning(
            "LiveKit settings missing: /token answers 503 until they are set",
            missing=settings.missing_livekit_variables(),
        )
    app = create_app(settings)
    minter = app[SERVICES].minter
    if minter is not None and minter.weak_secret:
        log.warning("LIVEKIT_API_SECRET is shorter than 32 bytes: fine only for a dev server")
    if not settings.api_key.get_secret_value():
        log.warning(
            "/token needs no API key: anyone who reaches this server can mint tokens",
            anonymous_opt_in=settings.allow_anonymous,
        )
    broad = settings.broad_trusted_proxies()
    if broad:
        log.warning(
            "TOKEN_SERVER_TRUSTED_PROXIES holds very wide networks: clients inside them choose "
            "the address they are rate-limited as",
            networks=[str(network) for network in broad],
        )
    web_root = settings.web_root()
    if web_root is not None and not is_built(web_root):
        log.warning(
            "the web client is not built, so / answers 404: run scripts/build-web.sh "
            "(or set TOKEN_SERVER_WEB_CLIENT=false)",
            directory=str(web_root),
        )
    log.info(
        "token server starting",
        host=settings.host,
        port=settings.port,
        environment=settings.app_env,
        client_auth="api key" if settings.api_key.get_secret_value() else "none",
        cors_origins=settings.allowed_origins(),
        agent_name=settings.agent_name or None,
        rate_limit_per_minute=settings.rate_limit_per_minute,
        read_timeout_s=settings.read_timeout_seconds,
        web_client=str(web_root) if web_root is not None else "off",
    )
    # No access log: requests are counted in /metrics and summarised per interval (summary.py).
    web.run_app(app, host=settings.host, port=settings.port, access_log=None, print=None)


def mint(settings: TokenServerSettings, room: str, name: str) -> None:
    require_livekit(settings)
    if not is_valid_room_name(room):
        fail("--room must be 1-64 letters, digits, '-' or '_'")
    grant = Grant(
        room=room,
        identity=new_identity(),
        name=name,
        agents=GrantPolicy.from_settings(settings).default_agents,
    )
    minted = TokenMinter.from_settings(settings).mint(grant)
    expires = datetime.fromtimestamp(minted.expires_at, UTC).isoformat(timespec="seconds")
    print(f"server URL: {settings.livekit_url}")
    print(f"token:      {minted.jwt}")
    dispatch = ", ".join(a.agent_name for a in grant.agents) or "none"
    print(f"room {grant.room}, identity {grant.identity}, agent {dispatch}, expires {expires}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m token_server", description="LiveKit token server for bitHuman avatars."
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the HTTP server (the default)")
    minting = commands.add_parser(
        "mint", help="print a token and server URL to paste into the Agents Playground"
    )
    minting.add_argument("--room", required=True, help="room to join")
    minting.add_argument("--name", default="", help="display name of the participant")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    settings = load_settings(TokenServerSettings)
    if args.command == "mint":
        mint(settings, args.room, args.name)
    else:
        serve(settings)


if __name__ == "__main__":
    main()
