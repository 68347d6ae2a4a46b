"""A webhook receiver for integrators: verify, reject replays, dedupe, answer, then process.

Run it with `python -m webhook_receiver`, handlers from WEBHOOK_RECEIVER_HANDLERS, or embed
`create_app(settings, router)` in your own aiohttp service.
"""

from webhook_receiver.app import create_app
from webhook_receiver.router import ReceivedEvent, Router
from webhook_receiver.settings import ReceiverSettings

__all__ = ["ReceivedEvent", "ReceiverSettings", "Router", "create_app"]
