"""Settings of the webhook sender (emitter and deliverer): `WEBHOOK_*` plus the shared REDIS_URL.

Webhooks are off while WEBHOOK_URLS is empty. Destinations must be HTTPS unless
WEBHOOK_ALLOW_HTTP is set for development.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode

from common.settings import (
    SETTINGS,
    AppEnv,
    LogFormat,
    LogLevel,
    RedisUrl,
    json_logs,
    secret_values,
    split_commas,
)
from webhooks.payloads import EVENT_TYPES, KNOWN_EVENT_TYPES
from webhooks.signatures import BITHUMAN_HEADER, ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER

SLOW_RETRY_FIRST_DELAY = 60.0
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Headers the deliverer owns; letting settings replace them would break verification.
_RESERVED_HEADERS = {
    name.lower()
    for name in (
        BITHUMAN_HEADER,
        ID_HEADER,
        TIMESTAMP_HEADER,
        SIGNATURE_HEADER,
        "content-type",
        "content-length",
        "host",
    )
}


class WebhookSettings(BaseSettings):
    model_config = SETTINGS

    log_format: LogFormat = "auto"
    log_level: LogLevel = Field("INFO", validation_alias="LOG_LEVEL")
    app_env: AppEnv = "development"
    allow_http: bool = Field(
        False,
        validation_alias="WEBHOOK_ALLOW_HTTP",
        description="Allow plain http:// destinations (development only).",
    )
    urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias="WEBHOOK_URLS",
        description="Destination URLs, comma-separated; webhooks are off when empty.",
        json_schema_extra={"hint": "your receiver's HTTPS endpoint, e.g. https://example.com/hook"},
    )
    secret: SecretStr | None = Field(
        None,
        validation_alias="WEBHOOK_SECRET",
        description="HMAC secret shared with the receivers.",
        json_schema_extra={"hint": "any long random string, e.g. `openssl rand -hex 32`"},
    )
    headers: Annotated[dict[str, SecretStr], NoDecode] = Field(
        default_factory=dict,
        validation_alias="WEBHOOK_HEADERS",
        description="Extra request headers as a JSON object.",
        json_schema_extra={"hint": 'a JSON object, e.g. {"Authorization": "Bearer ..."}'},
    )
    events: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(EVENT_TYPES),
        validation_alias="WEBHOOK_EVENTS",
        description="Event types to send, comma-separated (context.command only if named).",
    )
    agent_id: str | None = Field(
        None,
        validation_alias="WEBHOOK_AGENT_ID",
        description="agent_id in every event; defaults to the agent code or name in use.",
    )
    retry_delays: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [1.0, 5.0, 30.0],
        validation_alias="WEBHOOK_RETRY_DELAYS",
        description="Seconds before each fast retry (bitHuman's schedule), comma-separated.",
    )
    slow_retry_for: float = Field(
        24 * 3600.0,
        ge=0,
        validation_alias="WEBHOOK_SLOW_RETRY_FOR",
        description=(
            "Seconds to keep retrying after the fast retries, on a backoff from 1 minute up to"
            " WEBHOOK_SLOW_RETRY_MAX_DELAY; 0: dead-letter right after the fast retries."
        ),
    )
    slow_retry_max_delay: float = Field(
        3600.0,
        ge=SLOW_RETRY_FIRST_DELAY,
        validation_alias="WEBHOOK_SLOW_RETRY_MAX_DELAY",
        description="Longest wait between two slow retries, in seconds.",
    )
    dead_letter_retention: float = Field(
        14 * 24 * 3600.0,
        ge=0,
        validation_alias="WEBHOOK_DEAD_LETTER_RETENTION",
        description="Seconds a dead letter is kept before it is deleted (0: forever).",
    )
    timeout: float = Field(
        30.0, gt=0, validation_alias="WEBHOOK_TIMEOUT", description="Per-attempt timeout (s)."
    )
    concurrency: int = Field(
        16, ge=1, le=1024, validation_alias="WEBHOOK_CONCURRENCY", description="Requests in flight."
    )
    poll_interval: float = Field(
        0.25,
        gt=0,
        validation_alias="WEBHOOK_POLL_INTERVAL",
        description="How often a deliverer looks for events written by other processes (s).",
    )
    outbox_path: Path = Field(
        Path("webhook-outbox.db"),
        validation_alias="WEBHOOK_OUTBOX_PATH",
        description="SQLite outbox file (ignored when REDIS_URL is set).",
    )
    redis_url: RedisUrl = None  # the outbox in Redis instead of SQLite
    redis_prefix: str = Field("webhooks", min_length=1, validation_alias="WEBHOOK_REDIS_PREFIX")
    deliver_in_process: bool = Field(
        False,
        validation_alias="WEBHOOK_DELIVER_IN_PROCESS",
        description="Also deliver from the agent's job process (console, one-process setups).",
    )
    deliver_host: str = Field("127.0.0.1", validation_alias="WEBHOOK_DELIVER_HOST")
    deliver_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        validation_alias="WEBHOOK_DELIVER_PORT",
        description="Port of the standalone deliverer's /healthz and /metrics (off when unset).",
    )

    @property
    def enabled(self) -> bool:
        return bool(self.urls)

    @property
    def retry_schedule(self) -> tuple[float, ...]:
        """Every retry delay in order: the fast ones, then the slow backoff (doubling from a
        minute, capped at `slow_retry_max_delay`, for `slow_retry_for` seconds in all)."""
        slow: list[float] = []
        left = self.slow_retry_for
        delay = SLOW_RETRY_FIRST_DELAY
        while left > 0:
            slow.append(min(delay, self.slow_retry_max_delay, left))
            left -= slow[-1]
            delay *= 2
        return (*self.retry_delays, *slow)

    @property
    def attempts(self) -> int:
        """Attempts per destination: the first one plus one per retry delay."""
        return 1 + len(self.retry_schedule)

    @property
    def lease(self) -> float:
        """How long a claimed delivery stays hidden from other deliverers (> one attempt)."""
        return self.timeout + min(self.timeout, 5.0)

    @property
    def json_logs(self) -> bool:
        return json_logs(self.log_format, self.app_env)

    def secret_values(self) -> list[str]:
        extra = [value.get_secret_value() for value in self.headers.values()]
        return [*secret_values(self), *(value for value in extra if value)]

    def header_values(self) -> dict[str, str]:
        return {name: value.get_secret_value() for name, value in self.headers.items()}

    @field_validator("urls", "events", "retry_delays", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return split_commas(value)

    @field_validator("retry_delays", mode="before")
    @classmethod
    def _no_fast_retries(cls, value: Any) -> Any:
        # blank means unset (the default schedule), so "none" is how to ask for no fast retries
        text = value.strip().lower() if isinstance(value, str) else None
        return [] if text == "none" or value == ["none"] else value

    @field_validator("urls")
    @classmethod
    def _check_urls(cls, urls: list[str], info: ValidationInfo) -> list[str]:
        allow_http = bool(info.data.get("allow_http"))
        for url in urls:
            parts = urlsplit(url)
            try:
                parts.port  # noqa: B018 - raises on a malformed port
            except ValueError:
                raise ValueError(f"{_redacted(url)} has an invalid port") from None
            if parts.scheme not in ("https", "http") or not parts.hostname:
                raise ValueError(f"{_redacted(url)} is not an absolute http(s) URL")
            if parts.scheme == "http" and not allow_http:
                raise ValueError(
                    f"{_redacted(url)} is plain HTTP; use https:// "
                    "(or set WEBHOOK_ALLOW_HTTP=true for local development)"
                )
        if len(set(urls)) != len(urls):
            raise ValueError("a URL is listed twice")
        return urls

    @field_validator("secret")
    @classmethod
    def _empty_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        # blank is unset; this also covers a value given in code (settings_of, tests)
        return value if value is not None and value.get_secret_value().strip() else None

    @field_validator("headers", mode="before")
    @classmethod
    def _json_object(cls, value: Any) -> Any:
        # Parsed here, not by pydantic-settings, whose parse error is a traceback. The
        # message never quotes the value: it holds secrets.
        if not isinstance(value, str):
            return value
        if not value.strip():
            return {}
        try:
            parsed = json.loads(value)
        except ValueError as exc:
            raise ValueError(
                f"not valid JSON ({exc.msg} at character {exc.pos})"
                if isinstance(exc, json.JSONDecodeError)
                else "not valid JSON"
            ) from None
        if not isinstance(parsed, dict) or not all(isinstance(v, str) for v in parsed.values()):
            raise ValueError("must be a JSON object of header names to string values")
        return parsed

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, headers: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name, value in headers.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a valid header name")
            if name.lower() in _RESERVED_HEADERS:
                raise ValueError(f"{name} is set by the deliverer and cannot be overridden")
            if any(ch in value.get_secret_value() for ch in "\r\n\0"):
                raise ValueError(f"the value of {name} contains a line break")
        return headers

    @field_validator("events")
    @classmethod
    def _check_events(cls, events: list[str]) -> list[str]:
        unknown = sorted(set(events) - set(KNOWN_EVENT_TYPES))
        if unknown:
            raise ValueError(f"unknown event types {unknown}; known: {list(KNOWN_EVENT_TYPES)}")
        return events

    @field_validator("retry_delays")
    @classmethod
    def _check_delays(cls, delays: list[float]) -> list[float]:
        if any(delay < 0 for delay in delays):
            raise ValueError("retry delays cannot be negative")
        return delays


def _redacted(url: str) -> str:
    """A URL fit for an error message: scheme, host and port only (paths may hold tokens)."""
    parts = urlsplit(url)
    if not parts.hostname:
        return "a URL"
    return f"{parts.scheme}://{parts.hostname}/..."
