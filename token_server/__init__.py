"""LiveKit token server for web, Flutter and Agents Playground clients.

Run it with `python -m token_server`; build it in-process with `create_app(settings)`.
"""

from token_server.app import create_app
from token_server.settings import TokenServerSettings

__all__ = ["TokenServerSettings", "create_app"]
