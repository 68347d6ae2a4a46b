"""Settings of the context API: its own `CONTEXT_API_*` knobs plus the shared LiveKit names.

The API's secret (`CONTEXT_API_SECRET`, the `api-secret` header its callers send) is its own:
it must differ from the token server's client key and from the LiveKit API secret, because the
callers of this API (your backend) are not the callers of the token server (browsers, apps).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode

from common.settings import (
    SETTINGS,
    AppEnv,
    LiveKitApiKey,
    LiveKitApiSecret,
    LiveKitUrl,
    LogFormat,
    LogLevel,
    json_logs,
    livekit_scheme,
    secret_values,
    split_commas,
)
from context_api.wire import DEFAULT_TTL_SECONDS

MIN_SECRET_LENGTH = 16
AGENT_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

_SECRET_HINT = (
    "the api-secret your backend sends; generate one: "
    "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
)


class ContextApiSettings(BaseSettings):
    model_config = SETTINGS

    secret: SecretStr = Field(
        validation_alias="CONTEXT_API_SECRET", json_schema_extra={"hint": _SECRET_HINT}
    )
    livekit_url: LiveKitUrl
    livekit_api_key: LiveKitApiKey
    livekit_api_secret: LiveKitApiSecret
    # read only to refuse a shared secret: this API's callers are not the token server's
    token_server_api_key: SecretStr = Field(SecretStr(""), validation_alias="TOKEN_SERVER_API_KEY")

    host: str = Field("0.0.0.0", validation_alias="CONTEXT_API_HOST")
    port: int = Field(3100, ge=0, le=65535, validation_alias="CONTEXT_API_PORT")
    agent_codes: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias="CONTEXT_API_AGENT_CODES",
        description="Known agent codes (others are AGENT_NOT_FOUND); empty = any code.",
        json_schema_extra={"hint": "comma-separated agent codes, e.g. A12345678,support-bot"},
    )
    delivery: Literal["auto", "rpc", "data"] = Field(
        "auto",
        validation_alias="CONTEXT_API_DELIVERY",
        description="auto: PerformRpc, SendData where the server has no PerformRpc.",
        json_schema_extra={"hint": "auto, rpc or data"},
    )
    room_timeout_seconds: float = Field(
        5.0,
        gt=0,
        le=60,
        validation_alias="CONTEXT_API_ROOM_TIMEOUT_SECONDS",
        json_schema_extra={"hint": "seconds, e.g. 5"},
    )
    command_ttl_seconds: float = Field(
        DEFAULT_TTL_SECONDS,
        ge=5,
        le=600,
        validation_alias="CONTEXT_API_COMMAND_TTL_SECONDS",
        json_schema_extra={"hint": "seconds, e.g. 60"},
    )
    concurrency: int = Field(
        100,
        ge=1,
        le=1024,
        validation_alias="CONTEXT_API_CONCURRENCY",
        description="Rooms worked on at once per request.",
    )
    read_timeout_seconds: float = Field(
        10, gt=0, le=300, validation_alias="CONTEXT_API_READ_TIMEOUT_SECONDS"
    )
    log_level: LogLevel = Field("INFO", validation_alias="CONTEXT_API_LOG_LEVEL")
    log_format: LogFormat = "auto"
    app_env: AppEnv = "development"

    @field_validator("livekit_url")
    @classmethod
    def _livekit_scheme(cls, value: str) -> str:
        value = livekit_scheme(value)
        if not value:
            raise ValueError("is empty")
        return value

    @field_validator("livekit_api_key")
    @classmethod
    def _key_set(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("is empty")
        return value.strip()

    @field_validator("livekit_api_secret")
    @classmethod
    def _livekit_secret_set(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("is empty")
        return value

    @field_validator("secret")
    @classmethod
    def _secret_strength(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < MIN_SECRET_LENGTH:
            raise ValueError(f"use at least {MIN_SECRET_LENGTH} characters")
        if not value.get_secret_value().isprintable() or not value.get_secret_value().isascii():
            raise ValueError("use printable ASCII characters (it travels in an HTTP header)")
        return value

    @field_validator("agent_codes", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return split_commas(value)

    @field_validator("agent_codes")
    @classmethod
    def _codes_valid(cls, codes: list[str]) -> list[str]:
        for code in codes:
            if not AGENT_CODE.match(code):
                raise ValueError(f"{code!r} is not an agent code (letters, digits, _ . -)")
        return codes

    @model_validator(mode="after")
    def _own_secret(self) -> ContextApiSettings:
        mine = self.secret.get_secret_value()
        if mine == self.token_server_api_key.get_secret_value():
            raise ValueError(
                "CONTEXT_API_SECRET must differ from TOKEN_SERVER_API_KEY: browsers and apps "
                "hold the token server's key, only your backend may hold this one"
            )
        if mine == self.livekit_api_secret.get_secret_value():
            raise ValueError("CONTEXT_API_SECRET must differ from LIVEKIT_API_SECRET")
        return self

    @property
    def json_logs(self) -> bool:
        return json_logs(self.log_format, self.app_env)

    def secret_values(self) -> list[str]:
        return secret_values(self)

    def knows(self, code: str) -> bool:
        """Whether `code` names an agent: any well-formed code unless a list is configured."""
        if not AGENT_CODE.match(code):
            return False
        return not self.agent_codes or code in self.agent_codes
