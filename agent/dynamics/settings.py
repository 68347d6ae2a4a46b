"""Settings of the gesture (dynamics) feature, from the environment and `.env`."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator

from common.settings import ServiceSettings

# the cloud avatar participant's identity: the livekit bitHuman plugin's default
AVATAR_IDENTITY = "bithuman-avatar-agent"

# the project's own map, wherever the worker is started from
DEFAULT_MAP_PATH = Path(__file__).resolve().parents[2] / "config" / "gestures.yaml"


class DynamicsSettings(ServiceSettings):
    dynamics_enabled: bool = Field(
        default=True, description="Master switch; avatars without gestures are skipped anyway."
    )
    dynamics_map_path: Path | None = Field(
        default=None,
        description="Keyword map (YAML). Unset: config/gestures.yaml if present, else defaults"
        " derived from the avatar's gesture names.",
        json_schema_extra={"hint": "copy config/gestures.example.yaml and edit it"},
    )
    dynamics_cooldown: float = Field(
        default=3.0, ge=0, description="Seconds before the same gesture may fire again."
    )
    dynamics_min_gap: float = Field(
        default=1.0, ge=0, description="Seconds between any two gestures."
    )
    dynamics_rpc_timeout: float = Field(
        default=5.0, gt=0, description="Seconds to wait for the avatar's answer to a gesture RPC."
    )
    dynamics_agent_utterances: bool = Field(
        default=False, description="Also match the agent's own final utterances."
    )
    dynamics_function_tool: bool = Field(
        default=False, description="Offer the model a tool to perform a gesture itself."
    )
    dynamics_catalog_ttl: float = Field(
        default=300.0, ge=0, description="Seconds an avatar's gesture catalog stays cached."
    )
    dynamics_catalog_timeout: float = Field(
        default=5.0, gt=0, description="Seconds a session waits for the gesture catalog."
    )
    bithuman_api_secret: SecretStr | None = Field(
        default=None,
        json_schema_extra={"hint": "copy it from https://imaginex.bithuman.ai/#developer"},
    )
    bithuman_rest_url: str = "https://api.bithuman.ai"

    @field_validator("dynamics_map_path", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("dynamics_map_path")
    @classmethod
    def _map_file_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such keyword map file: {value}")
        return value

    @property
    def map_path(self) -> Path | None:
        """The map file to load, or None to derive the map from the catalog."""
        if self.dynamics_map_path is not None:
            return self.dynamics_map_path
        return DEFAULT_MAP_PATH if DEFAULT_MAP_PATH.is_file() else None
