"""One job: a room's conversation, from connection to shutdown. Reads as a table of contents."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from livekit.agents import AgentSession, JobContext, room_io
from livekit.agents.voice.events import CloseEvent, ErrorEvent

from agent.avatar import VoiceFallback, start_avatar, start_gestures
from agent.context_commands import ContextCommands
from agent.events import ConversationEvents
from agent.session import build_agent, build_session
from agent.settings import AgentSettings
from agent.usage import UsageTracker
from common.logs import describe, get_logger

log = get_logger("agent.job")

SETTINGS_KEY = "settings"
WEBHOOKS_KEY = "webhook_settings"
VAD_KEY = "vad"

T = TypeVar("T")


async def entrypoint(ctx: JobContext) -> None:
    settings: AgentSettings = ctx.proc.userdata[SETTINGS_KEY]
    ctx.log_context_fields = {"room": ctx.job.room.name, "job_id": ctx.job.id}

    session = build_session(settings, vad_model=ctx.proc.userdata.get(VAD_KEY))
    agent = build_agent(settings)
    usage = UsageTracker(session)
    watch(ctx, session, usage)

    await ctx.connect()
    if ctx.is_fake_job():  # console mode: no room for an avatar to join, no API to command
        avatar = commands = None
    else:
        # taken from now on: commands sent while the avatar starts wait for the session
        commands = await optional(
            "context commands", ContextCommands.start(ctx.room, session, agent, settings)
        )
        if commands is not None:
            ctx.add_shutdown_callback(lambda _reason: commands.aclose())
        avatar = await start_avatar(session, ctx.room, ctx.proc, settings)

    # before the session starts, so that the greeting is already a chat.push
    events = await optional(
        "webhooks",
        ConversationEvents.start(
            ctx.room,
            session,
            settings,
            ctx.proc.userdata[WEBHOOKS_KEY],
            session_id=ctx.job.id,
            deliver_here=ctx.is_fake_job(),
        ),
    )
    if events is not None:
        ctx.add_shutdown_callback(lambda _reason: events.aclose())
        if commands is not None:
            commands.report_to(
                lambda c: events.context_command(
                    command_id=c.id, context_type=c.type, message=c.text
                )
            )

    if commands is not None:
        commands.session_starting()
    await session.start(
        agent=agent,
        room=ctx.room,
        # with an avatar, its participant publishes the agent's voice: a second track would echo
        room_options=room_io.RoomOptions(audio_output=avatar is None),
    )
    log.info("session started", avatar=avatar is not None)
    if commands is not None:
        await commands.session_started()
    if avatar is not None:
        fallback = VoiceFallback(session, ctx.room, avatar.avatar_identity)
        ctx.add_shutdown_callback(lambda _reason: fallback.aclose())

    # after the start: the optional gesture tool joins the running agent's tools
    gestures = await optional("gestures", start_gestures(session, ctx.room, avatar, settings))
    if gestures is not None:
        ctx.add_shutdown_callback(lambda _reason: gestures.aclose())


async def optional(feature: str, starting: Awaitable[T]) -> T | None:
    """Gestures, webhooks and context commands are extras: when one cannot start, the
    conversation goes on."""
    try:
        return await starting
    except Exception:
        log.exception("feature unavailable for this session", feature=feature)
        return None


def watch(ctx: JobContext, session: AgentSession[Any], usage: UsageTracker) -> None:
    """Log errors, end the job when the session ends, and log the session's usage."""
    ending: set[asyncio.Task[None]] = set()

    async def end_job(reason: str) -> None:
        # livekit-agents 1.8.9 emits no `close` after an unrecoverable realtime error, and its
        # aclose() then re-raises that error, which would skip the job's shutdown callbacks
        # (avatar removal, this usage line): close the session here, where we can catch it.
        try:
            await session.aclose()
        except Exception as exc:
            log.debug("session close raised", error=describe(exc))
        ctx.shutdown(reason=reason)

    def on_error(ev: ErrorEvent) -> None:
        error = ev.error
        recoverable = bool(getattr(error, "recoverable", False))
        cause = getattr(error, "error", error)
        log.warning(
            "session error",
            source=type(ev.source).__name__,
            error=describe(cause),
            recoverable=recoverable,
        )
        if not recoverable and not ending:
            task = asyncio.create_task(end_job(f"unrecoverable {type(ev.source).__name__} error"))
            ending.add(task)

    def on_close(ev: CloseEvent) -> None:
        log.info(
            "session closed",
            reason=ev.reason.value,
            error=str(ev.error.error) if ev.error else None,
        )
        ctx.shutdown(reason=f"session closed: {ev.reason.value}")

    async def on_shutdown(reason: str) -> None:
        session.off("error", on_error)
        session.off("close", on_close)
        usage.detach()
        log.info("session usage", shutdown_reason=reason, **usage.summary())

    session.on("error", on_error)
    session.on("close", on_close)
    ctx.add_shutdown_callback(on_shutdown)
