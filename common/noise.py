"""Warnings and notices that tell the user nothing they can act on, filtered by exact class or
message so that every other warning still shows."""

from __future__ import annotations

import logging
import warnings

from jwt.warnings import InsecureKeyLengthWarning

# livekit's notices about its own CLI, which `python -m agent` wraps on purpose
_CLI_LOG_NOTICES = (
    "dev mode is deprecated",
    "in-process auto-reload has been removed",
)
_CLI_WARNINGS = (
    "the built-in Python CLI is deprecated",
    "Invoking the download-files command via your agent script is deprecated",
)


def quiet_short_jwt_keys() -> None:
    """PyJWT warns on every token signed or checked with an HMAC key under 32 bytes, which
    `livekit-server --dev`'s `secret` is. The services say so once at start-up instead."""
    warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)


def _not_a_cli_notice(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith(_CLI_LOG_NOTICES)


def quiet_livekit_cli() -> None:
    """Drop livekit's deprecation notices for the commands `python -m agent` wraps."""
    for message in _CLI_WARNINGS:
        warnings.filterwarnings("ignore", message, DeprecationWarning)
    logging.getLogger("livekit.agents").addFilter(_not_a_cli_notice)

    from livekit.agents.cli import _legacy
    from rich.console import RenderableType
    from rich.style import Style

    class QuietConsole(_legacy.AgentsConsole):
        """livekit's terminal UI without the banners that say its commands are deprecated."""

        def print(
            self, child: RenderableType, *, tag: str = "", tag_style: Style | None = None
        ) -> None:
            download_notice = isinstance(child, str) and _CLI_WARNINGS[1] in child
            if tag == "Deprecated" or download_notice:
                return
            super().print(child, tag=tag, tag_style=tag_style)

    # the CLI takes its one console from here (AgentsConsole.get_instance)
    if _legacy.AgentsConsole._instance is None:
        _legacy.AgentsConsole._instance = QuietConsole()
