"""The two events bitHuman documents (and one of ours, opt-in), as signed-ready body bytes.

Envelope: `{agent_id, event_type, data, timestamp}` with nothing added, so receivers written
for the bitHuman platform work unchanged. The event's stable id travels in the `webhook-id`
header instead, identical on every retry. Bodies are serialized once, by `js_dumps`, so the
outbox stores and every attempt sends exactly the bytes that were signed.

The `check_*` functions are the cheap argument checks the emitter runs on the caller's
thread; the builders run them again and do the expensive part (serialization) wherever they
are called, which for the emitter is its writer thread.
"""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass
from typing import Literal

from webhooks.jsjson import MAX_SAFE_INTEGER, js_dumps

ROOM_JOIN = "room.join"
CHAT_PUSH = "chat.push"
EVENT_TYPES = (ROOM_JOIN, CHAT_PUSH)
"""bitHuman's events: sent by default."""
CONTEXT_COMMAND = "context.command"
"""Ours: a context API command (speak / add_context) an agent accepted. Sent only when
WEBHOOK_EVENTS names it, so receivers written for bitHuman's two events see nothing new."""
KNOWN_EVENT_TYPES = (*EVENT_TYPES, CONTEXT_COMMAND)
CONTEXT_TYPES = ("speak", "add_context")
ROLES = ("user", "assistant")
Role = Literal["user", "assistant"]


@dataclass(frozen=True, slots=True)
class Event:
    """One event, ready for every destination: id, type, body bytes, creation time."""

    id: str
    event_type: str
    body: bytes
    created_at: float


class EventIds:
    """Unique, stable event ids without a system call per id: a random prefix (96 bits) and
    a counter. Make one per process after any fork, or forked children would share ids."""

    def __init__(self) -> None:
        self._prefix = f"evt_{secrets.token_hex(12)}_"
        self._counter = itertools.count(1)

    def next(self) -> str:
        return self._prefix + str(next(self._counter))


def check_room_join(room_name: str, participant_count: int, session_id: str) -> None:
    # One cheap test on the hot path; subclasses and precise complaints take the slow path.
    if (
        type(room_name) is not str
        or type(session_id) is not str
        or type(participant_count) is not int
        or not 0 <= participant_count <= MAX_SAFE_INTEGER
    ):
        _check_str("room_name", room_name)
        _check_str("session_id", session_id)
        if isinstance(participant_count, bool) or not isinstance(participant_count, int):
            raise TypeError("participant_count must be an int")
        if not 0 <= participant_count <= MAX_SAFE_INTEGER:
            raise ValueError("participant_count must be between 0 and 2**53-1")


def check_chat_push(role: str, message: str, session_id: str, timestamp: float | None) -> None:
    if (
        role not in ROLES
        or type(message) is not str
        or type(session_id) is not str
        or not (timestamp is None or type(timestamp) is float or type(timestamp) is int)
    ):
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {role!r}")
        _check_str("message", message)
        _check_str("session_id", session_id)
        if timestamp is not None and (
            isinstance(timestamp, bool) or not isinstance(timestamp, int | float)
        ):
            raise TypeError("timestamp must be a number of seconds")


def room_join(
    *,
    event_id: str,
    agent_id: str,
    room_name: str,
    participant_count: int,
    session_id: str,
    now: float,
) -> Event:
    check_room_join(room_name, participant_count, session_id)
    data = {
        "room_name": _text(room_name),
        "participant_count": participant_count,
        "session_id": _text(session_id),
    }
    return _event(event_id, agent_id, ROOM_JOIN, data, now)


def chat_push(
    *,
    event_id: str,
    agent_id: str,
    role: Role,
    message: str,
    session_id: str,
    now: float,
    timestamp: float | None = None,
) -> Event:
    """`timestamp` is when the message was said (default `now`, when the event was made)."""
    check_chat_push(role, message, session_id, timestamp)
    data = {
        "role": role,
        "message": _text(message),
        "session_id": _text(session_id),
        "timestamp": _seconds(now if timestamp is None else timestamp),
    }
    return _event(event_id, agent_id, CHAT_PUSH, data, now)


def check_context_command(
    command_id: str, context_type: str, message: str, room_name: str, session_id: str
) -> None:
    if context_type not in CONTEXT_TYPES:
        raise ValueError(f"context_type must be one of {CONTEXT_TYPES}, not {context_type!r}")
    for name, value in (
        ("command_id", command_id),
        ("message", message),
        ("room_name", room_name),
        ("session_id", session_id),
    ):
        _check_str(name, value)


def context_command(
    *,
    event_id: str,
    agent_id: str,
    command_id: str,
    context_type: str,
    message: str,
    room_name: str,
    session_id: str,
    now: float,
) -> Event:
    """`context.command`: `{command_id, context_type, message, room_name, session_id}`."""
    check_context_command(command_id, context_type, message, room_name, session_id)
    data: dict[str, object] = {
        "command_id": _text(command_id),
        "context_type": context_type,
        "message": _text(message),
        "room_name": _text(room_name),
        "session_id": _text(session_id),
    }
    return _event(event_id, agent_id, CONTEXT_COMMAND, data, now)


def _event(
    event_id: str, agent_id: str, event_type: str, data: dict[str, object], now: float
) -> Event:
    stamp = _seconds(now)
    envelope = {
        "agent_id": _text(agent_id),
        "event_type": event_type,
        "data": data,
        "timestamp": stamp,
    }
    return Event(event_id, event_type, js_dumps(envelope), stamp)


def _seconds(value: float) -> float:
    # Millisecond precision keeps timestamps short and readable; more is noise for receivers.
    return round(float(value), 3)


def _check_str(name: str, value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")


def _text(value: str) -> str:
    """Text that UTF-8 can carry: surrogate pairs joined, lone surrogates replaced."""
    _check_str("text", value)
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value
