"""room.join and chat.push webhooks: signed, JS-compatible bodies, a durable outbox, delivery.

The agent uses `WebhookEmitter`; `python -m webhooks` runs a long-lived deliverer;
`webhooks.signatures.verify_webhook` and `python -m webhook_receiver` are for receivers.
"""

from webhooks.emitter import WebhookEmitter
from webhooks.settings import WebhookSettings
from webhooks.signatures import Verification, verify_bithuman_signature, verify_webhook

__all__ = [
    "Verification",
    "WebhookEmitter",
    "WebhookSettings",
    "verify_bithuman_signature",
    "verify_webhook",
]
