"""Settings of the example receiver, `python -m webhook_receiver` (`WEBHOOK_RECEIVER_*`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings

from common.settings import SETTINGS, AppEnv, LogFormat, LogLevel, json_logs, secret_values
from webhooks.signatures import DEFAULT_TOLERANCE


class ReceiverSettings(BaseSettings):
    model_config = SETTINGS

    log_format: LogFormat = "auto"
    log_level: LogLevel = Field("INFO", validation_alias="LOG_LEVEL")
    app_env: AppEnv = "development"
    secret: SecretStr = Field(
        validation_alias="WEBHOOK_RECEIVER_SECRET",
        description="The secret the sender signs with (its WEBHOOK_SECRET).",
        json_schema_extra={"hint": "the same value as the sender's WEBHOOK_SECRET"},
    )
    host: str = Field("127.0.0.1", validation_alias="WEBHOOK_RECEIVER_HOST")
    port: int = Field(3001, ge=0, le=65535, validation_alias="WEBHOOK_RECEIVER_PORT")
    path: str = Field("/webhook", pattern=r"^/", validation_alias="WEBHOOK_RECEIVER_PATH")
    tolerance: float = Field(
        DEFAULT_TOLERANCE,
        gt=0,
        validation_alias="WEBHOOK_RECEIVER_TOLERANCE",
        description="Largest accepted age (or skew) of webhook-timestamp, in seconds.",
    )
    require_timestamp: bool = Field(
        False,
        validation_alias="WEBHOOK_RECEIVER_REQUIRE_TIMESTAMP",
        description=(
            "Refuse requests without Standard Webhooks headers. Off by default so the bitHuman"
            " platform's webhooks (X-bitHuman-Signature only) are accepted; such requests are"
            " deduplicated by their envelope and refused once older than the dedupe TTL."
        ),
    )
    store_path: Path = Field(
        Path("webhook-receiver.db"),
        validation_alias="WEBHOOK_RECEIVER_STORE_PATH",
        description="SQLite file for accepted events, dedupe ids and dead letters.",
    )
    dedupe_ttl: float = Field(
        7 * 24 * 3600.0,
        gt=0,
        validation_alias="WEBHOOK_RECEIVER_DEDUPE_TTL",
        description=(
            "How long processed event ids and fingerprints are remembered, in seconds; also the"
            " largest accepted age of an event sent without Standard Webhooks headers."
        ),
    )
    handlers: str | None = Field(
        None,
        pattern=r"^[\w.]+:[\w.]+$",
        validation_alias="WEBHOOK_RECEIVER_HANDLERS",
        description="`module:attribute` naming a webhook_receiver.Router.",
        json_schema_extra={"hint": "for example myapp.hooks:router"},
    )
    workers: int = Field(4, ge=1, le=256, validation_alias="WEBHOOK_RECEIVER_WORKERS")
    queue_size: int = Field(1000, ge=1, validation_alias="WEBHOOK_RECEIVER_QUEUE_SIZE")
    retry_interval: float = Field(
        60.0,
        gt=0,
        validation_alias="WEBHOOK_RECEIVER_RETRY_INTERVAL",
        description="First delay before a failed handler runs again (doubles each time).",
    )
    max_attempts: int = Field(5, ge=1, validation_alias="WEBHOOK_RECEIVER_MAX_ATTEMPTS")
    handler_timeout: float = Field(
        60.0,
        gt=0,
        validation_alias="WEBHOOK_RECEIVER_HANDLER_TIMEOUT",
        description="Deadline of one handler run, in seconds; an overrun counts as a failure.",
    )
    dead_letter_retention: float = Field(
        14 * 24 * 3600.0,
        ge=0,
        validation_alias="WEBHOOK_RECEIVER_DEAD_LETTER_RETENTION",
        description="Seconds a parked dead letter is kept before it is deleted (0: forever).",
    )
    max_body: int = Field(1024 * 1024, ge=1024, validation_alias="WEBHOOK_RECEIVER_MAX_BODY")
    read_timeout: float = Field(
        30.0,
        gt=0,
        le=300,
        validation_alias="WEBHOOK_RECEIVER_READ_TIMEOUT",
        description=(
            "Seconds a request's head, and then its body, may take to arrive (also how long an"
            " idle connection stays open)."
        ),
    )

    @field_validator("secret")
    @classmethod
    def _not_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("must not be empty")
        return value

    @property
    def json_logs(self) -> bool:
        return json_logs(self.log_format, self.app_env)

    def secret_values(self) -> list[str]:
        return secret_values(self)
