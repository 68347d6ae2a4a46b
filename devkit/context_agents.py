"""Lightweight agent participants for the context API's tests and benchmark.

A stand-in is a real LiveKit participant of kind agent in a real room: it advertises an agent
code and takes commands with the agent's own `ContextCommands` (proof checks, dedupe, refusals,
context into an `Agent`'s history), but no conversation runs behind it: a `RecordingSession`
notes what it was asked to say. It costs one rtc connection instead of a job process, a VAD
and a realtime session, so a hundred of them fit on a small machine.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from livekit import api, rtc
from livekit.agents import Agent

from agent.context_commands import ContextCommands


@dataclass
class RecordingSession:
    """What ContextCommands calls on a session: `say`, `interrupt`, `agent_state`."""

    agent_state: str = "listening"
    said: list[str] = field(default_factory=list)
    interrupts: int = 0

    def say(self, text: str, **_: Any) -> None:
        self.said.append(text)

    async def interrupt(self) -> None:
        self.interrupts += 1


def agent_token(
    url_key: str, secret: str, room: str, identity: str, attributes: dict[str, str] | None = None
) -> str:
    token = (
        api.AccessToken(url_key, secret)
        .with_identity(identity)
        .with_kind("agent")
        .with_grants(
            api.VideoGrants(room_join=True, room=room, agent=True, can_update_own_metadata=True)
        )
    )
    if attributes:
        token = token.with_attributes(attributes)
    return token.to_jwt()


@dataclass
class StandInAgent:
    room: rtc.Room
    session: RecordingSession
    agent: Agent
    commands: ContextCommands

    @classmethod
    async def join(
        cls,
        url: str,
        api_key: str,
        api_secret: str,
        room_name: str,
        *,
        agent_code: str,
        identity: str | None = None,
    ) -> StandInAgent:
        room = rtc.Room()
        identity = identity or f"agent-{room_name}"
        # no media: nothing to subscribe to, and one peer connection instead of two
        options = rtc.RoomOptions(auto_subscribe=False, single_peer_connection=True)
        await room.connect(url, agent_token(api_key, api_secret, room_name, identity), options)
        session = RecordingSession()
        agent = Agent(instructions="a stand-in")
        commands = await ContextCommands.attach(
            room,
            session,  # type: ignore[arg-type]
            agent,
            api_key=api_key,
            api_secret=api_secret,
            agent_code=agent_code,
        )
        await commands.session_started()
        return cls(room, session, agent, commands)

    @property
    def identity(self) -> str:
        return self.room.local_participant.identity

    def context(self) -> list[str]:
        """The system messages added to this agent's history, oldest first."""
        return [
            item.text_content or ""
            for item in self.agent.chat_ctx.items
            if item.type == "message" and item.role == "system"
        ]

    async def leave(self) -> None:
        await self.commands.aclose()
        await self.room.disconnect()


async def join_all(
    url: str, api_key: str, api_secret: str, rooms: list[str], *, agent_code: str, at_once: int = 8
) -> list[StandInAgent]:
    limit = asyncio.Semaphore(at_once)

    async def one(name: str) -> StandInAgent:
        async with limit:
            return await StandInAgent.join(url, api_key, api_secret, name, agent_code=agent_code)

    return list(await asyncio.gather(*(one(name) for name in rooms)))
