"""The receiver's HTTP side: `POST <path>` for webhooks, `GET /healthz`, `GET /metrics`.

A webhook is verified (either signature scheme; with Standard Webhooks headers, a timestamp
outside the tolerance is a replay and refused), parsed, deduplicated by `webhook-id` (or a hash
of the body for senders without one), stored, and answered 200 before any handler runs.
Refusals are JSON `{error, code, details}`: 401 for signatures, 400 for bodies, 503 with
Retry-After when the handler queue is full (the sender retries later).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from prometheus_client import REGISTRY, CollectorRegistry

from common.web import ApiError, add_status_routes, error_middleware
from webhooks.clock import SYSTEM_CLOCK, Clock
from webhooks.metrics import metrics_on
from webhooks.receiver.metrics import ReceiverMetrics
from webhooks.receiver.processor import Processor, Receipt
from webhooks.receiver.router import Router
from webhooks.receiver.settings import ReceiverSettings
from webhooks.receiver.store import ReceiverStore
from webhooks.signatures import verify_webhook

PROCESSOR = web.AppKey("processor", Processor)
BUSY_RETRY_AFTER_S = 5


def create_app(
    settings: ReceiverSettings,
    router: Router,
    *,
    registry: CollectorRegistry | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> web.Application:
    """The receiver as an aiohttp application; its store opens on startup, closes on cleanup."""
    registry = REGISTRY if registry is None else registry
    metrics = metrics_on(ReceiverMetrics, registry)
    secret = settings.secret.get_secret_value()
    app = web.Application(middlewares=[error_middleware], client_max_size=settings.max_body)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        store = await asyncio.to_thread(ReceiverStore.open, settings.store_path)
        processor = Processor(
            router,
            store,
            metrics=metrics,
            clock=clock,
            workers=settings.workers,
            queue_size=settings.queue_size,
            retry_interval=settings.retry_interval,
            max_attempts=settings.max_attempts,
            dedupe_ttl=settings.dedupe_ttl,
        )
        await processor.start()
        app[PROCESSOR] = processor
        yield
        await processor.aclose()

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        verdict = verify_webhook(
            secret,
            body,
            request.headers,
            tolerance=settings.tolerance,
            now=clock.now(),
            require_timestamp=settings.require_timestamp,
        )
        if verdict.failure is not None:
            metrics.requests.labels("rejected").inc()
            metrics.rejected.labels(verdict.failure.value).inc()
            raise ApiError(
                401,
                verdict.failure.name,
                "webhook signature did not verify",
                {"reason": verdict.failure.value},
            )
        payload = _envelope(body)
        if payload is None:
            metrics.requests.labels("invalid").inc()
            raise ApiError(
                400, "INVALID_PAYLOAD", "body must be a JSON object with a string event_type"
            )
        key = verdict.webhook_id or "sha256:" + hashlib.sha256(body).hexdigest()
        receipt = await request.app[PROCESSOR].receive(key, body, payload)
        metrics.requests.labels(receipt.value).inc()
        if receipt is Receipt.BUSY:
            raise ApiError(
                503,
                "BUSY",
                "too many events waiting; retry later",
                headers={"Retry-After": str(BUSY_RETRY_AFTER_S)},
            )
        return web.json_response({"status": receipt.value})

    def health() -> dict[str, object]:
        processor = app.get(PROCESSOR)
        return {"queue_depth": processor.queue_depth if processor else 0}

    app.cleanup_ctx.append(lifecycle)
    app.router.add_post(settings.path, receive)
    add_status_routes(app, registry, health)
    return app


def _envelope(body: bytes) -> dict[str, Any] | None:
    """`body` parsed, when it is a JSON object with a non-empty string `event_type`."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(payload, dict):
        return None
    event_type = payload.get("event_type")
    return payload if isinstance(event_type, str) and event_type else None
