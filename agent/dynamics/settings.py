"""Settings of the gesture (dynamics) feature, from the environment and `.env`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings

from common.settings import SETTINGS, fail

# the cloud avatar participant's identity: the livekit bitHuman plugin's default
AVATAR_IDENTITY = "bithuman-avatar-agent"

# the project's own map, wherever the worker is started from
DEFAULT_MAP_PATH = Path(__file__).resolve().parents[2] / "config" / "gestures.yaml"


# Shared with the avatar's settings (agent/settings.py): both read these two variables.
BithumanApiSecret = Annotated[
    SecretStr | None,
    Field(json_schema_extra={"hint": "copy it from https://imaginex.bithuman.ai/#developer"}),
]
DEFAULT_REST_URL = "https://api.bithuman.ai"


class DynamicsSettings(BaseSettings):
    """DYNAMICS_* and the bitHuman REST access that reads an avatar's gesture catalog; loaded
    beside the agent's settings (agent/process_state.py), not inside them."""

    model_config = SETTINGS

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
    bithuman_api_secret: BithumanApiSecret = None
    bithuman_rest_url: str = DEFAULT_REST_URL

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

    def check_map(self) -> None:
        """Read the gesture map now: a broken file stops start-up with one line instead of
        failing in every job."""
        if self.map_path is None or not self.dynamics_enabled:
            return
        from agent.dynamics.keymap import KeymapError, load_keymap

        try:
            load_keymap(self.map_path)
        except KeymapError as exc:
            fail(f"configuration error: DYNAMICS_MAP_PATH: {exc}")
