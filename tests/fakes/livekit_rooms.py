"""The rooms and participants the LiveKit stand-in believes exist.

No media flows through the stand-in, so nobody really joins: tests seed participants here (the
user, the avatar) and the RoomService stub reads and changes them as the real server would.
Dispatching a job creates its room, as a real server creates a room on first use.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from livekit.protocol import models

Clock = Callable[[], float]


def new_sid(prefix: str) -> str:
    """An id shaped like the server's (`RM_...`, `PA_...`, `AJ_...`)."""
    return prefix + secrets.token_hex(6)


@dataclass
class RoomState:
    room: models.Room
    participants: dict[str, models.ParticipantInfo] = field(default_factory=dict)


class Rooms:
    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._rooms: dict[str, RoomState] = {}

    def ensure(self, name: str, *, metadata: str = "") -> models.Room:
        """The room called `name`, created on first use."""
        state = self._rooms.get(name)
        if state is None:
            now = self._clock()
            room = models.Room(
                sid=new_sid("RM_"),
                name=name,
                metadata=metadata,
                creation_time=int(now),
                creation_time_ms=int(now * 1000),
            )
            state = self._rooms[name] = RoomState(room)
        return state.room

    def get(self, name: str) -> RoomState | None:
        return self._rooms.get(name)

    def names(self) -> list[str]:
        return list(self._rooms)

    def delete(self, name: str) -> bool:
        return self._rooms.pop(name, None) is not None

    def add_participant(
        self,
        room: str,
        identity: str,
        *,
        kind: models.ParticipantInfo.Kind = models.ParticipantInfo.Kind.STANDARD,
        name: str = "",
        metadata: str = "",
        attributes: dict[str, str] | None = None,
    ) -> models.ParticipantInfo:
        """Seed a participant (creating the room); replaces one with the same identity."""
        self.ensure(room)
        state = self._rooms[room]
        info = models.ParticipantInfo(
            sid=new_sid("PA_"),
            identity=identity,
            name=name,
            metadata=metadata,
            attributes=attributes or {},
            kind=kind,
            state=models.ParticipantInfo.State.ACTIVE,
            joined_at=int(self._clock()),
        )
        state.participants[identity] = info
        state.room.num_participants = len(state.participants)
        return info

    def remove_participant(self, room: str, identity: str) -> bool:
        state = self._rooms.get(room)
        if state is None or state.participants.pop(identity, None) is None:
            return False
        state.room.num_participants = len(state.participants)
        return True
