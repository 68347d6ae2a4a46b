"""Fan-out: find the rooms where an agent is live and hand each of them the command.

Per room, within one deadline (CONTEXT_API_ROOM_TIMEOUT_SECONDS): list its participants, pick
the agent participants advertising the agent code, sign a command for each and deliver it by
`PerformRpc` (the agent's answer is the acknowledgement) or, where the server has no
`PerformRpc` (or CONTEXT_API_DELIVERY=data), by `SendData` (sent, not acknowledged). Rooms run
concurrently (at most CONTEXT_API_CONCURRENCY at once); whatever happens in one room (a timeout,
a refusal, a LiveKit error) is that room's result and never another's.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Literal

import aiohttp
from livekit.api.twirp_client import ServerError

from common.logs import describe, get_logger
from context_api.metrics import Metrics
from context_api.rooms import NO_SUCH_METHOD, AgentParticipant, LiveKitRooms
from context_api.wire import (
    ACCEPTS_VERSION,
    ATTR_ACCEPTS,
    ATTR_AGENT_CODE,
    METHOD,
    TOPIC,
    Command,
    CommandSigner,
    CommandType,
)

log = get_logger("context_api.delivery")

Via = Literal["rpc", "data"]
Outcome = Literal["delivered", "skipped", "failed"]


class LiveKitUnavailable(Exception):
    """The rooms could not be listed: nothing was attempted."""


@dataclass(frozen=True, slots=True)
class Order:
    """What one API request asks for."""

    command_id: str
    agent_code: str
    type: CommandType
    text: str
    room_id: str | None
    interrupt: bool = False


@dataclass(slots=True)
class RoomResult:
    room_id: str
    agent_identity: str | None
    outcome: Outcome
    seconds: float
    via: Via | None = None
    acknowledged: bool = False
    result: str | None = None
    """The agent's word: "accepted" or "duplicate" (rpc); "sent" (data)."""
    reason: str | None = None

    def as_json(self) -> dict[str, object]:
        entry: dict[str, object] = {"room_id": self.room_id, "agent_identity": self.agent_identity}
        if self.outcome == "delivered":
            entry.update(via=self.via, acknowledged=self.acknowledged, result=self.result)
        else:
            entry["reason"] = self.reason
        entry["elapsed_ms"] = round(self.seconds * 1000, 1)
        return entry


@dataclass(slots=True)
class Report:
    results: list[RoomResult] = field(default_factory=list)

    def _of(self, outcome: Outcome) -> list[RoomResult]:
        return [r for r in self.results if r.outcome == outcome]

    @property
    def delivered(self) -> list[RoomResult]:
        return self._of("delivered")

    @property
    def skipped(self) -> list[RoomResult]:
        return self._of("skipped")

    @property
    def failed(self) -> list[RoomResult]:
        return self._of("failed")

    @property
    def delivered_rooms(self) -> int:
        return len({r.room_id for r in self.delivered})


class FanOut:
    def __init__(
        self,
        rooms: LiveKitRooms,
        signer: CommandSigner,
        metrics: Metrics,
        *,
        delivery: Literal["auto", "rpc", "data"],
        room_timeout: float,
        concurrency: int,
    ) -> None:
        self._rooms = rooms
        self._signer = signer
        self._metrics = metrics
        self._delivery = delivery
        self._room_timeout = room_timeout
        self._limit = asyncio.Semaphore(concurrency)
        self._rpc_missing = False  # learnt from the server (auto mode): PerformRpc unknown there

    @property
    def via(self) -> Via:
        if self._delivery == "data" or (self._delivery == "auto" and self._rpc_missing):
            return "data"
        return "rpc"

    async def run(self, order: Order) -> Report:
        """Every room's result; `LiveKitUnavailable` if the rooms could not be listed."""
        if order.room_id is not None:
            names = [order.room_id]
        else:
            try:
                names = await self._rooms.room_names(within=self._room_timeout)
            except (ServerError, aiohttp.ClientError, TimeoutError) as exc:
                raise LiveKitUnavailable(describe(exc)) from exc
        per_room = await asyncio.gather(*(self._room(order, name) for name in names))
        return Report([result for results in per_room for result in results])

    async def _room(self, order: Order, name: str) -> list[RoomResult]:
        async with self._limit:
            started = time.monotonic()
            deadline = started + self._room_timeout
            reason = None
            try:
                async with asyncio.timeout_at(_loop_time(deadline)):
                    agents = await self._rooms.agents(name, within=self._room_timeout)
            except TimeoutError:
                reason = f"timed out after {self._room_timeout:g} s listing the room"
            except ServerError as exc:
                reason = f"LiveKit refused to list the room: {exc.code} {exc.message}"[:300]
            except aiohttp.ClientError as exc:
                reason = f"LiveKit unreachable: {describe(exc)}"[:300]
            if reason is not None:
                result = RoomResult(name, None, "failed", time.monotonic() - started, reason=reason)
                self._count(result)
                return [result]
            code = order.agent_code
            targets = [a for a in agents if a.attributes.get(ATTR_AGENT_CODE) == code]
            return list(
                await asyncio.gather(
                    *(self._target(order, agent, started, deadline) for agent in targets)
                )
            )

    async def _target(
        self, order: Order, agent: AgentParticipant, started: float, deadline: float
    ) -> RoomResult:
        result = RoomResult(agent.room, agent.identity, "failed", 0.0)
        if agent.attributes.get(ATTR_ACCEPTS) != ACCEPTS_VERSION:
            result.outcome = "skipped"
            result.reason = "this agent does not take context commands (CONTEXT_COMMANDS off)"
        else:
            try:
                async with asyncio.timeout_at(_loop_time(deadline)):
                    await self._deliver(order, agent, deadline, result)
            except TimeoutError:
                result.reason = f"the agent did not answer within {self._room_timeout:g} s"
            except aiohttp.ClientError as exc:
                result.reason = f"LiveKit unreachable: {describe(exc)}"[:300]
            except ValueError as exc:  # the envelope is over LiveKit's size limit
                result.reason = str(exc)
        result.seconds = time.monotonic() - started
        self._count(result)
        return result

    async def _deliver(
        self, order: Order, agent: AgentParticipant, deadline: float, result: RoomResult
    ) -> None:
        command = Command(
            id=order.command_id,
            type=order.type,
            text=order.text,
            agent_code=order.agent_code,
            room=agent.room,
            to=agent.identity,
            issued_at=int(time.time() * 1000),
            interrupt=order.interrupt,
        )
        payload = self._signer.envelope(command)
        if self.via == "rpc":
            try:
                answer = await self._rooms.perform_rpc(
                    agent.room,
                    agent.identity,
                    METHOD,
                    payload,
                    within=max(0.5, deadline - time.monotonic()),
                )
            except ServerError as exc:
                if not (self._delivery == "auto" and exc.code in NO_SUCH_METHOD):
                    result.reason = _rpc_failure(exc)
                    return
                if not self._rpc_missing:
                    log.warning(
                        "LiveKit server has no PerformRpc: delivering by SendData, unacknowledged",
                        answer=exc.code,
                    )
                self._rpc_missing = True
            else:
                word = _agent_word(answer)
                if word is None:
                    result.reason = "the agent answered something that is not an acknowledgement"
                    return
                result.outcome, result.via, result.acknowledged, result.result = (
                    "delivered",
                    "rpc",
                    True,
                    word,
                )
                return
        try:
            await self._rooms.send_data(
                agent.room,
                agent.identity,
                TOPIC,
                payload.encode(),
                nonce=bytes.fromhex(order.command_id.removeprefix("cmd_")),
                within=max(0.5, deadline - time.monotonic()),
            )
        except ServerError as exc:
            result.reason = f"LiveKit refused SendData: {exc.code} {exc.message}"[:300]
            return
        result.outcome, result.via, result.acknowledged, result.result = (
            "delivered",
            "data",
            False,
            "sent",
        )

    def _count(self, result: RoomResult) -> None:
        self._metrics.room_results.labels(result.outcome, result.via or "none").inc()
        self._metrics.room_seconds.labels(result.outcome).observe(result.seconds)


def _loop_time(deadline: float) -> float:
    """`time.monotonic()` deadline on the running loop's clock."""
    return asyncio.get_running_loop().time() + (deadline - time.monotonic())


def _agent_word(answer: str) -> str | None:
    try:
        parsed = json.loads(answer)
    except ValueError:
        return None
    word = parsed.get("result") if isinstance(parsed, dict) else None
    return word if word in ("accepted", "duplicate") else None


def _rpc_failure(exc: ServerError) -> str:
    """Why a room failed, from LiveKit's answer to PerformRpc."""
    message = " ".join(exc.message.split())[:200]
    if exc.code in ("deadline_exceeded", "canceled"):
        return f"the agent did not answer in time ({message})"
    if exc.code == "not_found":
        return "the agent left the room"
    if exc.code == "invalid_argument" and "not supported" in message.lower():
        return "the agent has no context command handler (an older agent?)"
    if exc.code == "internal":
        return f"the agent refused or failed the command: {message}"
    return f"LiveKit answered {exc.code}: {message}"
