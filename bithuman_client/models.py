"""Response shapes of the bitHuman endpoints we call."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RuntimeToken(BaseModel):
    """`POST /v1/runtime-tokens/mint`: a room-scoped token that stands in for the secret."""

    model_config = ConfigDict(extra="allow")

    scoped_token: str = Field(min_length=1)
    expires_at: str | int | float | None = None
