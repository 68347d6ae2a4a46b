"""Typed settings from the environment and `.env`, validated once at start-up.

Each service's settings class is a `BaseSettings` of its own with `model_config = SETTINGS`,
composed of the shared field types below (`LiveKitUrl`, `RedisUrl`, `LogFormat`, ...) and its own
fields, so the class says what the service reads. Rules every service shares:

- the environment first, then `.env` in the working directory;
- a blank value (`NAME=` in the environment or `.env`) counts as unset: the default applies, and a
  required setting is "not set";
- `LOG_FORMAT` is `json`, `console`, or `auto`: JSON lines when `APP_ENV=production` or stdout is
  not a terminal, a readable console otherwise (`json_logs`).

`load_settings` turns a validation failure into one readable line naming the variable (and where
to get it) and exit status 2, because a traceback is the wrong answer to a typo in `.env`.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any, Literal, NoReturn, TypeVar

from pydantic import AfterValidator, AliasChoices, BaseModel, Field, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

EXIT_CONFIG_ERROR = 2

T = TypeVar("T", bound=BaseSettings)

SETTINGS = SettingsConfigDict(
    env_file=".env",
    env_file_encoding="utf-8",
    env_ignore_empty=True,  # blank is unset, in the environment and in `.env` alike
    extra="ignore",
    case_sensitive=False,
    validate_default=True,
)
"""The `model_config` of every service's settings."""

LIVEKIT_HINT = (
    "LiveKit Cloud: project Settings > API keys; self-hosted: the keys in livekit.yaml; "
    "`livekit-server --dev` uses devkey / secret"
)
LIVEKIT_SCHEMES = ("wss://", "ws://", "https://", "http://")

# --- shared fields: a service composes the ones it reads ----------------------------------------
AppEnv = Annotated[
    Literal["development", "production"],
    Field(validation_alias="APP_ENV", json_schema_extra={"hint": "development or production"}),
]
LogFormat = Annotated[
    Literal["auto", "json", "console"],
    Field(
        validation_alias="LOG_FORMAT",
        description="auto: JSON when APP_ENV=production or stdout is not a terminal.",
        json_schema_extra={"hint": "auto, json or console"},
    ),
]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
# A URL may carry a password (redis://:pw@host), so it is masked like a secret.
RedisUrl = Annotated[
    SecretStr | None,
    Field(validation_alias="REDIS_URL", json_schema_extra={"hint": "redis://host:6379/0"}),
    # only spaces is unset too (env_ignore_empty covers "" alone), in every service
    AfterValidator(lambda v: v if v is not None and v.get_secret_value().strip() else None),
]
LiveKitUrl = Annotated[
    str,
    Field(
        validation_alias="LIVEKIT_URL",
        json_schema_extra={"hint": "wss://<project>.livekit.cloud or ws://localhost:7880"},
    ),
]
LiveKitApiKey = Annotated[
    str, Field(validation_alias="LIVEKIT_API_KEY", json_schema_extra={"hint": LIVEKIT_HINT})
]
LiveKitApiSecret = Annotated[
    SecretStr,
    Field(validation_alias="LIVEKIT_API_SECRET", json_schema_extra={"hint": LIVEKIT_HINT}),
]


def json_logs(log_format: str, app_env: str = "development") -> bool:
    """LOG_FORMAT's one meaning: `json`, `console`, or `auto`, JSON when APP_ENV is production
    or stdout is not a terminal (a container, a pipe, a file)."""
    if log_format == "auto":
        return app_env == "production" or not sys.stdout.isatty()
    return log_format == "json"


def livekit_scheme(value: str) -> str:
    """A LiveKit URL, stripped; refused unless it is ws(s) or http(s) (empty passes)."""
    value = value.strip()
    if value and not value.startswith(LIVEKIT_SCHEMES):
        raise ValueError("must start with wss://, ws://, https:// or http://")
    return value


def secret_values(settings: BaseModel) -> list[str]:
    """Every non-empty secret in `settings`, for the log redactor."""
    found: list[str] = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr) and value.get_secret_value():
            found.append(value.get_secret_value())
    return found


def split_commas(value: Any) -> Any:
    """A comma-separated environment value becomes a list (blanks dropped); others pass as is.

    For `mode="before"` validators of `NoDecode` list fields.
    """
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def describe_error(cls: type[BaseModel], error: ValidationError) -> str:
    """One line naming each bad variable, what is wrong with it and where to get it."""
    fields = _fields_by_variable(cls)
    parts: list[str] = []
    for item in error.errors():
        if not item["loc"]:  # a rule across several variables names them in its message
            parts.append(str(item["msg"]).removeprefix("Value error, "))
            continue
        var = str(item["loc"][0]).upper()
        if item["type"] == "missing":
            what = f"{var} is not set"
        else:
            msg = str(item["msg"]).removeprefix("Value error, ")
            what = f"{var} is invalid: {msg}"
        info = fields.get(var)
        hint = _hint(info.json_schema_extra if info else None)
        parts.append(f"{what} ({hint})" if hint else what)
    return "configuration error: " + "; ".join(parts)


def _fields_by_variable(cls: type[BaseModel]) -> dict[str, FieldInfo]:
    """Each field under the environment variable that sets it (its alias, else its name)."""
    found: dict[str, FieldInfo] = {}
    for name, info in cls.model_fields.items():
        alias = info.validation_alias
        names = [name]
        if isinstance(alias, str):
            names.append(alias)
        elif isinstance(alias, AliasChoices):
            names.extend(str(choice) for choice in alias.choices if isinstance(choice, str))
        for variable in names:
            found[variable.upper()] = info
    return found


def _hint(extra: Any) -> str | None:
    if isinstance(extra, dict):
        hint = extra.get("hint")
        return str(hint) if hint else None
    return None


def fail(message: str) -> NoReturn:
    print(message, file=sys.stderr, flush=True)
    raise SystemExit(EXIT_CONFIG_ERROR)


def load_settings(cls: type[T]) -> T:
    """Build `cls` from the environment, or print one line and exit with status 2."""
    try:
        return cls()
    except ValidationError as error:
        fail(describe_error(cls, error))
