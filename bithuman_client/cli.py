"""Command line for bitHuman's REST APIs and our self-hosted Agent Context API.

    python -m bithuman_client speak AGENT_CODE MESSAGE [--room ROOM]
    python -m bithuman_client add-context AGENT_CODE TEXT [--room ROOM] [--type add_context|speak]
    python -m bithuman_client agent generate [--prompt P] [--image F|URL] [--video ..] [--audio ..]
                                             [--wait]
    python -m bithuman_client agent status AGENT_ID [--wait]
    python -m bithuman_client dynamics AGENT_ID
    python -m bithuman_client dynamics generate AGENT_ID [--duration S] [--model M]

Settings (environment, then `.env` in the working directory): BITHUMAN_API_SECRET and
BITHUMAN_REST_URL for bitHuman's API; speak / add-context go to CONTEXT_API_URL with
CONTEXT_API_SECRET when CONTEXT_API_URL is set (a self-hosted `python -m context_api`), else to
bitHuman's API, which serves them at the same base URL. Every command takes `--json`.
Exit statuses: see `bithuman_client.exits`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings

from bithuman_client import exits
from bithuman_client.client import DEFAULT_BASE_URL, check_base_url
from bithuman_client.commands import PROG, Run, Target, run_command
from bithuman_client.media import MediaError
from common import logs
from common.settings import SETTINGS, fail, load_settings, secret_values

_SECRET_HINT = "copy it from https://imaginex.bithuman.ai/#developer"
_CONTEXT_SECRET_HINT = "the api-secret your python -m context_api was started with"


class CliSettings(BaseSettings):
    model_config = SETTINGS

    # Each secret is needed only by the commands that call its API: checked per command.
    bithuman_api_secret: SecretStr = SecretStr("")
    bithuman_rest_url: str = DEFAULT_BASE_URL
    context_api_url: str = ""
    context_api_secret: SecretStr = SecretStr("")

    @field_validator("bithuman_rest_url")
    @classmethod
    def _safe_url(cls, value: str) -> str:
        return check_base_url(value)

    @field_validator("context_api_url")
    @classmethod
    def _safe_context_url(cls, value: str) -> str:
        return check_base_url(value) if value.strip() else ""

    def hosted(self) -> Target:
        return Target(
            self.bithuman_rest_url,
            _secret(self.bithuman_api_secret, "BITHUMAN_API_SECRET", _SECRET_HINT),
        )

    def context(self) -> Target:
        """Where speak / add-context go: the self-hosted API if configured, else bitHuman's."""
        if not self.context_api_url:
            return self.hosted()
        secret = _secret(self.context_api_secret, "CONTEXT_API_SECRET", _CONTEXT_SECRET_HINT)
        return Target(self.context_api_url, secret)

    def secret_values(self) -> list[str]:
        return secret_values(self)


def _secret(value: SecretStr, variable: str, hint: str) -> str:
    secret = value.get_secret_value().strip()
    if not secret:
        fail(f"configuration error: {variable} is not set ({hint})")
    return secret


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line (argparse prints the whole usage first), exit status 2."""

    def error(self, message: str) -> NoReturn:
        print(f"usage error: {self.prog}: {message} (see --help)", file=sys.stderr)
        raise SystemExit(exits.USAGE)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value < 1e6:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds: {text!r}")
    return value


def _common() -> _Parser:
    common = _Parser(add_help=False)
    common.add_argument("--json", action="store_true", help="print the answer as one JSON object")
    common.add_argument(
        "--timeout",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="per request (default 10; uploads get more time by their size)",
    )
    return common


def _waiting() -> _Parser:
    waiting = _Parser(add_help=False)
    waiting.add_argument(
        "--wait",
        action="store_true",
        help="poll until ready or failed, with progress on stderr; Ctrl-C stops waiting only",
    )
    waiting.add_argument(
        "--poll-interval",
        type=_seconds,
        default=2.0,
        metavar="SECONDS",
        help="first poll delay; each next one 1.5 times longer, at most 15 s (default 2)",
    )
    waiting.add_argument(
        "--wait-timeout",
        type=_seconds,
        default=1800.0,
        metavar="SECONDS",
        help="give up waiting after this long, the job keeps running (default 1800)",
    )
    return waiting


def _room_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--room", metavar="ROOM_ID", help="only this room (default: every room)")
    parser.add_argument(
        "--idempotency-key",
        metavar="KEY",
        help="the same key on a retry is acted on once (our self-hosted API honours it)",
    )


def parser() -> argparse.ArgumentParser:
    common, waiting = _common(), _waiting()
    top = _Parser(prog=PROG, description="Drive bitHuman's REST APIs and the Agent Context API.")
    commands = top.add_subparsers(dest="command", required=True, parser_class=_Parser)

    speak = commands.add_parser(
        "speak", parents=[common], help="make an agent say a message now, word for word"
    )
    speak.add_argument("agent_code")
    speak.add_argument("message", help="what to say; - reads it from stdin")
    _room_options(speak)

    context = commands.add_parser(
        "add-context", parents=[common], help="give an agent silent knowledge"
    )
    context.add_argument("agent_code")
    context.add_argument("context", help="the knowledge; - reads it from stdin")
    context.add_argument(
        "--type",
        dest="context_type",
        choices=("add_context", "speak"),
        default="add_context",
        help="add_context (default), or speak: bitHuman's unified form of speak",
    )
    _room_options(context)

    agent = commands.add_parser("agent", help="generate an agent, or see its status")
    agent_commands = agent.add_subparsers(dest="action", required=True, parser_class=_Parser)
    generate = agent_commands.add_parser(
        "generate",
        parents=[common, waiting],
        help="start generating an agent (costs credits)",
        description="Files become base64 data (size-checked first); http(s) URLs pass through.",
    )
    generate.add_argument("--prompt", help="the agent's system prompt")
    generate.add_argument("--image", metavar="FILE_OR_URL", help="up to 10 MB")
    generate.add_argument("--video", metavar="FILE_OR_URL", help="up to 100 MB")
    generate.add_argument("--audio", metavar="FILE_OR_URL", help="voice sample, up to 50 MB")
    status = agent_commands.add_parser(
        "status", parents=[common, waiting], help="an agent's generation status"
    )
    status.add_argument("agent_id")

    dynamics = commands.add_parser(
        "dynamics",
        parents=[common],
        help="an avatar's gestures; `dynamics generate AGENT_ID` starts making them",
    )
    dynamics.add_argument("agent_id", help="the avatar's agent id (for example A04MXD0151)")
    return top


def dynamics_generate_parser() -> argparse.ArgumentParser:
    """`dynamics generate`: its own parser, since `dynamics AGENT_ID` takes any word."""
    parser = _Parser(
        prog=f"{PROG} dynamics generate",
        parents=[_common()],
        description="Start generating an agent's gestures (costs credits).",
    )
    parser.add_argument("agent_id")
    parser.add_argument("--image-url", help="source image (default: the agent's own)")
    parser.add_argument("--duration", type=_seconds, help="seconds per motion (bitHuman: 5)")
    parser.add_argument("--model", help="quality, speed or auto (bitHuman's default: quality)")
    parser.set_defaults(command="dynamics-generate")
    return parser


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    if list(argv[:2]) == ["dynamics", "generate"]:
        return dynamics_generate_parser().parse_args(argv[2:])
    return parser().parse_args(argv)


async def execute(run: Run, settings: CliSettings) -> int:
    """The command `run` names, from argument checks to the exit status."""
    try:
        prepared = run.prepare(settings)
    except MediaError as exc:
        print(f"usage error: {exc}", file=run.err)
        return exits.USAGE
    return await run_command(run, prepared)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    settings = load_settings(CliSettings)
    # stdout carries the answer (maybe JSON): log lines, warnings only, go to stderr
    logging.getLogger().addHandler(logging.StreamHandler(sys.stderr))
    logs.setup(json=False, level="WARNING", secrets=settings.secret_values())
    run = Run(args, sys.stdout, sys.stderr, secrets=settings.secret_values())
    try:
        return asyncio.run(execute(run, settings))
    except KeyboardInterrupt:  # asyncio.run cancelled the command first: the client is closed
        return run.interrupted()
