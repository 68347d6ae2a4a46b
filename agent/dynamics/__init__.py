"""Avatar gestures (bitHuman "dynamics") triggered by keywords in the conversation.

`Dynamics.start(...)` wires one session; see `controller` for the flow and `docs/dynamics.md`
for the user-facing description.
"""

from agent.dynamics.controller import Dynamics, fetch_catalog
from agent.dynamics.sender import AvatarRpc, LocalRuntime
from agent.dynamics.settings import AVATAR_IDENTITY, DynamicsSettings
from agent.dynamics.text import warm_up

__all__ = [
    "AVATAR_IDENTITY",
    "AvatarRpc",
    "Dynamics",
    "DynamicsSettings",
    "LocalRuntime",
    "fetch_catalog",
    "warm_up",
]
