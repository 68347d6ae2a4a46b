"""Typed settings from the environment and `.env`, validated once at start-up.

Every service defines one `ServiceSettings` subclass. `load_settings` turns a validation
failure into one readable line naming the variable (and where to get it) and exit status 2,
because a traceback is the wrong answer to a typo in `.env`.
"""

from __future__ import annotations

import sys
from typing import Any, Literal, NoReturn, TypeVar

from pydantic import AliasChoices, Field, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

EXIT_CONFIG_ERROR = 2

T = TypeVar("T", bound="ServiceSettings")


class ServiceSettings(BaseSettings):
    """Base for each service's settings: environment first, then `.env` in the working dir."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        validate_default=True,
    )

    def secret_values(self) -> list[str]:
        """Every non-empty secret in these settings, for the log redactor."""
        found: list[str] = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr) and value.get_secret_value():
                found.append(value.get_secret_value())
        return found


class LoggingSettings(ServiceSettings):
    """LOG_FORMAT and LOG_LEVEL, read the way the agent reads them."""

    log_format: Literal["auto", "json", "console"] = Field(
        "auto",
        validation_alias="LOG_FORMAT",
        description="auto: JSON lines unless stdout is a terminal.",
    )
    log_level: str = Field("INFO", validation_alias="LOG_LEVEL")

    @property
    def json_logs(self) -> bool:
        if self.log_format == "auto":
            return not sys.stdout.isatty()
        return self.log_format == "json"


def split_commas(value: Any) -> Any:
    """A comma-separated environment value becomes a list (blanks dropped); others pass as is.

    For `mode="before"` validators of `NoDecode` list fields.
    """
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def describe_error(cls: type[ServiceSettings], error: ValidationError) -> str:
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


def _fields_by_variable(cls: type[ServiceSettings]) -> dict[str, FieldInfo]:
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
