"""The command's flags, with bitHuman's example's names, and their environment fallbacks.

A flag wins over its variable; the variables are read like every other service's settings
(environment first, then `.env` in the working directory). Anything wrong is one line on stderr
and exit status 2, and the secret values are never part of that line.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings

from common.settings import SETTINGS, fail, load_settings

PROG = "python -m live_avatar"
DEFAULT_THRESHOLD_DB = -40.0
# the quietest threshold a 16-bit sample can cross (one LSB of full scale is about -90 dBFS)
MIN_THRESHOLD_DB = -120.0


class LiveAvatarSettings(BaseSettings):
    """The environment fallbacks of `--model`, `--api-secret` and `--token`."""

    model_config = SETTINGS

    bithuman_model_path: Path | None = None
    bithuman_api_secret: SecretStr | None = None
    bithuman_runtime_token: SecretStr | None = Field(
        default=None, description="A runtime JWT, instead of BITHUMAN_API_SECRET."
    )

    @field_validator(
        "bithuman_model_path", "bithuman_api_secret", "bithuman_runtime_token", mode="before"
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value


@dataclass(frozen=True)
class Options:
    model: Path | None
    api_secret: SecretStr | None
    token: SecretStr | None
    volume: float
    silent_threshold_db: float
    echo: bool
    insecure: bool
    input_file: Path | None
    output: Path | None


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (no usage block) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        fail(f"{self.prog}: error: {message}")


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def _volume(text: str) -> float:
    value = _finite(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, not {text}")
    return value


def _threshold(text: str) -> float:
    value = _finite(text)
    if not MIN_THRESHOLD_DB <= value <= 0:
        raise argparse.ArgumentTypeError(
            f"must be between {MIN_THRESHOLD_DB:g} and 0 dB (full scale), not {text}"
        )
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Your microphone drives an avatar in a local window (the drawn placeholder "
        "face, or a bitHuman .imx model with --model). Press q in the window to quit.",
    )
    parser.add_argument(
        "--model", type=Path, help="bitHuman .imx model file (env BITHUMAN_MODEL_PATH)"
    )
    parser.add_argument("--api-secret", help="bitHuman API secret (env BITHUMAN_API_SECRET)")
    parser.add_argument(
        "--token", help="bitHuman runtime JWT, instead of the secret (env BITHUMAN_RUNTIME_TOKEN)"
    )
    parser.add_argument(
        "--volume", type=_volume, default=1.0, help="microphone gain multiplier (default 1.0)"
    )
    parser.add_argument(
        "--silent-threshold-db",
        "--slient-threshold-db",  # bitHuman's example spells it so
        dest="silent_threshold_db",
        type=_threshold,
        default=DEFAULT_THRESHOLD_DB,
        help="below this loudness (dBFS) audio counts as silence; 3 s of it stops the "
        f"animation (default {DEFAULT_THRESHOLD_DB:g})",
    )
    parser.add_argument(
        "--echo", action="store_true", help="play the avatar's audio on the speakers"
    )
    parser.add_argument(
        "--insecure", action="store_true", help="skip TLS verification for bitHuman (dev only)"
    )
    parser.add_argument(
        "--input-file", type=Path, help="a WAV (any rate, any channels) instead of the microphone"
    )
    parser.add_argument("--output", type=Path, help="write an MP4 instead of opening a window")
    return parser


def parse(argv: list[str]) -> Options:
    """The options for `argv` (without the program name), or one line and exit 2."""
    args = build_parser().parse_args(argv)
    env = load_settings(LiveAvatarSettings)
    model = args.model if args.model is not None else env.bithuman_model_path
    api_secret = SecretStr(args.api_secret) if args.api_secret else env.bithuman_api_secret
    token = SecretStr(args.token) if args.token else env.bithuman_runtime_token
    if model is not None:
        if not model.is_file():
            fail(f"{PROG}: error: model file not found: {model}")
        if api_secret is None and token is None:
            fail(
                f"{PROG}: error: --model needs --api-secret or --token "
                "(or BITHUMAN_API_SECRET / BITHUMAN_RUNTIME_TOKEN)"
            )
    if args.input_file is not None and not args.input_file.is_file():
        fail(f"{PROG}: error: input file not found: {args.input_file}")
    if args.output is not None and not args.output.parent.is_dir():
        fail(f"{PROG}: error: output folder not found: {args.output.parent}")
    return Options(
        model=model,
        api_secret=api_secret,
        token=token,
        volume=args.volume,
        silent_threshold_db=args.silent_threshold_db,
        echo=args.echo,
        insecure=args.insecure,
        input_file=args.input_file,
        output=args.output,
    )
