"""The worker's settings: one typed object, from the environment and `.env`.

Loaded once in the worker's main process (so a bad value stops `python -m agent` with one line
and exit status 2) and again in each job process, which inherits the same environment.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import ClassVar, Literal, Self

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings

from agent.dynamics.settings import AVATAR_IDENTITY, DEFAULT_REST_URL, BithumanApiSecret
from common.settings import SETTINGS, AppEnv, LogFormat, fail, secret_values

OPENAI_KEY_HINT = "create one at https://platform.openai.com/api-keys"
LIVEKIT_HINT = (
    "from your LiveKit Cloud project settings, or devkey/secret for `livekit-server --dev`"
)
BITHUMAN_HINT = "copy it from https://imaginex.bithuman.ai/#developer"

# the project's own persona, wherever the worker is started from
DEFAULT_PROMPT_FILE = Path(__file__).resolve().parent.parent / "config" / "persona.md"

BithumanModel = Literal["essence", "expression", "essence-2", "expression-2"]


# Magic numbers of the portrait formats accepted as base64 (WebP: RIFF....WEBP).
_IMAGE_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")


def _is_file(value: str) -> bool:
    try:
        return Path(value).is_file()
    except (OSError, ValueError):  # base64 is too long for a file name; NUL bytes
        return False


def _base64_image(value: str) -> str | None:
    """`value` as bare base64 when it encodes an image, else None."""
    text = value.strip()
    if text.startswith("data:"):
        header, comma, text = text.partition(",")
        if not comma or not header.endswith(";base64"):
            return None
    text = "".join(text.split())  # line breaks of a wrapped encoder
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    is_webp = data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    return text if is_webp or data.startswith(_IMAGE_SIGNATURES) else None


class AvatarMode(StrEnum):
    """The avatar a job runs, resolved from AVATAR_MODE and the BITHUMAN_* settings."""

    NONE = "none"
    CLOUD_AGENT = "cloud-agent"
    CLOUD_IMAGE = "cloud-image"
    LOCAL = "local"
    PLACEHOLDER = "placeholder"


# AVATAR_MODE: what the user asks for; `auto` infers a bitHuman avatar from the BITHUMAN_* values
AvatarChoice = Literal["auto", "bithuman-cloud", "bithuman-local", "placeholder", "none"]
# the placeholder generator's FRAME_RATES (not imported: settings answer before heavy imports;
# a test keeps them equal)
PLACEHOLDER_FRAME_RATES = (10, 12, 15, 16, 20, 24, 25, 30)


# The avatar a job runs, resolved once from the settings with everything its mode needs, so code
# that starts one matches on the type instead of re-checking which optional values are set.
@dataclass(frozen=True)
class NoAvatar:
    mode: ClassVar[AvatarMode] = AvatarMode.NONE


@dataclass(frozen=True)
class PlaceholderFace:
    mode: ClassVar[AvatarMode] = AvatarMode.PLACEHOLDER

    fps: int


@dataclass(frozen=True)
class CloudAvatar:
    """Rendered by bitHuman's servers, from an agent code or a portrait (exactly one is set)."""

    api_secret: SecretStr
    avatar_id: str | None
    avatar_image: str | None
    model: BithumanModel | None

    @property
    def mode(self) -> AvatarMode:
        return AvatarMode.CLOUD_AGENT if self.avatar_id else AvatarMode.CLOUD_IMAGE


@dataclass(frozen=True)
class LocalAvatar:
    """An .imx model rendered in the job process by the bitHuman SDK."""

    model_path: Path
    api_secret: SecretStr
    mode: ClassVar[AvatarMode] = AvatarMode.LOCAL


Avatar = NoAvatar | PlaceholderFace | CloudAvatar | LocalAvatar


@dataclass(frozen=True)
class LiveKitCredentials:
    url: str
    api_key: str
    api_secret: SecretStr


class AgentSettings(BaseSettings):
    """What the worker reads besides the gestures (DynamicsSettings) and the webhooks
    (WebhookSettings), which are loaded beside it."""

    model_config = SETTINGS

    # --- OpenAI Realtime -------------------------------------------------------------------
    openai_api_key: SecretStr = Field(json_schema_extra={"hint": OPENAI_KEY_HINT})
    openai_base_url: str | None = Field(
        default=None, description="Realtime API base URL (a proxy, Azure-compatible gateway)."
    )
    openai_realtime_model: str = "gpt-realtime"
    openai_voice: str = "marin"
    openai_transcription_model: str = "gpt-4o-mini-transcribe"

    # --- LiveKit (not needed by `console`) ---------------------------------------------------
    livekit_url: str | None = Field(default=None, json_schema_extra={"hint": LIVEKIT_HINT})
    livekit_api_key: str | None = Field(default=None, json_schema_extra={"hint": LIVEKIT_HINT})
    livekit_api_secret: SecretStr | None = Field(
        default=None, json_schema_extra={"hint": LIVEKIT_HINT}
    )

    # --- persona -------------------------------------------------------------------------------
    agent_name: str = Field(default="", description="Explicit dispatch name; empty = automatic.")
    agent_prompt: str | None = None
    agent_prompt_file: Path = DEFAULT_PROMPT_FILE
    agent_greeting: str = "Greet the user warmly in one short sentence and offer your help."

    # --- avatar ----------------------------------------------------------------------------------
    avatar_choice: AvatarChoice = Field(
        default="auto",
        validation_alias=AliasChoices("AVATAR_MODE", "avatar_choice"),
        description="auto | bithuman-cloud | bithuman-local | placeholder | none",
    )

    placeholder_fps: int = Field(
        default=25,
        description="The placeholder face's frame rate; 12 halves what its video costs (each"
        " frame is VP8-encoded) for a choppier mouth.",
    )

    # --- bitHuman avatar -------------------------------------------------------------------------
    bithuman_api_secret: BithumanApiSecret = None
    bithuman_rest_url: str = DEFAULT_REST_URL
    bithuman_avatar_id: str | None = None
    bithuman_avatar_image: str | None = None
    bithuman_model_path: Path | None = None
    bithuman_model: BithumanModel | None = None
    bithuman_agent_id: str | None = Field(
        default=None,
        description="Agent code whose gestures a local .imx avatar performs (cloud: the avatar's).",
    )
    bithuman_api_url: str | None = Field(
        default=None,
        description="Avatar session endpoint the plugin calls; unset = the plugin's default.",
    )
    avatar_identity: str = AVATAR_IDENTITY
    avatar_start_timeout: float = Field(default=30.0, gt=0)
    avatar_join_timeout: float = Field(default=60.0, gt=0)

    # --- context commands (python -m context_api: speak / add-context) --------------------------
    context_commands: bool = Field(
        default=True,
        description="Take speak / add-context commands from the context API in every session.",
    )
    openai_tts_model: str = Field(
        default="gpt-4o-mini-tts",
        description="Speech model that says `speak` messages verbatim (Realtime has no say()).",
    )
    openai_tts_voice: str | None = Field(
        default=None, description="Voice of `speak` messages; unset = OPENAI_VOICE."
    )

    # --- worker sizing -------------------------------------------------------------------------
    agent_load_threshold: float = Field(default=0.75, gt=0)  # inf: never refuse for load
    agent_max_sessions: int = Field(
        default=0,
        ge=0,
        description="Sessions a worker takes at most (0 = no cap, CPU load alone decides).",
    )
    agent_local_vad: bool = Field(
        default=True,
        description="Silero VAD in each session for barge-ins; false leaves them to the realtime"
        " model's server-side turn detection (less CPU and memory per session).",
    )
    agent_input_gain_control: bool = Field(
        default=True,
        description="livekit's automatic gain control on the user's audio; browsers and mobile"
        " WebRTC already apply their own, so false saves its per-frame cost.",
    )
    agent_sync_transcription: bool = Field(
        default=True,
        description="The agent's transcript streams word by word in step with its voice; false"
        " sends text as soon as the model has it (cheaper, but ahead of the speech).",
    )
    agent_job_executor: Literal["process", "thread"] = Field(
        default="process",
        description="process: one process per session (isolated); thread: sessions share one"
        " process (denser, but a crash or a stuck loop takes every session with it).",
    )
    agent_loop_block_warn_ms: float | None = Field(
        default=None,
        ge=0,
        description="livekit's event-loop block monitor in each job process reports stalls this"
        " long (default 100 ms, checked every 20 ms); a larger value checks less often, 0 turns it"
        " off (it costs about 1.5% of a core per process).",
    )
    agent_idle_processes: int | None = Field(default=None, ge=0)
    agent_init_timeout: float | None = Field(default=None, gt=0)
    agent_memory_warn_mb: float = Field(default=1500, ge=0)
    agent_memory_limit_mb: float = Field(default=0, ge=0)
    agent_drain_timeout: int = Field(default=1800, ge=0)
    agent_http_port: int | None = Field(default=None, ge=0, le=65535)
    agent_connect_retries: int = Field(
        default=16,
        ge=0,
        description="Reconnection attempts to LiveKit before the worker exits non-zero (~2.5 min).",
    )

    # --- logging -------------------------------------------------------------------------------
    app_env: AppEnv = "development"
    log_format: LogFormat = "auto"
    log_level: str = Field(
        default="INFO", validation_alias=AliasChoices("LOG_LEVEL", "LIVEKIT_LOG_LEVEL")
    )

    @field_validator(
        "bithuman_avatar_id",
        "bithuman_avatar_image",
        "bithuman_agent_id",
        "bithuman_model_path",
        "bithuman_model",
        "agent_prompt",
        "openai_tts_voice",
        mode="before",
    )
    @classmethod
    def _blank_agent_field_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("avatar_choice", mode="before")
    @classmethod
    def _avatar_choice_text(cls, value: object) -> object:
        if isinstance(value, str):
            return value.strip().lower() or "auto"
        return value

    @field_validator("openai_api_key", mode="before")
    @classmethod
    def _blank_key_is_missing(cls, value: object) -> object:
        # `.env.example` ships `OPENAI_API_KEY=`: copied as is, that is "not set", not a key
        if isinstance(value, str) and not value.strip():
            raise PydanticCustomError("missing", "Field required")
        return value

    @field_validator("livekit_url", "livekit_api_key", "livekit_api_secret", mode="before")
    @classmethod
    def _blank_livekit_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("bithuman_avatar_image")
    @classmethod
    def _image_is_path_url_or_base64(cls, value: str | None) -> str | None:
        """An http(s) URL, an image file, or base64 image data (bare, wrapped over lines, or a
        `data:image/...;base64,` URI), passed on as bare base64, the form the plugin accepts."""
        if value is None or value.startswith(("http://", "https://")) or _is_file(value):
            return value
        encoded = _base64_image(value)
        if encoded is None:
            shown = value if len(value) <= 60 else value[:40] + "..."
            raise ValueError(
                f"{shown!r} is neither an http(s) URL, an existing image file, nor base64 "
                "data of a JPEG, PNG, WebP, GIF or BMP image"
            )
        return encoded

    @field_validator("bithuman_model_path")
    @classmethod
    def _model_file_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such .imx file: {value}")
        return value

    @field_validator("placeholder_fps")
    @classmethod
    def _a_placeholder_frame_rate(cls, value: int) -> int:
        if value not in PLACEHOLDER_FRAME_RATES:
            raise ValueError(f"must be one of {', '.join(map(str, PLACEHOLDER_FRAME_RATES))}")
        return value

    @model_validator(mode="after")
    def _avatar_is_consistent(self) -> Self:
        self._avatar_from_values()  # raises on a contradiction, at start-up
        return self

    def _avatar_from_values(self) -> Avatar:
        """AVATAR_MODE resolved: `auto` and the bithuman-* choices read the BITHUMAN_* values
        (at most one of ID, IMAGE, MODEL_PATH; none of them = no avatar under `auto`)."""
        choice = self.avatar_choice
        if choice == "placeholder":
            return PlaceholderFace(fps=self.placeholder_fps)
        if choice == "none":
            return NoAvatar()  # the BITHUMAN_* avatar values are not used
        if choice == "bithuman-cloud" and not (
            self.bithuman_avatar_id or self.bithuman_avatar_image
        ):
            raise ValueError(
                "AVATAR_MODE=bithuman-cloud needs BITHUMAN_AVATAR_ID or BITHUMAN_AVATAR_IMAGE "
                "(or set AVATAR_MODE=placeholder for a local face that needs no credits)"
            )
        if choice == "bithuman-local" and self.bithuman_model_path is None:
            raise ValueError(
                "AVATAR_MODE=bithuman-local needs BITHUMAN_MODEL_PATH, an .imx model file "
                "(or set AVATAR_MODE=placeholder for a local face that needs no credits)"
            )
        sources = [
            name
            for name, value in (
                ("BITHUMAN_AVATAR_ID", self.bithuman_avatar_id),
                ("BITHUMAN_AVATAR_IMAGE", self.bithuman_avatar_image),
                ("BITHUMAN_MODEL_PATH", self.bithuman_model_path),
            )
            if value is not None
        ]
        if not sources:
            return NoAvatar()
        if len(sources) > 1:
            raise ValueError(f"set only one of {' and '.join(sources)}")
        secret = self.bithuman_api_secret
        if secret is None:
            raise ValueError(f"BITHUMAN_API_SECRET is required with {sources[0]} ({BITHUMAN_HINT})")
        if self.bithuman_model_path is not None:
            if self.bithuman_model is not None:
                raise ValueError(
                    "BITHUMAN_MODEL applies to cloud avatars; a .imx file fixes its model"
                )
            return LocalAvatar(model_path=self.bithuman_model_path, api_secret=secret)
        return CloudAvatar(
            api_secret=secret,
            avatar_id=self.bithuman_avatar_id,
            avatar_image=self.bithuman_avatar_image,
            model=self.bithuman_model,
        )

    @cached_property
    def avatar(self) -> Avatar:
        return self._avatar_from_values()

    @property
    def avatar_mode(self) -> AvatarMode:
        return self.avatar.mode

    @property
    def gesture_agent_id(self) -> str | None:
        """Whose gesture catalog applies: the cloud avatar's, or BITHUMAN_AGENT_ID's."""
        return self.bithuman_agent_id or self.bithuman_avatar_id

    @property
    def process_init_timeout(self) -> float:
        """Loading a local .imx runtime in prewarm takes far longer than livekit's 10 s."""
        if self.agent_init_timeout is not None:
            return self.agent_init_timeout
        return 120.0 if self.avatar_mode is AvatarMode.LOCAL else 20.0

    @cached_property
    def instructions(self) -> str:
        """The persona: AGENT_PROMPT, else the prompt file (read once per process)."""
        if self.agent_prompt:
            return self.agent_prompt
        not_text = (
            f"configuration error: AGENT_PROMPT_FILE {self.agent_prompt_file} is not UTF-8 text "
            "(set AGENT_PROMPT or point AGENT_PROMPT_FILE at a text file)"
        )
        try:
            text = self.agent_prompt_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            fail(
                f"configuration error: AGENT_PROMPT_FILE cannot be read: {exc} "
                "(set AGENT_PROMPT or point AGENT_PROMPT_FILE at a text file)"
            )
        except UnicodeDecodeError:
            fail(not_text)
        if "\x00" in text:
            fail(not_text)
        if not text:
            fail(f"configuration error: AGENT_PROMPT_FILE {self.agent_prompt_file} is empty")
        return text

    def check_files(self) -> None:
        """Read the prompt now: a broken file stops start-up with one line instead of failing
        in every job."""
        _ = self.instructions

    def secret_values(self) -> list[str]:
        return secret_values(self)

    @property
    def livekit(self) -> LiveKitCredentials | None:
        """The server and its credentials; None unless all three are set (console needs none)."""
        if self.livekit_url and self.livekit_api_key and self.livekit_api_secret:
            return LiveKitCredentials(
                self.livekit_url, self.livekit_api_key, self.livekit_api_secret
            )
        return None

    def require_livekit(self) -> LiveKitCredentials:
        """`dev`/`start` need a server; `console` does not. Exit 2 naming what is missing."""
        credentials = self.livekit
        if credentials is None:
            missing = [
                name
                for name, value in (
                    ("LIVEKIT_URL", self.livekit_url),
                    ("LIVEKIT_API_KEY", self.livekit_api_key),
                    ("LIVEKIT_API_SECRET", self.livekit_api_secret),
                )
                if not value
            ]
            fail(f"configuration error: {', '.join(missing)} not set ({LIVEKIT_HINT})")
        if not credentials.url.startswith(("ws://", "wss://", "http://", "https://")):
            fail(
                f"configuration error: LIVEKIT_URL is invalid: {credentials.url!r} "
                "(expected wss://your-project.livekit.cloud or ws://localhost:7880)"
            )
        return credentials
