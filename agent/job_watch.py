"""A job's watch over its session: errors logged, the job ended with the session, usage
logged at the end."""

from __future__ import annotations

import asyncio
from typing import Any

from livekit.agents import AgentSession, JobContext
from livekit.agents.voice.events import CloseEvent, ErrorEvent

from agent.usage import UsageTracker
from common.logs import describe, get_logger

log = get_logger("agent.job")


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
