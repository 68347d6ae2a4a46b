"""Sending gestures against a recording stand-in of the room's local participant."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from bithuman import VideoControl

from agent.dynamics.sender import (
    AVATAR_IDENTITY,
    RPC_METHOD,
    AvatarRpc,
    GestureSender,
    LocalRuntime,
    reply_outcome,
)
from agent.dynamics.stats import GestureStats, Outcome
from devkit.dynamics_standins import (
    RecordingParticipant,
    StandInRoom,
    fails,
    never,
    settle,
    triggered,
)
from tests.dynamics.conftest import lines

MOMENT = datetime(2026, 11, 22, 8, 30, 15, 250000, tzinfo=UTC)


def rpc_target(participant: RecordingParticipant, *, present: bool = True) -> AvatarRpc:
    room = StandInRoom(participant, present=["user-1", *([AVATAR_IDENTITY] if present else [])])
    return AvatarRpc(room, response_timeout=2.5, now=lambda: MOMENT)


async def deliver(target: AvatarRpc | LocalRuntime, *gestures: str) -> GestureStats:
    stats = GestureStats()
    sender = GestureSender(target, stats, deadline=5.0)
    for gesture in gestures:
        sender.send(gesture)
    await settle()
    assert sender.pending == 0
    await sender.aclose()
    return stats


async def test_only_the_avatar_is_asked_with_the_documented_payload() -> None:
    participant = RecordingParticipant(identity="agent-7")
    stats = await deliver(rpc_target(participant), "laugh_react")
    assert stats.counts == {Outcome.PERFORMED: 1}
    [call] = participant.calls
    assert call.destination_identity == AVATAR_IDENTITY
    assert call.method == RPC_METHOD == "trigger_dynamics"
    assert call.response_timeout == 2.5
    assert call.body == {
        "action": "laugh_react",
        "identity": "agent-7",
        "timestamp": "2026-11-22T08:30:15.250Z",
    }
    assert datetime.fromisoformat(call.body["timestamp"]) == MOMENT


async def test_the_default_timestamp_is_the_current_utc_time() -> None:
    participant = RecordingParticipant()
    room = StandInRoom(participant, present=[AVATAR_IDENTITY])
    before = datetime.now(UTC).replace(microsecond=0)
    await deliver(AvatarRpc(room, response_timeout=1), "wave")
    sent = datetime.fromisoformat(participant.calls[0].body["timestamp"])
    assert sent.tzinfo is not None and sent.utcoffset() == timedelta(0)
    assert before <= sent <= datetime.now(UTC)


def test_readiness_follows_the_avatar_participant() -> None:
    participant = RecordingParticipant()
    room = StandInRoom(participant, present=["user-1"])
    target = AvatarRpc(room, response_timeout=1)
    assert not target.is_ready()
    room.remote_participants[AVATAR_IDENTITY] = object()
    assert target.is_ready()
    assert not AvatarRpc(room, identity="someone-else", response_timeout=1).is_ready()


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [
        (triggered(True), Outcome.PERFORMED),
        (triggered(False), Outcome.NOT_PERFORMED),
        (lambda _: "not json", Outcome.UNCONFIRMED),
        (lambda _: json.dumps({"status": "ok"}), Outcome.UNCONFIRMED),
        (fails(1400), Outcome.UNSUPPORTED_METHOD),
        (fails(1401), Outcome.RECIPIENT_NOT_FOUND),
        (fails(1502), Outcome.TIMEOUT),
        (fails(1501), Outcome.TIMEOUT),
        (fails(1500), Outcome.RPC_ERROR),
    ],
)
async def test_every_answer_becomes_a_counted_outcome_never_an_exception(
    answer: object, outcome: Outcome
) -> None:
    participant = RecordingParticipant(answer=answer)  # type: ignore[arg-type]
    stats = await deliver(rpc_target(participant), "wave")
    assert stats.counts == {outcome: 1}


async def test_each_kind_of_failure_is_logged_once(logged: pytest.LogCaptureFixture) -> None:
    participant = RecordingParticipant(answer=fails(1401))
    target = rpc_target(participant)
    stats = await deliver(target, "wave", "nod", "laugh")
    participant.answer = fails(1400)
    stats_1400 = await deliver(target, "wave")
    participant.answer = triggered(False)
    await deliver(target, "wave")
    assert stats.counts == {Outcome.RECIPIENT_NOT_FOUND: 3}
    assert stats_1400.counts == {Outcome.UNSUPPORTED_METHOD: 1}
    assert lines(logged) == [
        "avatar participant not found (RPC error 1401)",
        "avatar has no trigger_dynamics handler (RPC error 1400)",
        "avatar did not perform the gesture (unknown to it?)",
    ]


async def test_a_call_that_never_returns_ends_at_the_deadline() -> None:
    participant = RecordingParticipant(answer=never)
    stats = GestureStats()
    sender = GestureSender(rpc_target(participant), stats, deadline=0.01)
    sender.send("wave")
    await settle()
    assert stats.counts == {Outcome.TIMEOUT: 1}
    assert participant.cancelled == 1


async def test_unexpected_errors_are_contained() -> None:
    def explode(_: str) -> str:
        raise RuntimeError("boom")

    stats = await deliver(rpc_target(RecordingParticipant(answer=explode)), "wave")
    assert stats.counts == {Outcome.ERROR: 1}


async def test_aclose_cancels_requests_in_flight_and_refuses_new_ones() -> None:
    participant = RecordingParticipant(answer=never)
    stats = GestureStats()
    sender = GestureSender(rpc_target(participant), stats, deadline=60)
    sender.send("wave")
    sender.send("laugh")
    await participant.called.wait()
    await asyncio.sleep(0)
    assert sender.pending == 2
    await sender.aclose()
    assert sender.pending == 0
    assert participant.cancelled == 2
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("dynamics.")]
    sender.send("nod")
    assert sender.pending == 0 and len(participant.calls) == 2
    assert stats.counts == {}


class RecordingRuntime:
    def __init__(self) -> None:
        self.pushed: list[object] = []

    async def push(self, control: object) -> None:
        self.pushed.append(control)


async def test_local_mode_pushes_the_gesture_into_the_runtime() -> None:
    runtime = RecordingRuntime()
    target = LocalRuntime(runtime)
    assert target.is_ready()
    stats = await deliver(target, "laugh_react")
    assert stats.counts == {Outcome.PERFORMED: 1}
    [control] = runtime.pushed
    assert isinstance(control, VideoControl)
    assert control.action == "laugh_react" and control.audio is None


def test_reply_parsing() -> None:
    assert reply_outcome('{"animation_triggered": true}') is Outcome.PERFORMED
    assert reply_outcome('{"animation_triggered": false}') is Outcome.NOT_PERFORMED
    assert reply_outcome('{"animation_triggered": "yes"}') is Outcome.UNCONFIRMED
    assert reply_outcome("[]") is Outcome.UNCONFIRMED
    assert reply_outcome("") is Outcome.UNCONFIRMED
