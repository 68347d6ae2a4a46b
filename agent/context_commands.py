"""Speak / add-context commands from the context API (`python -m context_api`), in one session.

The agent participant advertises its agent code and that it takes commands (participant
attributes, see `context_api.wire`), answers RPC method `bithuman.agent_context` and reads data
packets on the topic of the same name. A command is acted on only when its proof checks out
(signed with the LiveKit API secret, for this room, this participant and this agent code, not
expired) and only once per command id. A refused command is answered with an RPC error and
logged: the first of each reason at WARNING, the rest at DEBUG, with a count per reason when
the session ends (a participant hammering the method cannot flood the log).

What a command does:
- `speak`: the message is said verbatim through the session's TTS (`session.say`; Realtime has
  no say of its own). While the agent is speaking it waits its turn after the current speech,
  unless the command says `interrupt`, which cuts the current speech first. The user can
  interrupt it like any agent speech. It joins the conversation's history as an agent message.
- `add_context`: a system message joins the conversation's context without any reply; the
  next reply is made with it. It is inserted into the realtime session's own copy of the
  conversation (one `conversation.item.create`), not by `agent.update_chat_ctx` with a copy of
  the agent's history: that diffs the local history against the server's and deletes whatever
  the server holds that the local history does not hold yet (a user turn still waiting for its
  transcript, for one). The agent's local history gets the same message, as livekit-agents
  does for the messages it says.

Before the session starts (the avatar is still joining, 20-30 s for a cloud avatar) commands
are already taken: context goes straight into the agent's initial context (so even the greeting
knows it), and speech waits, in order, until the session runs. After the session has ended a
command is refused (`UNAVAILABLE`), so the API reports that room as failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from enum import Enum
from typing import Any

from livekit import rtc
from livekit.agents import Agent, AgentSession, llm

from agent.settings import AgentSettings
from agent.webhook_events import webhook_agent_id
from common.logs import describe, get_logger
from context_api.wire import (
    ACCEPTS_VERSION,
    ATTR_ACCEPTS,
    ATTR_AGENT_CODE,
    CLOCK_SKEW_SECONDS,
    METHOD,
    TOPIC,
    Command,
    CommandVerifier,
    Refused,
)

log = get_logger("agent.context_commands")

MAX_PENDING = 16  # speech waiting for the session to start
MAX_REMEMBERED = 10_000  # command ids kept for dedupe (each until its proof expires)
# adding context waits on the realtime service's acknowledgement; under the API's default
# per-room deadline (5 s), so the API hears the outcome
APPLY_TIMEOUT = 4.0


class _State(Enum):
    WAITING = "waiting"  # the session has not started: context goes into the initial context
    STARTING = "starting"  # session.start() is running: everything waits
    RUNNING = "running"
    CLOSED = "closed"


class SeenCommands:
    """Command ids already acted on, each remembered until its proof has expired."""

    def __init__(self, limit: int = MAX_REMEMBERED) -> None:
        self._until: OrderedDict[str, float] = OrderedDict()
        self._limit = limit

    def first_time(self, command_id: str, keep_until: float, *, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        while self._until and (
            next(iter(self._until.values())) < now or len(self._until) >= self._limit
        ):
            self._until.popitem(last=False)
        if command_id in self._until:
            return False
        self._until[command_id] = keep_until
        return True

    def forget(self, command_id: str) -> None:
        """A command that could not be acted on may be tried again."""
        self._until.pop(command_id, None)


class ContextCommands:
    def __init__(
        self,
        room: rtc.Room,
        session: AgentSession[Any],
        agent: Agent,
        verifier: CommandVerifier,
        *,
        agent_code: str,
    ) -> None:
        self._room = room
        self._session = session
        self._agent = agent
        self._verifier = verifier
        self._agent_code = agent_code
        self._state = _State.WAITING
        self._pending: list[Command] = []
        self._seen = SeenCommands()
        self._lock = asyncio.Lock()
        self._refusals: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()
        self._on_accepted: Callable[[Command], None] | None = None
        self._unreported: list[Command] = []  # accepted before anyone listened

    @classmethod
    async def start(
        cls, room: rtc.Room, session: AgentSession[Any], agent: Agent, settings: AgentSettings
    ) -> ContextCommands | None:
        """Take commands in `room` (connected) from now on; None when CONTEXT_COMMANDS is off."""
        if not settings.context_commands:
            return None
        credentials = settings.livekit
        if credentials is None:  # commands are signed with these; `start` requires them
            raise ValueError("context commands need LIVEKIT_API_KEY and LIVEKIT_API_SECRET")
        return await cls.attach(
            room,
            session,
            agent,
            api_key=credentials.api_key,
            api_secret=credentials.api_secret.get_secret_value(),
            agent_code=webhook_agent_id(settings),
        )

    @classmethod
    async def attach(
        cls,
        room: rtc.Room,
        session: AgentSession[Any],
        agent: Agent,
        *,
        api_key: str,
        api_secret: str,
        agent_code: str,
    ) -> ContextCommands:
        """Answer the RPC method and topic in `room`, then advertise the agent code."""
        identity = room.local_participant.identity
        verifier = CommandVerifier(
            api_key, api_secret, room=room.name, identity=identity, agent_code=agent_code
        )
        commands = cls(room, session, agent, verifier, agent_code=agent_code)
        room.local_participant.register_rpc_method(METHOD, commands._on_rpc)
        room.on("data_received", commands._on_data)
        # advertised last: the API finds this participant only once it can answer
        try:
            await room.local_participant.set_attributes(
                {ATTR_AGENT_CODE: agent_code, ATTR_ACCEPTS: ACCEPTS_VERSION}
            )
        except BaseException:
            await commands.aclose()  # not findable, so not listening either
            raise
        log.info("context commands on", agent_code=agent_code, identity=identity)
        return commands

    def report_to(self, callback: Callable[[Command], None]) -> None:
        """Call `callback` with each accepted command (the webhook event), starting with those
        accepted before it was given (the webhook emitter starts after the avatar joined)."""
        self._on_accepted = callback
        waiting, self._unreported = self._unreported, []
        for command in waiting:
            self._report(command)

    def _report(self, command: Command) -> None:
        if self._on_accepted is None:
            if len(self._unreported) < MAX_PENDING * 2:
                self._unreported.append(command)
            return
        try:
            self._on_accepted(command)
        except Exception as exc:
            log.warning("context command report failed", error=describe(exc))

    # --- the session's life ------------------------------------------------------------------

    def session_starting(self) -> None:
        """From now until `session_started`, commands wait (the activity is being built)."""
        if self._state is _State.WAITING:
            self._state = _State.STARTING

    async def session_started(self) -> None:
        """Act on what waited, in the order it came."""
        async with self._lock:
            if self._state is _State.CLOSED:
                return
            self._state = _State.RUNNING
            pending, self._pending = self._pending, []
            for command in pending:
                try:
                    await self._apply(command)
                except Refused as exc:
                    log.warning(
                        "waiting context command failed", command_id=command.id, reason=exc.reason
                    )

    async def aclose(self) -> None:
        self._state = _State.CLOSED
        self._pending.clear()
        self._room.off("data_received", self._on_data)
        try:
            self._room.local_participant.unregister_rpc_method(METHOD)
        except Exception as exc:  # the room may be gone already
            log.debug("unregistering the context RPC method raised", error=describe(exc))
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._refusals:
            log.info("context commands refused this session", counts=dict(self._refusals))

    # --- transport -----------------------------------------------------------------------------

    async def _on_rpc(self, data: rtc.RpcInvocationData) -> str:
        try:
            answer = await self.handle(data.payload, via="rpc", sender=data.caller_identity)
        except Refused as exc:
            raise rtc.RpcError(exc.code, exc.reason) from None
        return json.dumps(answer)

    def _on_data(self, packet: rtc.DataPacket) -> None:
        if packet.topic != TOPIC:
            return
        # server-sent data has no participant; a participant's packet is checked all the same
        sender = packet.participant.identity if packet.participant is not None else "server"
        task = asyncio.create_task(self._handle_data(packet.data, sender))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle_data(self, payload: bytes, sender: str) -> None:
        with contextlib.suppress(Refused):  # logged by handle(); nobody to answer
            await self.handle(payload, via="data", sender=sender)

    # --- commands ------------------------------------------------------------------------------

    async def handle(self, payload: str | bytes, *, via: str, sender: str) -> dict[str, Any]:
        """The answer for an acted-on (or already seen) command; `Refused` otherwise."""
        try:
            verified = self._verifier.verify(payload)
        except Refused as exc:
            self._refused(exc, via=via, sender=sender)
            raise
        command = verified.command
        if not self._seen.first_time(command.id, verified.expires_at + CLOCK_SKEW_SECONDS):
            log.info("context command already received", command_id=command.id, via=via)
            return {"id": command.id, "result": "duplicate"}
        try:
            state = await self._accept(command)
        except Refused as exc:
            self._seen.forget(command.id)
            self._refused(exc, via=via, sender=sender)
            raise
        log.info(
            "context command accepted",
            command_id=command.id,
            type=command.type,
            chars=len(command.text),
            interrupt=command.interrupt,
            via=via,
            state=state,
        )
        self._report(command)
        return {"id": command.id, "result": "accepted", "state": state}

    async def _accept(self, command: Command) -> str:
        if self._state is _State.CLOSED:
            raise Refused(Refused.UNAVAILABLE, "the session has ended")
        async with self._lock:
            if self._state is _State.RUNNING:
                await self._apply(command)
                return str(self._session.agent_state)
            if self._state is _State.WAITING and command.type == "add_context":
                await self._add_initial_context(command.text)
                return "before start"
            if len(self._pending) >= MAX_PENDING:
                raise Refused(Refused.BUSY, "too many commands waiting for the session to start")
            self._pending.append(command)
            return "waiting for the session"

    async def _apply(self, command: Command) -> None:
        """Act on a command in the running session."""
        if command.type == "add_context":
            try:
                async with asyncio.timeout(APPLY_TIMEOUT):
                    await self._add_live_context(command.text)
            except Exception as exc:
                raise Refused(Refused.FAILED, f"context not added: {describe(exc)}"[:200]) from exc
            return
        if command.interrupt:
            try:
                await self._session.interrupt()
            except Exception as exc:  # nothing to interrupt, or speech that may not be
                log.debug("interrupt before a context speak raised", error=describe(exc))
        try:
            self._session.say(command.text)
        except Exception as exc:
            raise Refused(Refused.FAILED, f"speech not started: {describe(exc)}"[:200]) from exc

    async def _add_initial_context(self, text: str) -> None:
        # no activity yet: update_chat_ctx only replaces the agent's context, which the
        # session sends to the model when it starts
        context = self._agent.chat_ctx.copy()
        context.add_message(role="system", content=text)
        await self._agent.update_chat_ctx(context)

    async def _add_live_context(self, text: str) -> None:
        message = llm.ChatMessage(role="system", content=[text])
        try:
            realtime = self._agent.realtime_llm_session
        except RuntimeError:  # not a realtime model: the documented way is safe there
            context = self._agent.chat_ctx.copy()
            context.insert(message)
            await self._agent.update_chat_ctx(context)
            return
        remote = realtime.chat_ctx.copy()
        remote.insert(message)
        await realtime.update_chat_ctx(remote)
        # the local history in step, as livekit-agents keeps it for the messages it says
        self._agent._chat_ctx.insert(message)

    def _refused(self, exc: Refused, *, via: str, sender: str) -> None:
        self._refusals[exc.reason] += 1
        first = self._refusals[exc.reason] == 1
        (log.warning if first else log.debug)(
            "context command refused",
            reason=exc.reason,
            code=exc.code,
            via=via,
            sender=sender,
            **({"note": "further refusals for this reason are logged at DEBUG"} if first else {}),
        )
