"""Admission: when the worker tells LiveKit it is full, so that no session lands on a saturated
worker.

livekit compares a load function's value with the load threshold on every job request (and
counts requests accepted but not yet started at the same per-job load). Its default load is the
host's CPU, averaged over 2.5 s: a burst of requests lands before the sessions it admits show in
that average. AGENT_MAX_SESSIONS adds a hard cap measured in sessions (see docs/capacity.md):
the load becomes the larger of the CPU load and the share of the cap in use, scaled so that the
worker is full at exactly the cap. With AGENT_LOAD_THRESHOLD=inf the cap alone decides.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from livekit.agents import AgentServer
from livekit.agents.worker import _DefaultLoadCalc  # livekit's own CPU load, its default

from agent.settings import AgentSettings

LoadFunction = Callable[[AgentServer], float]


def load_threshold(settings: AgentSettings) -> float:
    if settings.agent_max_sessions and math.isinf(settings.agent_load_threshold):
        return 1.0  # sessions only: full when the share in use reaches 1
    return settings.agent_load_threshold


def load_function(settings: AgentSettings) -> LoadFunction | None:
    """None (livekit's CPU load) without a cap."""
    cap = settings.agent_max_sessions
    if not cap:
        return None
    threshold = load_threshold(settings)
    sessions_only = math.isinf(settings.agent_load_threshold)

    def load(server: AgentServer) -> float:
        share = len(server.active_jobs) / cap
        if sessions_only:
            return share
        return max(_DefaultLoadCalc.get_load(server), share * threshold)

    return load
