"""Response shapes of the bitHuman endpoints we call."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class RuntimeToken(BaseModel):
    """`POST /v1/runtime-tokens/mint`: a room-scoped token that stands in for the secret."""

    model_config = ConfigDict(extra="allow")

    scoped_token: str = Field(min_length=1)


class DynamicsCatalog(BaseModel):
    """`GET /v1/dynamics/{agent_id}`: the gestures generated for an avatar.

    `gestures` arrives as a name-to-video-URL map (current API) or a list of names (older
    docs); both become a map. An avatar that never generated dynamics answers `url: null`,
    `gestures: {}` with `status: "ready"`, so `has_dynamics` ignores `status`.
    """

    model_config = ConfigDict(extra="allow")

    agent_id: str | None = None
    url: str | None = None
    status: str | None = None
    gestures: dict[str, str | None] = Field(default_factory=dict)

    @field_validator("gestures", mode="before")
    @classmethod
    def _gestures_as_map(cls, value: object) -> object:
        if value is None:
            return {}
        if isinstance(value, list):
            return {str(name): None for name in value}
        return value

    @property
    def has_dynamics(self) -> bool:
        return bool(self.url) and bool(self.gestures)

    @property
    def gesture_names(self) -> list[str]:
        return sorted(self.gestures)


class _Answer(BaseModel):
    """A success answer, kept whole (unknown fields too) so `--json` can print it as received."""

    model_config = ConfigDict(extra="allow")

    success: bool = True
    message: str | None = None


class ContextDelivery(BaseModel):
    """`data` of a speak / add-context answer. bitHuman documents the counts; our self-hosted
    API adds the per-room lists and the command id."""

    model_config = ConfigDict(extra="allow")

    agent_code: str | None = None
    context_type: str | None = None
    delivered_to_rooms: int = Field(ge=0)
    timestamp: str | None = None
    command_id: str | None = None
    rooms: list[dict[str, Any]] = Field(default_factory=list)
    rooms_skipped: list[dict[str, Any]] = Field(default_factory=list)
    rooms_failed: list[dict[str, Any]] = Field(default_factory=list)


class ContextAnswer(_Answer):
    """`POST /v1/agent/{code}/speak` and `/add-context`."""

    data: ContextDelivery


class JobStarted(_Answer):
    """`POST /v1/agent/generate` and `POST /v1/dynamics/generate`: `{agent_id, status}`."""

    agent_id: str = Field(min_length=1)
    status: str | None = None


# Generation states bitHuman documents; only the last two end a job.
TERMINAL_STATUSES = ("ready", "failed")


class AgentStatus(BaseModel):
    """`data` of `GET /v1/agent/status/{agent_id}`. `status` goes processing -> generating ->
    completed -> ready, or failed (with `error_message`)."""

    model_config = ConfigDict(extra="allow")

    agent_id: str | None = None
    status: str = Field(min_length=1)
    event_type: str | None = None
    error_message: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    system_prompt: str | None = None
    image_url: str | None = None
    video_url: str | None = None
    name: str | None = None
    model_url: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES


class AgentStatusAnswer(_Answer):
    data: AgentStatus
