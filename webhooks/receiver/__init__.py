"""A webhook receiver for integrators: verify, reject replays, dedupe, answer, then process.

Run it with `python -m webhooks.receiver`, handlers from WEBHOOK_RECEIVER_HANDLERS, or embed
`create_app(settings, router)` in your own aiohttp service.
"""

from webhooks.receiver.app import create_app
from webhooks.receiver.router import ReceivedEvent, Router
from webhooks.receiver.settings import ReceiverSettings

__all__ = ["ReceivedEvent", "ReceiverSettings", "Router", "create_app"]
