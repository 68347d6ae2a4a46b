"""What a token request is granted: the room, a server-made identity, the agents dispatched.

Identities are never taken from the client: identities are unique per room, so a client that
could pick one could join as the avatar (`bithuman-avatar-agent`) or the agent and kick it out.
Generated room names carry 128 random bits, so nobody can guess their way into a conversation.
"""

from __future__ import annotations

import re
import secrets

from token_server.minting import Dispatch, Grant
from token_server.schema import RoomConfigRequest, TokenRequest
from token_server.settings import TokenServerSettings

ROOM_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


class AgentNotAllowed(ValueError):
    def __init__(self, names: list[str]) -> None:
        super().__init__(f"agents not allowed: {', '.join(names)}")
        self.names = names


def is_valid_room_name(name: str) -> bool:
    return ROOM_NAME.fullmatch(name) is not None


def new_room_name() -> str:
    return f"room-{secrets.token_urlsafe(16)}"


def new_identity() -> str:
    return f"user-{secrets.token_urlsafe(12)}"


class GrantPolicy:
    def __init__(
        self,
        *,
        default_agent: str = "",
        dispatchable: frozenset[str] = frozenset(),
        client_room_names: bool = True,
    ) -> None:
        self.default_agents = (Dispatch(default_agent),) if default_agent else ()
        self._dispatchable = dispatchable
        self._client_room_names = client_room_names

    @classmethod
    def from_settings(cls, settings: TokenServerSettings) -> GrantPolicy:
        return cls(
            default_agent=settings.agent_name,
            dispatchable=settings.dispatchable_agents(),
            client_room_names=settings.allow_client_room_names,
        )

    def grant_for(self, request: TokenRequest) -> Grant:
        return Grant(
            room=self.room_for(request.requested_room),
            identity=new_identity(),
            name=request.display_name,
            metadata=request.participant_metadata or "",
            attributes=request.participant_attributes or {},
            agents=self.agents_for(request.room_config),
        )

    def room_for(self, requested: str | None) -> str:
        """The client's room if it may choose and the name is valid, else a fresh one."""
        if self._client_room_names and requested and is_valid_room_name(requested):
            return requested
        return new_room_name()

    def agents_for(self, config: RoomConfigRequest | None) -> tuple[Dispatch, ...]:
        """The client's dispatches when every one is allow-listed; AGENT_NAME when none."""
        if config is None or not config.agents:
            return self.default_agents
        refused = sorted({a.agent_name for a in config.agents} - self._dispatchable)
        if refused:
            raise AgentNotAllowed(refused)
        return tuple(Dispatch(a.agent_name, a.metadata) for a in config.agents)
