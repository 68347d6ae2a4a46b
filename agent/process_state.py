"""What a job process loads once in prewarm and every job in it reuses, typed.

livekit hands each process a `userdata` dict; this keeps one entry in it, so that jobs read
attributes with types instead of string keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from livekit.agents import JobProcess, vad

from agent.dynamics.settings import DynamicsSettings
from agent.settings import AgentSettings
from webhooks import WebhookSettings

if TYPE_CHECKING:
    from bithuman import AsyncBithuman

_KEY = "agent.process_state"


@dataclass
class ProcessState:
    settings: AgentSettings
    dynamics: DynamicsSettings
    webhooks: WebhookSettings
    vad: vad.VAD | None = None  # None: AGENT_LOCAL_VAD is off
    bithuman_runtime: AsyncBithuman | None = None  # a local .imx avatar's, loaded once

    def attach(self, proc: JobProcess) -> None:
        proc.userdata[_KEY] = self


def process_state(proc: JobProcess) -> ProcessState:
    state = proc.userdata.get(_KEY)
    if not isinstance(state, ProcessState):
        raise TypeError(f"{_KEY} holds a {type(state).__name__}: prewarm did not run")
    return state
