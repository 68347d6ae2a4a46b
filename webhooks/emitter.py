"""What the agent calls: `room_join` and `chat_push`, never blocking the conversation.

    emitter = await WebhookEmitter.start(settings, agent_id=agent_code_or_name)
    emitter.room_join(room_name=..., participant_count=..., session_id=...)
    emitter.chat_push(role="user", message=..., session_id=...)
    await emitter.aclose()

A call checks its arguments, stamps the event with an id and the time, and queues it for the
writer thread, which serializes and commits it: no network I/O, disk I/O or serialization on
the event loop. Call the emitter from the event loop's thread.

`start` also warms that path up: a job process serves one conversation, so without it the
conversation's first calls would be the process's first, running CPython's unspecialized
bytecode (it specializes a function after several calls), about 1.5x slower each; those
first calls made up most of the enqueue cost's p99.

Delivery happens elsewhere by default (the worker's main process or `python -m
webhooks`, see webhooks.deliverer), so a slow or dead receiver costs the conversation
nothing. With WEBHOOK_DELIVER_IN_PROCESS (or `deliver=True`) the emitter also runs a deliverer
on this loop, woken by each commit: handy for `console` and one-process setups. When no URL is
configured the emitter is inert and every call returns None.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import aiohttp
from prometheus_client import CollectorRegistry

from common.logs import get_logger
from webhooks import payloads
from webhooks.clock import SYSTEM_CLOCK, Clock
from webhooks.deliverer import Deliverer
from webhooks.metrics import SenderMetrics, metrics_on
from webhooks.outbox import DeadLetter, Delivery, Outcome, open_outbox
from webhooks.settings import WebhookSettings
from webhooks.writer import OutboxWriter

log = get_logger("webhooks.emitter")

WARM_UP_CALLS = 32  # per method: well past CPython 3.11's specialization threshold (8)


class WebhookEmitter:
    def __init__(
        self,
        *,
        agent_id: str,
        event_types: frozenset[str],
        writer: OutboxWriter | None,
        deliverer: Deliverer | None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._agent_id = agent_id
        self._writer = writer
        self._deliverer = deliverer
        self._clock = clock
        self._closed = False
        self._accepting = event_types if writer is not None else frozenset()
        self._ids = payloads.EventIds()

    @classmethod
    async def start(
        cls,
        settings: WebhookSettings,
        *,
        agent_id: str,
        registry: CollectorRegistry | None = None,
        clock: Clock = SYSTEM_CLOCK,
        deliver: bool | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> WebhookEmitter:
        """Open the outbox and start the writer (and, if asked, an in-process deliverer).

        `agent_id` is the bitHuman agent code in use, else the agent's name; WEBHOOK_AGENT_ID
        overrides it. `deliver` defaults to WEBHOOK_DELIVER_IN_PROCESS.
        """
        agent = settings.agent_id or agent_id
        if not settings.enabled:
            log.info("webhooks off: WEBHOOK_URLS is empty")
            return cls(
                agent_id=agent,
                event_types=frozenset(),
                writer=None,
                deliverer=None,
                clock=clock,
            )
        deliverer: Deliverer | None = None
        if settings.deliver_in_process if deliver is None else deliver:
            deliverer = await Deliverer.open(
                settings, registry=registry, clock=clock, session=session
            )
            deliverer.start()
        store = await asyncio.to_thread(open_outbox, settings)
        writer = OutboxWriter(
            store,
            settings.urls,
            on_commit=deliverer.wake if deliverer is not None else None,
            metrics=metrics_on(SenderMetrics, registry),
        )
        writer.start()
        _warm_up(clock)
        log.info(
            "webhooks on",
            destinations=len(settings.urls),
            events=settings.events,
            in_process_delivery=deliverer is not None,
        )
        return cls(
            agent_id=agent,
            event_types=frozenset(settings.events),
            writer=writer,
            deliverer=deliverer,
            clock=clock,
        )

    @property
    def enabled(self) -> bool:
        return self._writer is not None

    def room_join(self, *, room_name: str, participant_count: int, session_id: str) -> str | None:
        """Queue a `room.join` event; returns its id (None when off or closed)."""
        if payloads.ROOM_JOIN not in self._accepting:
            self._refuse(payloads.ROOM_JOIN)
            return None
        payloads.check_room_join(room_name, participant_count, session_id)
        event_id = self._ids.next()
        agent_id = self._agent_id
        now = self._clock.now()
        assert self._writer is not None  # _accepting is empty without one
        self._writer.put(
            lambda: payloads.room_join(
                event_id=event_id,
                agent_id=agent_id,
                room_name=room_name,
                participant_count=participant_count,
                session_id=session_id,
                now=now,
            )
        )
        return event_id

    def chat_push(
        self,
        *,
        role: payloads.Role,
        message: str,
        session_id: str,
        timestamp: float | None = None,
    ) -> str | None:
        """Queue a `chat.push` event for a final message; `timestamp` defaults to now."""
        if payloads.CHAT_PUSH not in self._accepting:
            self._refuse(payloads.CHAT_PUSH)
            return None
        payloads.check_chat_push(role, message, session_id, timestamp)
        event_id = self._ids.next()
        agent_id = self._agent_id
        now = self._clock.now()
        # The body is built by this closure, later, on the writer thread.
        assert self._writer is not None  # _accepting is empty without one
        self._writer.put(
            lambda: payloads.chat_push(
                event_id=event_id,
                agent_id=agent_id,
                role=role,
                message=message,
                session_id=session_id,
                timestamp=timestamp,
                now=now,
            )
        )
        return event_id

    def context_command(
        self,
        *,
        command_id: str,
        context_type: str,
        message: str,
        room_name: str,
        session_id: str,
    ) -> str | None:
        """Queue a `context.command` event (an accepted speak / add_context); opt-in: None
        unless WEBHOOK_EVENTS names it."""
        if payloads.CONTEXT_COMMAND not in self._accepting:
            return None  # off by default: not a refusal worth a warning
        payloads.check_context_command(command_id, context_type, message, room_name, session_id)
        event_id = self._ids.next()
        agent_id = self._agent_id
        now = self._clock.now()
        assert self._writer is not None  # _accepting is empty without one
        self._writer.put(
            lambda: payloads.context_command(
                event_id=event_id,
                agent_id=agent_id,
                command_id=command_id,
                context_type=context_type,
                message=message,
                room_name=room_name,
                session_id=session_id,
                now=now,
            )
        )
        return event_id

    async def flush(self) -> None:
        """Wait until every event queued so far is durable in the outbox."""
        if self._writer is not None:
            await self._writer.flush()

    async def aclose(self) -> None:
        """Make queued events durable, then stop the in-process deliverer.

        Deliveries still pending (a receiver down, a retry not yet due) stay in the outbox for
        the next deliverer to start: another job's, the worker's or the standalone one.
        """
        if self._closed:
            return
        self._closed = True
        self._accepting = frozenset()
        if self._writer is not None:
            await self._writer.aclose()
        if self._deliverer is not None:
            await self._deliverer.aclose()

    def _refuse(self, event_type: str) -> None:
        if self._closed:
            log.warning("webhook event after close dropped", event_type=event_type)


def _warm_up(clock: Clock) -> None:
    """Run `room_join` and `chat_push`, to the writer's queue and back, on events nobody keeps,
    so that their bytecode (shared by every emitter) is specialized before a conversation's
    first calls."""
    writer = OutboxWriter(_NoOutbox(), ())
    writer.attach()
    emitter = WebhookEmitter(
        agent_id="warm-up",
        event_types=frozenset(payloads.EVENT_TYPES),
        writer=writer,
        deliverer=None,
        clock=clock,
    )
    for i in range(WARM_UP_CALLS):
        emitter.room_join(room_name="warm-up", participant_count=i, session_id="warm-up")
        emitter.chat_push(role="user", message="warm-up", session_id="warm-up")
        writer.discard()


class _NoOutbox:
    """The warm-up writer's store: its thread never starts, so nothing is ever called."""

    def append(self, events: Sequence[payloads.Event], urls: Sequence[str]) -> None: ...

    def claim(self, now: float, lease_until: float, limit: int) -> list[Delivery]:
        return []

    def record(self, outcomes: Sequence[Outcome]) -> None: ...

    def release(self, keys: Sequence[str], now: float) -> None: ...

    def next_due(self) -> float | None:
        return None

    def depth(self) -> int:
        return 0

    def dead_letters(self, limit: int) -> list[DeadLetter]:
        return []

    def requeue_dead(self, now: float) -> int:
        return 0

    def prune_dead(self, before: float) -> int:
        return 0

    def close(self) -> None: ...
