"""structlog on top of the standard library: one pipeline for our lines and everyone else's.

Our code logs through structlog; each call becomes a stdlib record whose key/values are record
attributes, so it crosses livekit-agents' job-process log queue intact and picks up the job's
room and job id there. The process that writes to stdout formats every record (ours, livekit's,
aiohttp's) with one `ProcessorFormatter`: JSON lines in production, a readable console otherwise.
Known secret values are masked wherever they appear, keys that name a secret are dropped, and
credential-shaped text (query parameters such as `?access_token=`, `Authorization: Bearer ...`,
JWTs) is masked in messages, values and formatted tracebacks alike.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from typing import Any

import structlog
from structlog.typing import EventDict, Processor

# keys whose values are secrets ("scoped_token", "api_key", "jwt"), not counts ("input_tokens")
_SECRET_KEY = re.compile(
    r"secret|password|passwd|api[_-]?key|authorization|cookie|signature|credential"
    r"|(^|[_-])(token|jwt)$",
    re.I,
)
# Credentials inside free text: exception messages, URLs, reprs of headers.
_SECRET_TEXT = re.compile(
    r"""
    (?P<lead>
        # a query parameter: ?access_token=..., &token=..., ;jwt=...
        [?&;](?:access_token|refresh_token|id_token|token|jwt|api_?key|key|secret
               |client_secret|password|signature|sig)=
        # a field named like a secret: "api-secret": "...", password=..., Authorization: Bearer x
      | \b(?:api[-_]?secret|api[-_]?key|authorization|access_token|client_secret|password|passwd)
        ["']?\s*[:=]\s*["']?(?:bearer\s+)?
      | \bbearer\s+
    )
    [^\s"'&#,;})\]]+
    # a JWT anywhere (LiveKit and bitHuman tokens): header.payload.signature
  | \beyJ[\w-]{6,}\.[\w-]{6,}\.[\w-]*
    """,
    re.I | re.X,
)
_MASK = "***"
_secrets: set[str] = set()
# keys holding objects that later processors format (they are scrubbed once formatted)
_FORMATTED_LATER = frozenset({"exc_info", "_record", "_from_structlog"})


def register_secrets(values: Iterable[str]) -> None:
    """Mask these values in every log line from now on (short values would mask noise)."""
    _secrets.update(v for v in values if v and len(v) >= 6)


def _mask_text(match: re.Match[str]) -> str:
    lead = match.group("lead")
    return f"{lead}{_MASK}" if lead else _MASK


def scrub_text(value: str) -> str:
    """`value` with every registered secret and every credential-shaped substring masked."""
    for secret in _secrets:
        if secret in value:
            value = value.replace(secret, _MASK)
    return _SECRET_TEXT.sub(_mask_text, value)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {k: _MASK if _SECRET_KEY.search(str(k)) else _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_scrub(v) for v in value)
    return value


def redact(_: Any, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask secret-named keys and any registered secret value."""
    for key in list(event_dict):
        if key in _FORMATTED_LATER:
            continue
        if key != "event" and _SECRET_KEY.search(key):
            event_dict[key] = _MASK
        else:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


def redact_formatted(_: Any, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor, after `format_exc_info`: mask secrets in the formatted traceback
    (an exception's message is only text once it has been formatted)."""
    for key in ("exception", "stack", "stack_info"):
        value = event_dict.get(key)
        if isinstance(value, str):
            event_dict[key] = scrub_text(value)
    return event_dict


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        redact,
    ]


def configure_structlog() -> None:
    """Route structlog calls into stdlib logging as records with key/value attributes."""
    structlog.configure(
        # the level check first: a disabled call then costs a comparison, not the whole chain
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.render_to_log_kwargs,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def _drop_noise(_: Any, __: str, event_dict: EventDict) -> EventDict:
    # `message` is a copy of the event that records forwarded from job processes carry
    for key in ("color_message", "level_number", "message"):
        event_dict.pop(key, None)
    return event_dict


def _livekit_keys(_: Any, __: str, event_dict: EventDict) -> EventDict:
    """Name the fields as livekit-agents' JSON formatter does, so that the lines it writes
    before ours takes over (worker start-up) and ours share one schema."""
    event_dict["message"] = event_dict.pop("event", "")
    if "logger" in event_dict:
        event_dict["name"] = event_dict.pop("logger")
    if "level" in event_dict:
        event_dict["level"] = str(event_dict["level"]).upper()
    return event_dict


def formatter(*, json: bool) -> logging.Formatter:
    """The stdout formatter: JSON lines (`json=True`) or a readable console line."""
    renderers: list[Processor] = (
        [_livekit_keys, structlog.processors.JSONRenderer(ensure_ascii=False)]
        if json
        else [structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())]
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.stdlib.add_logger_name,
            structlog.stdlib.add_log_level,
            structlog.stdlib.ExtraAdder(),
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _drop_noise,
            structlog.processors.format_exc_info,
            redact_formatted,
            *renderers,
        ],
    )


def install_formatter(*, json: bool, level: int | str | None = None) -> None:
    """Format every record of this process with our formatter (adds a handler if none)."""
    root = logging.getLogger()
    fmt = formatter(json=json)
    if not root.handlers:
        root.addHandler(logging.StreamHandler(sys.stdout))
    for handler in root.handlers:
        handler.setFormatter(fmt)
    if level is not None:
        root.setLevel(level)


def setup(*, json: bool, level: int | str = "INFO", secrets: Iterable[str] = ()) -> None:
    """Everything a standalone service needs: structlog, our formatter, secret masking."""
    register_secrets(secrets)
    configure_structlog()
    install_formatter(json=json, level=level)


def describe(error: object) -> str:
    """`Type: message` (just `Type` when there is no message), plus the provider's code and
    message when the error carries a response body (OpenAI and livekit API errors do)."""
    text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    body = getattr(error, "body", None)
    code, message = getattr(body, "code", None), getattr(body, "message", None)
    if code and message:
        text += f" ({code}: {message})"
    elif code or message:
        text += f" ({code or message})"
    return text


def get_logger(name: str, **initial: Any) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name, **initial)
    return logger
