"""Response shapes of the bitHuman endpoints we call."""

from __future__ import annotations

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
