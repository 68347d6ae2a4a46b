"""The body of `POST /token`: LiveKit's standard token request and the bitHuman Flutter guide's.

Standard clients send `{room_name, participant_identity, participant_name, participant_metadata,
participant_attributes, room_config}`; the guide sends `{room, participant}`. Both are one model.
Types are strict (a number is not a room name) and unknown top-level fields are ignored, but a
`room_config` may carry agent dispatches only: any other room setting is refused.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from common.web import ApiError

MAX_NAME_CHARS = 128
MAX_METADATA_CHARS = 4096
MAX_ATTRIBUTES = 32
MAX_AGENTS = 8
MAX_ERROR_DETAILS = 20
# LiveKit keeps attribute keys starting with "lk." for itself (agent state, publish-on-behalf).
RESERVED_ATTRIBUTE_PREFIX = "lk."

# Control characters (NUL, line breaks, escapes), lone surrogates, and the invisible formatting
# characters that reorder or break displayed text: bidirectional marks, embeddings, overrides and
# isolates (a name holding U+202E shows reversed), and the Unicode line/paragraph separators.
_CONTROL = re.compile(
    r"[\x00-\x1f\x7f-\x9f\ud800-\udfff\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]"
)


def _printable(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control or bidirectional formatting characters")
    return value


def _no_nul(value: str) -> str:
    # Free text (JSON, line breaks) is fine; NUL truncates strings in C consumers.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _unreserved(key: str) -> str:
    if key.startswith(RESERVED_ATTRIBUTE_PREFIX):
        raise ValueError(f"keys starting with {RESERVED_ATTRIBUTE_PREFIX!r} are reserved")
    return key


DisplayName = Annotated[
    str, StringConstraints(max_length=MAX_NAME_CHARS), AfterValidator(_printable)
]
AttributeKey = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64),
    AfterValidator(_printable),
    AfterValidator(_unreserved),
]
AttributeValue = Annotated[str, StringConstraints(max_length=1024), AfterValidator(_printable)]
Metadata = Annotated[str, StringConstraints(max_length=MAX_METADATA_CHARS), AfterValidator(_no_nul)]


class AgentDispatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    # Protobuf JSON allows either spelling; SDKs differ.
    agent_name: str = Field(
        min_length=1,
        max_length=MAX_NAME_CHARS,
        validation_alias=AliasChoices("agent_name", "agentName"),
    )
    metadata: Metadata = ""


class RoomConfigRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    agents: list[AgentDispatchRequest] = Field(default_factory=list, max_length=MAX_AGENTS)

    @field_validator("agents")
    @classmethod
    def _distinct(cls, agents: list[AgentDispatchRequest]) -> list[AgentDispatchRequest]:
        if len({agent.agent_name for agent in agents}) != len(agents):
            raise ValueError("each agent may be dispatched once")
        return agents


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)

    room_name: str | None = None
    room: str | None = None  # Flutter guide
    participant_name: DisplayName | None = None
    participant: DisplayName | None = None  # Flutter guide
    # Never used as the identity (identities are generated); only as a display-name fallback.
    participant_identity: DisplayName | None = None
    participant_metadata: Metadata | None = None
    participant_attributes: dict[AttributeKey, AttributeValue] | None = Field(
        None, max_length=MAX_ATTRIBUTES
    )
    room_config: RoomConfigRequest | None = None

    @property
    def requested_room(self) -> str | None:
        return self.room_name if self.room_name is not None else self.room

    @property
    def display_name(self) -> str:
        return self.participant_name or self.participant or self.participant_identity or ""


def parse_token_request(body: bytes) -> TokenRequest:
    """Validate a raw body (empty means `{}`) or raise a 400 `ApiError` saying what is wrong."""
    if not body.strip():
        return TokenRequest()
    try:
        return TokenRequest.model_validate_json(body)
    except ValidationError as exc:
        raise _bad_request(exc) from None


def _bad_request(exc: ValidationError) -> ApiError:
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    if any(error["type"] == "json_invalid" for error in errors):
        return ApiError(400, "INVALID_JSON", "request body is not valid JSON")
    if any(error["type"] == "model_type" and not error["loc"] for error in errors):
        return ApiError(400, "INVALID_BODY", "request body must be a JSON object")
    details = [_detail(error["loc"], error["msg"]) for error in errors[:MAX_ERROR_DETAILS]]
    if any(
        error["type"] == "extra_forbidden" and error["loc"][:1] == ("room_config",)
        for error in errors
    ):
        return ApiError(
            400,
            "ROOM_CONFIG_NOT_ALLOWED",
            "room_config may only dispatch agents (agents[].agent_name, agents[].metadata)",
            details,
        )
    return ApiError(400, "VALIDATION_ERROR", "invalid token request", details)


def _detail(loc: tuple[Any, ...], message: str) -> dict[str, str]:
    # Keys come from the client: keep the reflected field path short.
    field = ".".join(str(part) for part in loc)
    return {"field": field[:200], "message": message}
