"""Settings of the token server: the shared LiveKit, Redis and logging fields plus its
`TOKEN_SERVER_*` knobs.

Every field reads the environment variable named by its `validation_alias`, so configuration
errors name the variable a user has to fix. List settings are comma-separated.
"""

from __future__ import annotations

from ipaddress import ip_network
from pathlib import Path
from typing import Annotated, Any

from pydantic import DirectoryPath, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode

from common.settings import (
    SETTINGS,
    AppEnv,
    LiveKitApiKey,
    LiveKitApiSecret,
    LiveKitUrl,
    LogFormat,
    LogLevel,
    RedisUrl,
    describe_error,
    fail,
    json_logs,
    livekit_scheme,
    secret_values,
    split_commas,
)
from token_server.client_ip import Network

MAX_TTL_SECONDS = 3600
MIN_API_KEY_LENGTH = 16

# Browsers on this machine, any port: Flutter web (`--web-port 8080`), Vite, the Playground.
DEVELOPMENT_ORIGINS = ("http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*")

_LIVEKIT_FIELDS = ("livekit_url", "livekit_api_key", "livekit_api_secret")
# Where scripts/build-web.sh puts the web client, next to this package in a checkout.
DEFAULT_WEB_DIR = Path(__file__).resolve().parents[1] / "web" / "dist"
_API_KEY_HINT = "generate one: python -c 'import secrets; print(secrets.token_urlsafe(32))'"


class TokenServerSettings(BaseSettings):
    model_config = SETTINGS

    app_env: AppEnv = "development"
    livekit_url: LiveKitUrl = ""
    livekit_api_key: LiveKitApiKey = ""
    livekit_api_secret: LiveKitApiSecret = SecretStr("")
    agent_name: str = Field(
        "",
        validation_alias="AGENT_NAME",
        json_schema_extra={"hint": "the agent_name the worker registers with"},
    )
    redis_url: RedisUrl = None
    log_format: LogFormat = "auto"

    host: str = Field("0.0.0.0", validation_alias="TOKEN_SERVER_HOST")
    port: int = Field(3000, ge=0, le=65535, validation_alias="TOKEN_SERVER_PORT")
    log_level: LogLevel = Field("INFO", validation_alias="TOKEN_SERVER_LOG_LEVEL")
    summary_interval_seconds: float = Field(
        60, ge=0, validation_alias="TOKEN_SERVER_SUMMARY_INTERVAL_SECONDS"
    )
    read_timeout_seconds: float = Field(
        10,
        gt=0,
        le=300,
        validation_alias="TOKEN_SERVER_READ_TIMEOUT_SECONDS",
        json_schema_extra={"hint": "seconds, e.g. 10"},
    )
    api_key: SecretStr = Field(
        SecretStr(""),
        validation_alias="TOKEN_SERVER_API_KEY",
        json_schema_extra={"hint": _API_KEY_HINT},
    )
    allow_anonymous: bool = Field(False, validation_alias="TOKEN_SERVER_ALLOW_ANONYMOUS")
    token_ttl_seconds: int = Field(
        900, ge=60, le=MAX_TTL_SECONDS, validation_alias="TOKEN_SERVER_TOKEN_TTL_SECONDS"
    )
    cors_origins: Annotated[list[str] | None, NoDecode] = Field(
        None,
        validation_alias="TOKEN_SERVER_CORS_ORIGINS",
        json_schema_extra={"hint": "comma-separated origins, e.g. https://app.example.com"},
    )
    allow_camera: bool = Field(False, validation_alias="TOKEN_SERVER_ALLOW_CAMERA")
    allow_screen_share: bool = Field(False, validation_alias="TOKEN_SERVER_ALLOW_SCREEN_SHARE")
    allow_client_room_names: bool = Field(
        True, validation_alias="TOKEN_SERVER_ALLOW_CLIENT_ROOM_NAMES"
    )
    allowed_agents: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="TOKEN_SERVER_ALLOWED_AGENTS"
    )
    rate_limit_per_minute: float = Field(
        60, ge=0, validation_alias="TOKEN_SERVER_RATE_LIMIT_PER_MINUTE"
    )
    rate_limit_burst: int = Field(20, ge=1, validation_alias="TOKEN_SERVER_RATE_LIMIT_BURST")
    trusted_proxies: Annotated[list[Network], NoDecode] = Field(
        default_factory=list,
        validation_alias="TOKEN_SERVER_TRUSTED_PROXIES",
        json_schema_extra={"hint": "comma-separated addresses or CIDRs, e.g. 10.0.0.0/8"},
    )
    web_client: bool = Field(True, validation_alias="TOKEN_SERVER_WEB_CLIENT")
    # Unset: the checkout's web/dist, which may not be built yet; set: it must exist.
    web_dir: DirectoryPath | None = Field(
        None,
        validation_alias="TOKEN_SERVER_WEB_DIR",
        json_schema_extra={"hint": "the directory scripts/build-web.sh builds, e.g. web/dist"},
    )

    @field_validator("livekit_url")
    @classmethod
    def _livekit_scheme(cls, value: str) -> str:
        return livekit_scheme(value)

    @field_validator("api_key")
    @classmethod
    def _api_key_strength(cls, value: SecretStr) -> SecretStr:
        if 0 < len(value.get_secret_value()) < MIN_API_KEY_LENGTH:
            raise ValueError(f"use at least {MIN_API_KEY_LENGTH} characters")
        return value

    @field_validator("cors_origins", "allowed_agents", mode="before")
    @classmethod
    def _split_lists(cls, value: Any) -> Any:
        return split_commas(value)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _parse_networks(cls, value: Any) -> Any:
        items = split_commas(value)
        if not isinstance(items, list):
            return items
        # strict=False accepts a bare address as a one-address network.
        return [ip_network(item, strict=False) if isinstance(item, str) else item for item in items]

    @field_validator("trusted_proxies")
    @classmethod
    def _not_everyone(cls, networks: list[Network]) -> list[Network]:
        for network in networks:
            if network.prefixlen == 0:
                raise ValueError(
                    f"{network} trusts every address, so any client could choose the address "
                    "it is rate-limited as; list your proxies' addresses only"
                )
        return networks

    @property
    def production(self) -> bool:
        return self.app_env == "production"

    @property
    def json_logs(self) -> bool:
        return json_logs(self.log_format, self.app_env)

    def secret_values(self) -> list[str]:
        return secret_values(self)

    @property
    def livekit_configured(self) -> bool:
        return not self.missing_livekit()

    def missing_livekit(self) -> list[str]:
        """Field names of the LiveKit settings that are still empty."""
        return [name for name in _LIVEKIT_FIELDS if not _filled(getattr(self, name))]

    def missing_livekit_variables(self) -> list[str]:
        """The environment variables behind `missing_livekit` (field names, upper-cased)."""
        return [name.upper() for name in self.missing_livekit()]

    def allowed_origins(self) -> list[str]:
        """The CORS allow-list, with the environment's default when none is configured."""
        if self.cors_origins is not None:
            return self.cors_origins
        return [] if self.production else list(DEVELOPMENT_ORIGINS)

    def broad_trusted_proxies(self) -> list[Network]:
        """Trusted networks wider than an IPv4 /8 or an IPv6 /16: worth a warning at start."""
        return [
            network
            for network in self.trusted_proxies
            if network.prefixlen < (8 if network.version == 4 else 16)
        ]

    def web_root(self) -> Path | None:
        """The directory served at `/`, or None when the web client is off."""
        if not self.web_client:
            return None
        return self.web_dir if self.web_dir is not None else DEFAULT_WEB_DIR

    def dispatchable_agents(self) -> frozenset[str]:
        """Agents a client may name in `room_config`: the allow-list plus AGENT_NAME."""
        names = set(self.allowed_agents)
        if self.agent_name:
            names.add(self.agent_name)
        return frozenset(names)


def _filled(value: str | SecretStr) -> bool:
    return bool(value.get_secret_value() if isinstance(value, SecretStr) else value)


def require_client_auth(settings: TokenServerSettings) -> None:
    """In production, exit with status 2 and one line unless /token needs an API key or
    anonymous access was chosen (a gateway in front that authenticates callers)."""
    anonymous = not settings.api_key.get_secret_value()
    if settings.production and anonymous and not settings.allow_anonymous:
        fail(
            "configuration error: TOKEN_SERVER_API_KEY is not set, so anyone could mint tokens "
            f"and start paid agent sessions; set it ({_API_KEY_HINT}), or set "
            "TOKEN_SERVER_ALLOW_ANONYMOUS=true when a gateway in front authenticates callers"
        )


def require_livekit(settings: TokenServerSettings) -> None:
    """Exit with status 2 and one line naming each missing LiveKit variable."""
    missing = settings.missing_livekit()
    if missing:
        error = ValidationError.from_exception_data(
            type(settings).__name__,
            [{"type": "missing", "loc": (name,), "input": None} for name in missing],
        )
        fail(describe_error(type(settings), error))
