"""One job: a room's conversation, from connection to shutdown. Reads as a table of contents."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

from livekit.agents import JobContext, room_io

from agent.avatar import VoiceFallback, start_avatar, start_gestures
from agent.context_commands import ContextCommands
from agent.job_watch import watch
from agent.process_state import process_state
from agent.session import build_agent, build_session
from agent.usage import UsageTracker
from agent.webhook_events import ConversationEvents
from common.logs import get_logger

log = get_logger("agent.job")

T = TypeVar("T")


async def entrypoint(ctx: JobContext) -> None:
    state = process_state(ctx.proc)
    settings = state.settings
    ctx.log_context_fields = {"room": ctx.job.room.name, "job_id": ctx.job.id}

    session = build_session(settings, vad_model=state.vad)
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
        avatar = await start_avatar(session, ctx.room, state)

    # before the session starts, so that the greeting is already a chat.push
    events = await optional(
        "webhooks",
        ConversationEvents.start(
            ctx.room,
            session,
            settings,
            state.webhooks,
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
        room_options=room_io.RoomOptions(
            audio_input=room_io.AudioInputOptions(
                auto_gain_control=settings.agent_input_gain_control
            ),
            audio_output=avatar is None,
            text_output=room_io.TextOutputOptions(
                sync_transcription=settings.agent_sync_transcription
            ),
        ),
    )
    log.info("session started", avatar=avatar is not None)
    if commands is not None:
        await commands.session_started()
    if avatar is not None:
        fallback = VoiceFallback(session, ctx.room, avatar.avatar_identity)
        ctx.add_shutdown_callback(lambda _reason: fallback.aclose())

    # after the start: the optional gesture tool joins the running agent's tools
    gestures = await optional(
        "gestures", start_gestures(session, ctx.room, avatar, settings, state.dynamics)
    )
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
