"""The agent's side of context commands, in-process: what a command does before the session
starts, while it starts, while it runs and after it ended; dedupe; how refusals are logged.
(Through real rooms and a real session: tests/e2e/test_context_api.py.)"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from livekit.agents import Agent

from agent.context_commands import MAX_PENDING, ContextCommands, SeenCommands
from context_api.wire import (
    ACCEPTS_VERSION,
    ATTR_ACCEPTS,
    ATTR_AGENT_CODE,
    METHOD,
    Command,
    CommandSigner,
    CommandVerifier,
    Refused,
    new_command_id,
)
from devkit.context_agents import RecordingSession

KEY = "APIcommands"
SECRET = "commands-test-secret-0123456789abcdef"
ROOM = "room-1"
IDENTITY = "agent-AJ_1"
CODE = "A12345678"
signer = CommandSigner(KEY, SECRET)


@dataclass
class FakeParticipant:
    identity: str = IDENTITY
    methods: dict[str, Any] = field(default_factory=dict)
    attributes: dict[str, str] = field(default_factory=dict)

    def register_rpc_method(self, name: str, handler: Any) -> None:
        self.methods[name] = handler

    def unregister_rpc_method(self, name: str) -> None:
        self.methods.pop(name, None)

    async def set_attributes(self, attributes: dict[str, str]) -> None:
        self.attributes.update(attributes)


@dataclass
class FakeRoom:
    name: str = ROOM
    local_participant: FakeParticipant = field(default_factory=FakeParticipant)
    handlers: dict[str, Any] = field(default_factory=dict)

    def on(self, event: str, handler: Any) -> None:
        self.handlers[event] = handler

    def off(self, event: str, handler: Any) -> None:
        self.handlers.pop(event, None)


def payload(kind: str = "speak", text: str = "Hello.", **changes: Any) -> str:
    fields: dict[str, Any] = {
        "id": new_command_id(),
        "type": kind,
        "text": text,
        "agent_code": CODE,
        "room": ROOM,
        "to": IDENTITY,
        "issued_at": int(time.time() * 1000),
    }
    return signer.envelope(Command(**(fields | changes)))


@pytest.fixture
async def parts() -> tuple[ContextCommands, FakeRoom, RecordingSession, Agent]:
    room, session, agent = FakeRoom(), RecordingSession(), Agent(instructions="persona")
    commands = await ContextCommands.attach(
        room,  # type: ignore[arg-type]
        session,  # type: ignore[arg-type]
        agent,
        api_key=KEY,
        api_secret=SECRET,
        agent_code=CODE,
    )
    return commands, room, session, agent


def context_of(agent: Agent) -> list[str]:
    return [
        item.text_content or ""
        for item in agent.chat_ctx.items
        if item.type == "message" and item.role == "system"
    ]


async def test_it_advertises_itself_and_answers_the_method(parts: Any) -> None:
    commands, room, _, _ = parts
    assert room.local_participant.attributes == {
        ATTR_AGENT_CODE: CODE,
        ATTR_ACCEPTS: ACCEPTS_VERSION,
    }
    assert METHOD in room.local_participant.methods and "data_received" in room.handlers
    await commands.aclose()
    assert METHOD not in room.local_participant.methods and "data_received" not in room.handlers


async def test_before_the_session_context_goes_in_first_and_speech_waits(parts: Any) -> None:
    commands, _, session, agent = parts
    answer = await commands.handle(payload("add_context", "Ada is a VIP."), via="rpc", sender="s")
    assert answer["result"] == "accepted" and answer["state"] == "before start"
    assert context_of(agent) == ["Ada is a VIP."]  # the session's initial context

    first = await commands.handle(payload("speak", "One."), via="rpc", sender="s")
    await commands.handle(payload("speak", "Two."), via="data", sender="server")
    assert first["state"] == "waiting for the session"
    assert session.said == []

    commands.session_starting()
    await commands.handle(payload("add_context", "Late fact."), via="rpc", sender="s")
    assert context_of(agent) == ["Ada is a VIP."]  # waits while the session starts
    await commands.session_started()
    assert session.said == ["One.", "Two."]
    assert context_of(agent) == ["Ada is a VIP.", "Late fact."]

    answer = await commands.handle(payload("speak", "Three."), via="rpc", sender="s")
    assert answer["state"] == "listening" and session.said[-1] == "Three."


async def test_interrupt_cuts_in(parts: Any) -> None:
    commands, _, session, _ = parts
    await commands.session_started()
    session.agent_state = "speaking"
    await commands.handle(payload("speak", "Queued."), via="rpc", sender="s")
    assert session.interrupts == 0
    await commands.handle(payload("speak", "Now!", interrupt=True), via="rpc", sender="s")
    assert session.interrupts == 1 and session.said == ["Queued.", "Now!"]


async def test_the_same_command_acts_once(parts: Any) -> None:
    commands, _, session, _ = parts
    await commands.session_started()
    sent = payload("speak", "Once.")
    answers = [await commands.handle(sent, via=via, sender="s") for via in ("rpc", "rpc", "data")]
    assert [a["result"] for a in answers] == ["accepted", "duplicate", "duplicate"]
    assert session.said == ["Once."]


async def test_after_the_session_ended_commands_are_refused(parts: Any) -> None:
    commands, _, session, _ = parts
    await commands.session_started()
    await commands.aclose()
    sent = payload("speak", "Too late.")
    for _ in range(2):  # not remembered: refused again, not answered as a duplicate
        with pytest.raises(Refused) as refused:
            await commands.handle(sent, via="rpc", sender="s")
        assert refused.value.code == Refused.UNAVAILABLE
    assert session.said == []


async def test_speech_waiting_for_the_session_is_bounded(parts: Any) -> None:
    commands, _, _, _ = parts
    for index in range(MAX_PENDING):
        await commands.handle(payload("speak", f"Line {index}."), via="rpc", sender="s")
    with pytest.raises(Refused) as refused:
        await commands.handle(payload("speak", "One too many."), via="rpc", sender="s")
    assert refused.value.code == Refused.BUSY


async def test_refusals_are_logged_once_per_reason_then_counted(
    parts: Any, caplog: pytest.LogCaptureFixture
) -> None:
    commands, _, session, _ = parts
    caplog.set_level(logging.DEBUG, logger="agent.context_commands")
    forged = CommandSigner(KEY, "guessed-secret-0123456789abcdefghijk").envelope(
        Command(
            id=new_command_id(),
            type="speak",
            text="Forged.",
            agent_code=CODE,
            room=ROOM,
            to=IDENTITY,
            issued_at=0,
        )
    )
    for _ in range(5):
        with pytest.raises(Refused):
            await commands.handle(forged, via="rpc", sender="user-1")
    with pytest.raises(Refused):
        await commands.handle("nonsense", via="data", sender="user-1")
    await commands.aclose()

    refused = [r for r in caplog.records if r.getMessage() == "context command refused"]
    warnings = [r for r in refused if r.levelno == logging.WARNING]
    assert [r.reason for r in warnings] == ["proof invalid", "payload is not JSON"]  # type: ignore[attr-defined]
    assert len(refused) == 6
    [summary] = [
        r for r in caplog.records if r.getMessage() == "context commands refused this session"
    ]
    assert summary.counts == {"proof invalid": 5, "payload is not JSON": 1}  # type: ignore[attr-defined]
    assert session.said == []
    assert SECRET not in caplog.text


def test_seen_commands_forget_after_expiry_and_stay_bounded() -> None:
    seen = SeenCommands(limit=3)
    assert seen.first_time("a", keep_until=100, now=0)
    assert not seen.first_time("a", keep_until=100, now=50)
    assert seen.first_time("a", keep_until=300, now=101)  # expired: a new command by now
    for name in "bcd":
        assert seen.first_time(name, keep_until=1000, now=200)
    assert len(seen._until) == 3


def test_verifier_addresses_are_the_room_identity_and_code() -> None:
    check = CommandVerifier(KEY, SECRET, room=ROOM, identity=IDENTITY, agent_code=CODE)
    assert check.verify(payload()).command.to == IDENTITY


async def test_accepted_commands_are_reported_even_before_anyone_listens(parts: Any) -> None:
    commands, _, _, _ = parts
    await commands.handle(payload("add_context", "Early."), via="rpc", sender="s")
    reported: list[Command] = []
    commands.report_to(reported.append)  # the webhook emitter starts after the avatar joined
    await commands.session_started()
    await commands.handle(payload("speak", "Later."), via="rpc", sender="s")
    duplicate = payload("speak", "Once.")
    for _ in range(2):
        await commands.handle(duplicate, via="rpc", sender="s")
    assert [(c.type, c.text) for c in reported] == [
        ("add_context", "Early."),
        ("speak", "Later."),
        ("speak", "Once."),
    ]
