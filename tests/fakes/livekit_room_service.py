"""Stub of LiveKit's RoomService, including the PerformRpc route livekit-api has no wrapper for.

Methods, each with the grant the real server requires (`roomAdmin` for the request's room
unless noted) and its not-found answers:

- ListRooms (`roomList`), DeleteRoom (`roomCreate`; not_found for an unknown room)
- ListParticipants (empty for an unknown room), GetParticipant, RemoveParticipant and
  UpdateParticipant (not_found "participant not found")
- SendData: recorded, nobody receives it
- PerformRpc: the destination must be a seeded participant (not_found otherwise); the answer
  comes from a handler registered with `on_rpc(identity, method, handler)`, else the RpcError
  1400 a participant without that method gives. Handlers raise `rpc_error(code)` to fail the
  way a participant's RpcError reaches a server-side caller.

Participants are whatever `Rooms.add_participant` seeded; calls are recorded by the router.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from livekit.api.access_token import Claims
from livekit.protocol import models, room

from tests.fakes.livekit_auth import has_room_admin
from tests.fakes.livekit_rooms import Rooms
from tests.fakes.livekit_twirp import TwirpError, TwirpRouter

SERVICE = "RoomService"
RPC_MAX_PAYLOAD_BYTES = 15 * 1024

# How the server reports a destination's RpcError to a PerformRpc caller: the Twirp code
# livekit-server maps each built-in RPC error code to, and that code's standard message.
RPC_ERRORS = {
    1400: ("invalid_argument", "Method not supported at destination"),
    1401: ("not_found", "Recipient not found"),
    1402: ("malformed", "Request payload too large"),
    1500: ("internal", "Application error in method handler"),
    1501: ("canceled", "Connection timeout"),
    1502: ("canceled", "Response timeout"),
    1503: ("unavailable", "Recipient disconnected"),
    1504: ("malformed", "Response payload too large"),
    1505: ("internal", "Failed to send"),
}

RpcHandler = Callable[[room.PerformRpcRequest], str | Awaitable[str]]


def rpc_error(code: int, message: str = "", data: str = "") -> TwirpError:
    """The Twirp error a PerformRpc caller gets when the destination answers RpcError `code`."""
    twirp_code, standard = RPC_ERRORS[code]
    text = f"RpcError {code}: {message or standard}" + (f": {data}" if data else "")
    return TwirpError(twirp_code, text)


class _RoomScoped(Protocol):
    @property
    def room(self) -> str: ...


def _admin(request: _RoomScoped, claims: Claims) -> bool:
    return has_room_admin(claims, request.room)


def _can_list(_: room.ListRoomsRequest, claims: Claims) -> bool:
    return bool(claims.video and claims.video.room_list)


def _can_create(_: room.DeleteRoomRequest, claims: Claims) -> bool:
    return bool(claims.video and claims.video.room_create)


class RoomServiceStub:
    def __init__(self, rooms: Rooms, router: TwirpRouter) -> None:
        self._rooms = rooms
        self._rpc_handlers: dict[tuple[str, str], RpcHandler] = {}
        router.add(SERVICE, "ListRooms", room.ListRoomsRequest, self._list_rooms, _can_list)
        router.add(SERVICE, "DeleteRoom", room.DeleteRoomRequest, self._delete_room, _can_create)
        router.add(
            SERVICE,
            "ListParticipants",
            room.ListParticipantsRequest,
            self._list_participants,
            _admin,
        )
        router.add(
            SERVICE, "GetParticipant", room.RoomParticipantIdentity, self._get_participant, _admin
        )
        router.add(
            SERVICE,
            "RemoveParticipant",
            room.RoomParticipantIdentity,
            self._remove_participant,
            _admin,
        )
        router.add(
            SERVICE,
            "UpdateParticipant",
            room.UpdateParticipantRequest,
            self._update_participant,
            _admin,
        )
        router.add(SERVICE, "SendData", room.SendDataRequest, self._send_data, _admin)
        router.add(SERVICE, "PerformRpc", room.PerformRpcRequest, self._perform_rpc, _admin)

    def on_rpc(self, identity: str, method: str, handler: RpcHandler) -> None:
        """Answer PerformRpc calls of `method` on participant `identity` with `handler`."""
        self._rpc_handlers[(identity, method)] = handler

    def _participant(self, room_name: str, identity: str) -> models.ParticipantInfo:
        state = self._rooms.get(room_name)
        if state is None or identity not in state.participants:
            raise TwirpError("not_found", "participant not found")
        return state.participants[identity]

    async def _list_rooms(self, request: room.ListRoomsRequest) -> room.ListRoomsResponse:
        wanted = set(request.names)
        names = [n for n in self._rooms.names() if not wanted or n in wanted]
        return room.ListRoomsResponse(rooms=[self._rooms.ensure(n) for n in names])

    async def _delete_room(self, request: room.DeleteRoomRequest) -> room.DeleteRoomResponse:
        if not self._rooms.delete(request.room):
            raise TwirpError("not_found", "room not found")
        return room.DeleteRoomResponse()

    async def _list_participants(
        self, request: room.ListParticipantsRequest
    ) -> room.ListParticipantsResponse:
        state = self._rooms.get(request.room)
        participants = list(state.participants.values()) if state else []
        return room.ListParticipantsResponse(participants=participants)

    async def _get_participant(
        self, request: room.RoomParticipantIdentity
    ) -> models.ParticipantInfo:
        return self._participant(request.room, request.identity)

    async def _remove_participant(
        self, request: room.RoomParticipantIdentity
    ) -> room.RemoveParticipantResponse:
        if not self._rooms.remove_participant(request.room, request.identity):
            raise TwirpError("not_found", "participant not found")
        return room.RemoveParticipantResponse()

    async def _update_participant(
        self, request: room.UpdateParticipantRequest
    ) -> models.ParticipantInfo:
        info = self._participant(request.room, request.identity)
        if request.metadata:
            info.metadata = request.metadata
        if request.name:
            info.name = request.name
        if request.HasField("permission"):
            info.permission.CopyFrom(request.permission)
        for key, value in request.attributes.items():
            if value:
                info.attributes[key] = value
            else:
                info.attributes.pop(key, None)  # an empty value deletes the attribute
        return info

    async def _send_data(self, _: room.SendDataRequest) -> room.SendDataResponse:
        return room.SendDataResponse()

    async def _perform_rpc(self, request: room.PerformRpcRequest) -> room.PerformRpcResponse:
        if not request.destination_identity:
            raise TwirpError("invalid_argument", "destination identity is required")
        if self._rooms.get(request.room) is None:
            raise TwirpError("not_found", "room not found")
        self._participant(request.room, request.destination_identity)
        if len(request.payload.encode()) > RPC_MAX_PAYLOAD_BYTES:
            raise rpc_error(1402)
        handler = self._rpc_handlers.get((request.destination_identity, request.method))
        if handler is None:
            raise rpc_error(1400)
        answer = handler(request)
        payload = answer if isinstance(answer, str) else await answer
        return room.PerformRpcResponse(payload=payload)
