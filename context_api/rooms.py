"""LiveKit's RoomService as the context API uses it: list rooms and participants, and reach a
participant by `PerformRpc` (acknowledged) or `SendData` (not).

livekit-api 1.2 wraps ListRooms, ListParticipants and SendData but not PerformRpc, so all four
go through livekit-api's own Twirp client (`/twirp/livekit.RoomService/<Method>`, protobuf
bodies from livekit-protocol). What the server answers PerformRpc (seen on 1.13.5): the
participant's payload; `internal` (HTTP 500) with "RpcError <code>: <message>" when its handler
raised; `invalid_argument` "RpcError 1400" when it has no such method; `canceled` "RpcError
1502" after the response timeout; an identity not in the room is not answered at all (our
deadline ends the wait). Its admin tokens are cached per room: signing one costs about
70 µs, and a fan-out to a hundred rooms would otherwise sign two hundred.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

import aiohttp
from livekit import api
from livekit.api.twirp_client import ServerError, TwirpClient
from livekit.protocol import models, room

SERVICE = "RoomService"
TOKEN_TTL = timedelta(minutes=10)
TOKEN_REUSE_SECONDS = 300.0  # well inside the TTL
MAX_CACHED_TOKENS = 10_000

AGENT = models.ParticipantInfo.Kind.AGENT
GONE = models.ParticipantInfo.State.DISCONNECTED

# Twirp codes that mean "this server has no such method" (LiveKit before 1.9.2: no PerformRpc)
NO_SUCH_METHOD = {"bad_route", "unimplemented"}


@dataclass(frozen=True, slots=True)
class AgentParticipant:
    room: str
    identity: str
    attributes: dict[str, str]


class LiveKitRooms:
    def __init__(
        self,
        url: str,
        api_key: str,
        api_secret: str,
        *,
        session: aiohttp.ClientSession,
    ) -> None:
        # No failover replays: each room has a short deadline that a replay would outlive, and
        # a refused command (a 500 from PerformRpc) is not worth repeating.
        self._twirp = TwirpClient(session, url, "livekit", failover=False)
        self._api_key = api_key
        self._api_secret = api_secret
        self._tokens: dict[str, tuple[float, dict[str, str]]] = {}

    def _auth(self, room_name: str | None) -> dict[str, str]:
        """An admin token for `room_name` (None: one that may list rooms), cached a while."""
        key = "\x00list" if room_name is None else room_name
        now = time.monotonic()
        cached = self._tokens.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        grants = (
            api.VideoGrants(room_list=True)
            if room_name is None
            else api.VideoGrants(room_admin=True, room=room_name)
        )
        jwt = api.AccessToken(self._api_key, self._api_secret).with_grants(grants)
        header = {"Authorization": f"Bearer {jwt.with_ttl(TOKEN_TTL).to_jwt()}"}
        if len(self._tokens) >= MAX_CACHED_TOKENS:
            self._tokens.clear()
        self._tokens[key] = (now + TOKEN_REUSE_SECONDS, header)
        return header

    async def room_names(self, *, within: float) -> list[str]:
        """Every room on the server (its participant count lags behind joins, so no filter)."""
        listed = await self._twirp.request(
            SERVICE,
            "ListRooms",
            room.ListRoomsRequest(),
            self._auth(None),
            room.ListRoomsResponse,
            timeout=aiohttp.ClientTimeout(total=within),
        )
        return [r.name for r in listed.rooms]

    async def agents(self, room_name: str, *, within: float) -> list[AgentParticipant]:
        """The agent participants of `room_name` (none when the room does not exist)."""
        try:
            listed = await self._twirp.request(
                SERVICE,
                "ListParticipants",
                room.ListParticipantsRequest(room=room_name),
                self._auth(room_name),
                room.ListParticipantsResponse,
                timeout=aiohttp.ClientTimeout(total=within),
            )
        except ServerError as exc:
            if exc.code == "not_found":
                return []
            raise
        return [
            AgentParticipant(room_name, p.identity, dict(p.attributes))
            for p in listed.participants
            if p.kind == AGENT and p.state != GONE
        ]

    async def perform_rpc(
        self, room_name: str, identity: str, method: str, payload: str, *, within: float
    ) -> str:
        """The participant's answer; `ServerError` for an RPC error, a timeout or no method."""
        answer = await self._twirp.request(
            SERVICE,
            "PerformRpc",
            room.PerformRpcRequest(
                room=room_name,
                destination_identity=identity,
                method=method,
                payload=payload,
                response_timeout_ms=max(1000, int(within * 1000)),
            ),
            self._auth(room_name),
            room.PerformRpcResponse,
            # a little longer than the participant's own deadline, so the server's answer
            # (a timeout error) arrives before ours
            timeout=aiohttp.ClientTimeout(total=within + 1.0),
        )
        return answer.payload

    async def send_data(
        self,
        room_name: str,
        identity: str,
        topic: str,
        payload: bytes,
        *,
        nonce: bytes,
        within: float,
    ) -> None:
        """A reliable data packet to one participant; no acknowledgement. The server drops a
        second packet with the same 16-byte `nonce` (a replayed request) itself."""
        await self._twirp.request(
            SERVICE,
            "SendData",
            room.SendDataRequest(
                room=room_name,
                data=payload,
                kind=models.DataPacket.Kind.RELIABLE,
                destination_identities=[identity],
                topic=topic,
                nonce=nonce,
            ),
            self._auth(room_name),
            room.SendDataResponse,
            timeout=aiohttp.ClientTimeout(total=within),
        )
