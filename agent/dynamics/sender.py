"""Deliver gestures without ever holding up or breaking the conversation.

A target performs one gesture: `AvatarRpc` asks the cloud avatar participant over LiveKit RPC,
`LocalRuntime` pushes it into an in-process bitHuman runtime (.imx). `GestureSender` runs each
request as a tracked background task under a deadline, turns every failure into a counted
outcome (never an exception), and cancels whatever is still running when the session ends.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Protocol

from livekit import rtc

from agent.dynamics.settings import AVATAR_IDENTITY
from agent.dynamics.stats import GestureStats, Outcome
from common.logs import describe, get_logger

log = get_logger("agent.dynamics")

RPC_METHOD = "trigger_dynamics"
# livekit-rtc waits up to 7 s for the avatar to acknowledge a request before the response
# timeout starts; our own deadline only catches a call that never returns at all.
RPC_ACK_BUDGET = 7.0
_CODES = rtc.RpcError.ErrorCode
_RPC_OUTCOMES: dict[int, Outcome] = {
    _CODES.UNSUPPORTED_METHOD: Outcome.UNSUPPORTED_METHOD,
    _CODES.RECIPIENT_NOT_FOUND: Outcome.RECIPIENT_NOT_FOUND,
    _CODES.RECIPIENT_DISCONNECTED: Outcome.RECIPIENT_NOT_FOUND,
    _CODES.RESPONSE_TIMEOUT: Outcome.TIMEOUT,
    _CODES.CONNECTION_TIMEOUT: Outcome.TIMEOUT,
}


class RpcCaller(Protocol):
    @property
    def identity(self) -> str: ...

    async def perform_rpc(
        self,
        *,
        destination_identity: str,
        method: str,
        payload: str,
        response_timeout: float | None = None,
    ) -> str: ...


class RoomLike(Protocol):
    """The part of `rtc.Room` a cloud gesture needs."""

    @property
    def local_participant(self) -> RpcCaller: ...

    @property
    def remote_participants(self) -> Mapping[str, object]: ...


class GestureTarget(Protocol):
    def is_ready(self) -> bool:
        """False while a gesture cannot reach the avatar (it has not joined yet)."""
        ...

    async def perform(self, gesture: str) -> Outcome: ...


def utc_now() -> datetime:
    return datetime.now(UTC)


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def reply_outcome(reply: str) -> Outcome:
    """Read `animation_triggered` from the avatar's answer."""
    try:
        body = json.loads(reply)
    except ValueError:
        return Outcome.UNCONFIRMED
    triggered = body.get("animation_triggered") if isinstance(body, dict) else None
    if isinstance(triggered, bool):
        return Outcome.PERFORMED if triggered else Outcome.NOT_PERFORMED
    return Outcome.UNCONFIRMED


class AvatarRpc:
    """Cloud avatar: RPC `trigger_dynamics` to the avatar participant, and to no one else."""

    def __init__(
        self,
        room: RoomLike,
        *,
        identity: str = AVATAR_IDENTITY,
        response_timeout: float,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._room = room
        self.identity = identity
        self.response_timeout = response_timeout
        self._now = now

    def is_ready(self) -> bool:
        return self.identity in self._room.remote_participants

    async def perform(self, gesture: str) -> Outcome:
        caller = self._room.local_participant
        payload = {
            "action": gesture,
            "identity": caller.identity,
            "timestamp": _timestamp(self._now()),
        }
        reply = await caller.perform_rpc(
            destination_identity=self.identity,
            method=RPC_METHOD,
            payload=json.dumps(payload),
            response_timeout=self.response_timeout,
        )
        return reply_outcome(reply)


class Runtime(Protocol):
    """The part of `bithuman.AsyncBithuman` a local gesture needs."""

    async def push(self, control: object) -> None: ...


class LocalRuntime:
    """Local .imx avatar: the gesture goes into the in-process runtime's control queue."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def is_ready(self) -> bool:
        return True

    async def perform(self, gesture: str) -> Outcome:
        from bithuman import VideoControl  # the SDK is heavy; only local mode needs it

        await self._runtime.push(VideoControl(action=gesture))
        return Outcome.PERFORMED


class GestureSender:
    """Runs gesture requests in the background; `aclose()` leaves nothing running."""

    def __init__(self, target: GestureTarget, stats: GestureStats, *, deadline: float) -> None:
        self.target = target
        self._stats = stats
        self._deadline = deadline
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def pending(self) -> int:
        return len(self._tasks)

    def send(self, gesture: str, **context: str) -> None:
        if self._closed:
            return
        task = asyncio.get_running_loop().create_task(
            self._deliver(gesture, context), name=f"dynamics.gesture.{gesture}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, gesture: str, context: dict[str, str]) -> None:
        fields = {"gesture": gesture, **context}
        try:
            async with asyncio.timeout(self._deadline):
                outcome = await self.target.perform(gesture)
        except rtc.RpcError as exc:
            outcome = _RPC_OUTCOMES.get(exc.code, Outcome.RPC_ERROR)
            fields.update(code=str(exc.code), reason=exc.message)
        except TimeoutError:
            outcome = Outcome.TIMEOUT
        except Exception as exc:
            outcome = Outcome.ERROR
            fields.update(reason=describe(exc))
        self._stats.record(outcome, **fields)

    async def aclose(self) -> None:
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
