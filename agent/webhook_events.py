"""Webhook events from a conversation: `room.join` when a user joins the room, `chat.push` for
every final user and agent message. The session only enqueues (`webhooks.WebhookEmitter`); a
deliverer in the worker's main process (or `python -m webhooks`) does the sending."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Protocol

from livekit import rtc
from livekit.agents import AgentServer, AgentSession
from livekit.agents.llm import ChatMessage
from livekit.agents.voice.events import ConversationItemAddedEvent

from agent.settings import AgentSettings
from common.logs import describe, get_logger
from webhooks import WebhookEmitter, WebhookSettings
from webhooks.deliverer import Deliverer

log = get_logger("agent.webhook_events")

HUMAN_KINDS = (
    rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD,
    rtc.ParticipantKind.PARTICIPANT_KIND_SIP,
)
DEFAULT_AGENT_ID = "bithuman-livekit-agent"


class RoomLike(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def remote_participants(self) -> Mapping[str, Any]: ...

    def on(self, event: Any, callback: Any = None) -> Any: ...

    def off(self, event: Any, callback: Any) -> None: ...


def webhook_agent_id(settings: AgentSettings) -> str:
    """The bitHuman agent code in use, else the agent's dispatch name."""
    return settings.gesture_agent_id or settings.agent_name or DEFAULT_AGENT_ID


class ConversationEvents:
    """Turns one session's room and conversation events into webhook events."""

    def __init__(
        self,
        emitter: WebhookEmitter,
        room: RoomLike,
        session: AgentSession[Any],
        session_id: str,
    ) -> None:
        self._emitter = emitter
        self._room = room
        self._session = session
        self._session_id = session_id
        self._failed = False

    @classmethod
    async def start(
        cls,
        room: RoomLike,
        session: AgentSession[Any],
        settings: AgentSettings,
        webhook_settings: WebhookSettings,
        *,
        session_id: str,
        deliver_here: bool = False,
    ) -> ConversationEvents | None:
        """None when webhooks are off. `deliver_here`: also deliver from this process (console,
        where no worker main process runs a deliverer)."""
        emitter = await WebhookEmitter.start(
            webhook_settings,
            agent_id=webhook_agent_id(settings),
            deliver=True if deliver_here else None,
        )
        if not emitter.enabled:
            return None
        events = cls(emitter, room, session, session_id)
        room.on("participant_connected", events._on_participant_connected)
        session.on("conversation_item_added", events._on_item_added)
        for participant in list(room.remote_participants.values()):
            events._on_participant_connected(participant)
        return events

    def _humans(self) -> int:
        return sum(1 for p in self._room.remote_participants.values() if p.kind in HUMAN_KINDS)

    def _on_participant_connected(self, participant: Any) -> None:
        if participant.kind not in HUMAN_KINDS:  # the avatar and other agents are not users
            return
        self._guard(
            self._emitter.room_join,
            room_name=self._room.name,
            participant_count=self._humans(),
            session_id=self._session_id,
        )

    def _on_item_added(self, event: ConversationItemAddedEvent) -> None:
        item = event.item
        if not isinstance(item, ChatMessage) or item.role not in ("user", "assistant"):
            return
        text = (item.text_content or "").strip()
        if text:
            self._guard(
                self._emitter.chat_push,
                role=item.role,
                message=text,
                session_id=self._session_id,
                timestamp=item.created_at,
            )

    def context_command(self, *, command_id: str, context_type: str, message: str) -> None:
        """`context.command` for a speak / add_context the agent accepted (opt-in: only when
        WEBHOOK_EVENTS names it)."""
        self._guard(
            self._emitter.context_command,
            command_id=command_id,
            context_type=context_type,
            message=message,
            room_name=self._room.name,
            session_id=self._session_id,
        )

    def _guard(self, emit: Any, **fields: Any) -> None:
        """An event the emitter refuses is logged (once) and dropped: never the conversation."""
        try:
            emit(**fields)
        except Exception as exc:
            if not self._failed:
                self._failed = True
                log.warning("webhook event dropped", error=describe(exc))

    async def aclose(self) -> None:
        self._room.off("participant_connected", self._on_participant_connected)
        self._session.off("conversation_item_added", self._on_item_added)
        await self._emitter.aclose()


def deliver_from_worker(server: AgentServer, settings: WebhookSettings) -> None:
    """Run the webhook deliverer in the worker's main process, for as long as it lives: job
    processes only write to the outbox, so a slow or dead receiver never touches a session."""
    if not settings.enabled or settings.deliver_in_process:
        return
    running: set[object] = set()  # keeps the task and the deliverer referenced

    async def start() -> None:
        deliverer = await Deliverer.open(settings)
        deliverer.start()
        running.add(deliverer)

    def on_started() -> None:
        task = asyncio.ensure_future(start())
        running.add(task)
        task.add_done_callback(_log_failure)

    server.on("worker_started", on_started)


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("webhook deliverer did not start", error=describe(exc))
