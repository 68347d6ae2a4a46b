"""Gestures for one conversation: from session events to the avatar, start to finish.

    dynamics = await Dynamics.start(session=session, target=AvatarRpc(room, response_timeout=5),
                                    settings=settings, agent_id=avatar_id)
    ...
    await dynamics.aclose()      # at session end: handlers removed, requests cancelled

What triggers a gesture:
- `user_input_transcribed` with `is_final`: the user's speech, as soon as it is transcribed;
- `conversation_item_added` with a user message that carries no transcript confidence: typed
  text (every transcribed message carries one, so speech is never matched twice);
- `conversation_item_added` with an assistant message, when DYNAMICS_AGENT_UTTERANCES is on.

`start` never raises for a missing catalog, an avatar without gestures or a bad map file: it
logs why once and returns an inactive instance, so the conversation goes on either way.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from livekit.agents import AgentSession
from livekit.agents.llm import ChatMessage
from livekit.agents.voice.events import (
    ConversationItemAddedEvent,
    EventTypes,
    UserInputTranscribedEvent,
)

from agent.dynamics.catalog import PROCESS_CACHE, CatalogCache
from agent.dynamics.keymap import KeymapError, keymap_for
from agent.dynamics.matcher import KeywordMatcher, Match
from agent.dynamics.pacing import Pacer
from agent.dynamics.sender import RPC_ACK_BUDGET, GestureSender, GestureTarget
from agent.dynamics.settings import DynamicsSettings
from agent.dynamics.stats import GestureStats, Outcome
from agent.dynamics.tool import GestureTool, gesture_tool
from bithuman_client import BithumanClient, DynamicsCatalog
from common.logs import describe, get_logger

log = get_logger("agent.dynamics")

_TOOL_ANSWERS = {
    None: "Done: the avatar is performing the gesture.",
    Outcome.NOT_JOINED: "The avatar is not in the room yet, so no gesture was performed.",
    Outcome.PACED: "Skipped: the avatar made a gesture a moment ago.",
}


async def fetch_catalog(
    agent_id: str | None,
    settings: DynamicsSettings,
    *,
    client: BithumanClient | None = None,
    cache: CatalogCache = PROCESS_CACHE,
) -> DynamicsCatalog | None:
    """The avatar's catalog, or None after one warning saying why there is none."""
    if not agent_id:
        log.warning("dynamics off for this session: no avatar agent id to look gestures up by")
        return None
    owned: BithumanClient | None = None
    if client is None:
        if settings.bithuman_api_secret is None:
            log.warning("dynamics off for this session: BITHUMAN_API_SECRET is not set")
            return None
        client = owned = BithumanClient(
            settings.bithuman_api_secret.get_secret_value(),
            base_url=settings.bithuman_rest_url,
        )
    try:
        async with asyncio.timeout(settings.dynamics_catalog_timeout):
            return await cache.get(
                agent_id,
                client.get_dynamics,
                ttl=settings.dynamics_catalog_ttl,
                scope=settings.bithuman_rest_url,
            )
    except Exception as exc:
        log.warning(
            "dynamics off for this session: gesture catalog unavailable",
            agent_id=agent_id,
            reason=describe(exc),
        )
        return None
    finally:
        if owned is not None:
            await owned.aclose()


class Dynamics:
    """Keyword-triggered (and optionally model-triggered) gestures for one AgentSession."""

    def __init__(self, session: AgentSession[Any], settings: DynamicsSettings) -> None:
        self._session = session
        self._settings = settings
        self.stats = GestureStats()
        self.tool: GestureTool | None = None
        self._matcher: KeywordMatcher | None = None
        self._pacer: Pacer | None = None
        self._sender: GestureSender | None = None
        self._handler_failed = False
        self._closed = False
        # livekit's EventEmitter inspects each callback's signature on every emit: plain
        # functions take half the time of bound methods (about 10 us less per event)
        self._handlers: dict[EventTypes, Callable[[Any], None]] = {
            "user_input_transcribed": lambda event: self._on_user_input_transcribed(event),
            "conversation_item_added": lambda event: self._on_conversation_item_added(event),
        }

    @classmethod
    async def start(
        cls,
        *,
        session: AgentSession[Any],
        target: GestureTarget,
        settings: DynamicsSettings,
        agent_id: str | None,
        client: BithumanClient | None = None,
        cache: CatalogCache = PROCESS_CACHE,
        clock: Callable[[], float] = time.monotonic,
    ) -> Dynamics:
        dynamics = cls(session, settings)
        if not settings.dynamics_enabled:
            return dynamics
        catalog = await fetch_catalog(agent_id, settings, client=client, cache=cache)
        if catalog is None:
            return dynamics
        if not catalog.has_dynamics:
            log.info("dynamics off for this session: the avatar has no gestures", agent_id=agent_id)
            return dynamics
        try:
            # read per session, off the loop: an edited map applies to the next session
            keymap = await asyncio.to_thread(keymap_for, settings.map_path, catalog.gesture_names)
            matcher = keymap.matcher()
        except KeymapError as exc:
            log.error("dynamics off for this session: unusable keyword map", reason=str(exc))
            return dynamics
        dynamics._matcher = matcher
        dynamics._pacer = Pacer(
            cooldown=settings.dynamics_cooldown,
            min_gap=settings.dynamics_min_gap,
            cooldowns=keymap.cooldowns(),
            clock=clock,
        )
        dynamics._sender = GestureSender(
            target, dynamics.stats, deadline=settings.dynamics_rpc_timeout + RPC_ACK_BUDGET
        )
        for event, handler in dynamics._handlers.items():
            session.on(event, handler)
        if settings.dynamics_function_tool:
            dynamics.tool = gesture_tool(catalog.gesture_names, dynamics._perform_for_tool)
            await dynamics._offer_tool(dynamics.tool)
        log.info(
            "dynamics on",
            agent_id=agent_id,
            map=keymap.source,
            gestures=[rule.gesture for rule in keymap.rules],
            phrases=matcher.size,
            tool=dynamics.tool is not None,
        )
        return dynamics

    @property
    def active(self) -> bool:
        return self._sender is not None and not self._closed

    def react(self, text: str, *, source: str) -> Match | None:
        """Match `text` and fire its gesture (subject to pacing); never raises."""
        if not self.active or not text:
            return None
        try:
            assert self._matcher is not None
            found = self._matcher.match(text)
            if found is not None:
                self._fire(found.gesture, source=source, keyword=found.keyword)
            return found
        except Exception:
            if not self._handler_failed:
                self._handler_failed = True
                log.exception("gesture trigger failed", source=source)
            return None

    def _fire(self, gesture: str, **context: str) -> Outcome | None:
        """Send `gesture` unless the avatar is absent or it is too soon; None when sent."""
        assert self._sender is not None and self._pacer is not None
        if not self._sender.target.is_ready():
            self.stats.record(Outcome.NOT_JOINED, gesture=gesture, **context)
            return Outcome.NOT_JOINED
        if not self._pacer.allow(gesture):
            self.stats.record(Outcome.PACED, gesture=gesture, **context)
            return Outcome.PACED
        self._sender.send(gesture, **context)
        return None

    def _perform_for_tool(self, gesture: str) -> str:
        if not self.active:
            return "Gestures are unavailable right now."
        return _TOOL_ANSWERS[self._fire(gesture, source="tool")]

    async def _offer_tool(self, tool: GestureTool) -> None:
        """Add the tool to the running agent; before the session runs, `self.tool` is left
        for the caller to pass to its Agent."""
        try:
            agent = self._session.current_agent
        except RuntimeError:
            return
        try:
            await agent.update_tools([*agent.tools, tool])
        except Exception as exc:
            log.warning("gesture tool not offered to the model", reason=str(exc))

    def _on_user_input_transcribed(self, event: UserInputTranscribedEvent) -> None:
        if event.is_final:
            self.react(event.transcript, source="user_speech")

    def _on_conversation_item_added(self, event: ConversationItemAddedEvent) -> None:
        item = event.item
        if not isinstance(item, ChatMessage):
            return
        if item.role == "user" and item.transcript_confidence is None:
            self.react(item.text_content or "", source="user_text")
        elif item.role == "assistant" and self._settings.dynamics_agent_utterances:
            self.react(item.text_content or "", source="agent")

    async def aclose(self) -> None:
        """Detach from the session and cancel gestures still in flight (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._sender is None:
            return
        for event, handler in self._handlers.items():
            self._session.off(event, handler)
        cancelled = self._sender.pending
        await self._sender.aclose()
        log.info("dynamics summary", cancelled=cancelled, **self.stats.summary())
