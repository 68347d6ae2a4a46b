"""`context.command`, the opt-in webhook event for an accepted context command: its shape, and
that it is sent only when WEBHOOK_EVENTS names it (receivers written for bitHuman's two events
see nothing new by default)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from tests.webhooks.conftest import (  # noqa: F401  (fixtures)
    FakeClock,
    RecordingReceiver,
    clock,
    receiver,
    registry,
    sender_settings,
)
from webhooks import WebhookEmitter, payloads
from webhooks.settings import WebhookSettings


def test_the_event_body() -> None:
    event = payloads.context_command(
        event_id="evt_1",
        agent_id="A12345678",
        command_id="cmd_" + "0" * 32,
        context_type="add_context",
        message="VIP customer ✓",
        room_name="room-1",
        session_id="AJ_1",
        now=1705312285.0,
    )
    assert event.event_type == "context.command"
    assert json.loads(event.body) == {
        "agent_id": "A12345678",
        "event_type": "context.command",
        "data": {
            "command_id": "cmd_" + "0" * 32,
            "context_type": "add_context",
            "message": "VIP customer ✓",
            "room_name": "room-1",
            "session_id": "AJ_1",
        },
        "timestamp": 1705312285,
    }
    with pytest.raises(ValueError):
        payloads.check_context_command("cmd_1", "shout", "m", "r", "s")


def test_it_is_opt_in() -> None:
    assert "context.command" not in WebhookSettings().events
    chosen = WebhookSettings(WEBHOOK_EVENTS="chat.push,context.command")  # type: ignore[call-arg]
    assert chosen.events == ["chat.push", "context.command"]


async def test_sent_only_when_named(
    tmp_path: Path,
    receiver: RecordingReceiver,  # noqa: F811
    clock: FakeClock,  # noqa: F811
    registry: CollectorRegistry,  # noqa: F811
) -> None:
    fields = {
        "command_id": "cmd_" + "1" * 32,
        "context_type": "speak",
        "message": "Hello",
        "room_name": "room-1",
        "session_id": "AJ_1",
    }
    default = await WebhookEmitter.start(
        sender_settings(tmp_path / "a", [receiver.url]), agent_id="A1", clock=clock
    )
    assert default.context_command(**fields) is None
    await default.aclose()

    named = await WebhookEmitter.start(
        sender_settings(tmp_path / "b", [receiver.url], events=["chat.push", "context.command"]),
        agent_id="A1",
        registry=registry,
        clock=clock,
    )
    event_id = named.context_command(**fields)
    [request] = await receiver.wait_for(1)
    await named.aclose()
    assert request.headers["webhook-id"] == event_id
    assert json.loads(request.body)["data"]["message"] == "Hello"
