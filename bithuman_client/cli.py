"""Command line for bitHuman's REST APIs: `python -m bithuman_client dynamics AGENT_ID`.

Reads BITHUMAN_API_SECRET and BITHUMAN_REST_URL from the environment or `.env`. Exit status:
0 answered (with or without gestures), 1 the API call failed, 2 bad configuration or usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from typing import TextIO

from pydantic import Field, SecretStr, field_validator

from bithuman_client.client import DEFAULT_BASE_URL, BithumanClient, check_base_url
from bithuman_client.errors import BithumanError
from bithuman_client.models import DynamicsCatalog
from common import logs
from common.settings import ServiceSettings, load_settings

EXIT_API_ERROR = 1


class CliSettings(ServiceSettings):
    bithuman_api_secret: SecretStr = Field(
        json_schema_extra={"hint": "copy it from https://imaginex.bithuman.ai/#developer"}
    )
    bithuman_rest_url: str = Field(
        DEFAULT_BASE_URL, json_schema_extra={"hint": f"bitHuman's is {DEFAULT_BASE_URL}"}
    )

    @field_validator("bithuman_rest_url")
    @classmethod
    def _safe_url(cls, value: str) -> str:
        return check_base_url(value)

    @field_validator("bithuman_api_secret")
    @classmethod
    def _not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("it is empty")
        return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bithuman_client", description="Query bitHuman's REST APIs."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    dynamics = commands.add_parser(
        "dynamics", help="list an avatar's gestures and whether it has dynamics"
    )
    dynamics.add_argument("agent_id", help="the avatar's agent id (for example A04MXD0151)")
    dynamics.add_argument("--json", action="store_true", help="print the catalog as JSON")
    return parser


def render_dynamics(agent_id: str, catalog: DynamicsCatalog, out: TextIO) -> None:
    if not catalog.has_dynamics:
        print(f"{agent_id}: no dynamics (status: {catalog.status or 'unknown'})", file=out)
        return
    names = catalog.gesture_names
    print(f"{agent_id}: dynamics {catalog.status or 'available'}, {len(names)} gestures", file=out)
    for name in names:
        print(f"  {name}", file=out)


async def _dynamics(args: argparse.Namespace, settings: CliSettings, out: TextIO) -> int:
    secret = settings.bithuman_api_secret.get_secret_value()
    async with BithumanClient(secret, base_url=settings.bithuman_rest_url) as client:
        try:
            catalog = await client.get_dynamics(args.agent_id)
        except BithumanError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_API_ERROR
    if args.json:
        body = {
            "agent_id": args.agent_id,
            "has_dynamics": catalog.has_dynamics,
            "status": catalog.status,
            "gestures": catalog.gesture_names,
        }
        print(json.dumps(body, ensure_ascii=False), file=out)
    else:
        render_dynamics(args.agent_id, catalog, out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = load_settings(CliSettings)
    # stdout carries the answer (maybe JSON): log lines, warnings only, go to stderr
    logging.getLogger().addHandler(logging.StreamHandler(sys.stderr))
    logs.setup(json=False, level="WARNING", secrets=settings.secret_values())
    return asyncio.run(_dynamics(args, settings, sys.stdout))
