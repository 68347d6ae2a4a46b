"""A placeholder avatar that needs no credits and no network: a drawn face rendered in the
job process through livekit's avatar toolkit (see docs/placeholder-avatar.md).

- `art`: the face, drawn once per process into ready I420 pieces;
- `generator`: the `VideoGenerator` (mouth from the voice's loudness, blinks, gesture banner);
- `avatar`: the `AvatarSession` that runs it in a job, and its built-in gesture catalog.
"""

from agent.placeholder.avatar import (
    GESTURES,
    PlaceholderAvatar,
    PlaceholderGestures,
    builtin_catalog,
    prewarm_placeholder,
    start_placeholder_gestures,
)
from agent.placeholder.generator import PlaceholderVideoGenerator

__all__ = [
    "GESTURES",
    "PlaceholderAvatar",
    "PlaceholderGestures",
    "PlaceholderVideoGenerator",
    "builtin_catalog",
    "prewarm_placeholder",
    "start_placeholder_gestures",
]
