"""The load the worker reports to LiveKit under AGENT_MAX_SESSIONS (the refusal itself, through
the real server: tests/e2e/test_admission.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import cast

from livekit.agents import AgentServer

from agent.admission import load_function, load_threshold
from agent.settings import AgentSettings
from tests.agent.test_settings import GOOD


@dataclass
class Jobs:
    """What the load function reads of the worker: its running jobs."""

    active_jobs: list[object] = field(default_factory=list)


def settings(**values: str) -> AgentSettings:
    return AgentSettings(_env_file=None, **(GOOD | values))  # type: ignore[call-arg]


def loads(config: AgentSettings, counts: range) -> list[float]:
    load = load_function(config)
    assert load is not None
    return [load(cast(AgentServer, Jobs([object()] * n))) for n in counts]


def test_without_a_cap_livekit_keeps_its_cpu_load_and_the_threshold() -> None:
    config = settings(AGENT_LOAD_THRESHOLD="0.6")
    assert load_function(config) is None
    assert load_threshold(config) == 0.6


def test_a_cap_alone_is_full_exactly_at_the_cap() -> None:
    config = settings(AGENT_MAX_SESSIONS="4", AGENT_LOAD_THRESHOLD="inf")
    threshold = load_threshold(config)
    assert threshold == 1.0
    full = [load >= threshold for load in loads(config, range(6))]
    assert full == [False, False, False, False, True, True]


def test_a_cap_with_a_cpu_threshold_is_full_at_the_cap_or_above_the_cpu_load() -> None:
    config = settings(AGENT_MAX_SESSIONS="3", AGENT_LOAD_THRESHOLD="0.75")
    threshold = load_threshold(config)
    assert threshold == 0.75
    # the CPU part is livekit's host measurement: here, whatever this machine's load is
    values = loads(config, range(5))
    assert all(not math.isnan(v) for v in values)
    assert values[3] >= threshold and values[4] >= threshold
    assert values[2] >= 2 / 3 * threshold


def test_the_new_settings_default_to_livekit_s_behaviour() -> None:
    config = settings()
    assert (config.agent_max_sessions, config.agent_local_vad, config.agent_job_executor) == (
        0,
        True,
        "process",
    )
