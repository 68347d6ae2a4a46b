"""Agent Context API, self-hosted: bitHuman's `speak` and `add-context` for live sessions.

Run it with `python -m context_api`; build it in-process with `create_app(settings)`. The
command format between this service and the agent is in `context_api.wire`.
"""

from context_api.app import create_app
from context_api.settings import ContextApiSettings

__all__ = ["ContextApiSettings", "create_app"]
