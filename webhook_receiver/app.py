"""The receiver's HTTP side: `POST <path>` for webhooks, `GET /healthz`, `GET /metrics`.

A webhook is verified (either signature scheme; with Standard Webhooks headers, a timestamp
outside the tolerance is a replay and refused), parsed, deduplicated, stored, and answered 200
before any handler runs. Refusals are JSON `{error, code, details}`: 401 for signatures and
replays, 400 for bodies, 503 with Retry-After when the handler queue is full (the sender
retries later).

Replays. Every event is remembered for the dedupe TTL by two keys: its `webhook-id` when it
has one, and its fingerprint, a hash of the signed envelope, which every retry of an event
repeats and which nobody can change without the secret. So a request replayed with its
Standard Webhooks headers stripped still matches its original. A request without those
headers has no signed time of sending: its envelope's own `timestamp` (when the event was
made) must lie within the dedupe TTL, so any replay is either still remembered or refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from prometheus_client import REGISTRY, CollectorRegistry

from common.web import (
    ApiError,
    add_status_routes,
    error_middleware,
    error_response,
    handler_args,
)
from webhook_receiver.metrics import ReceiverMetrics
from webhook_receiver.processor import Processor, Receipt
from webhook_receiver.router import Router
from webhook_receiver.settings import ReceiverSettings
from webhook_receiver.store import ReceiverStore
from webhooks.clock import SYSTEM_CLOCK, Clock
from webhooks.metrics import metrics_on
from webhooks.signatures import verify_webhook

PROCESSOR = web.AppKey("processor", Processor)
BUSY_RETRY_AFTER_S = 5
MAX_EVENT_TYPE_LENGTH = 128


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
    app = web.Application(
        middlewares=[error_middleware],
        client_max_size=settings.max_body,
        # the head's deadline is above aiohttp clients' own 15 s idle limit, so a sender never
        # reuses a connection we are closing
        handler_args=handler_args(settings.read_timeout),
    )

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
            # Remembered for the TTL plus the clock-skew allowance: an unstamped event is
            # accepted up to `tolerance` s ahead of our clock, and must still be known when
            # its replay would pass the age check.
            dedupe_ttl=settings.dedupe_ttl + settings.tolerance,
            handler_timeout=settings.handler_timeout,
            dead_letter_retention=settings.dead_letter_retention,
        )
        await processor.start()
        app[PROCESSOR] = processor
        yield
        await processor.aclose()

    async def receive(request: web.Request) -> web.Response:
        try:
            async with asyncio.timeout(settings.read_timeout):  # the body's deadline
                body = await request.read()
        except TimeoutError:
            metrics.requests.labels("invalid").inc()
            response = error_response(408, "REQUEST_TIMEOUT", "the request body arrived too slowly")
            response.force_close()
            return response
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
        parsed = _envelope(body)
        if parsed is None:
            metrics.requests.labels("invalid").inc()
            raise ApiError(
                400,
                "INVALID_PAYLOAD",
                "body must be a JSON object with an event_type of 1 to"
                f" {MAX_EVENT_TYPE_LENGTH} printable characters",
            )
        payload, fingerprint = parsed
        if verdict.webhook_id is None:
            refusal = _age_refusal(payload, clock.now(), settings.dedupe_ttl, settings.tolerance)
            if refusal is not None:
                metrics.requests.labels("rejected").inc()
                metrics.rejected.labels(refusal.details["reason"]).inc()
                raise refusal
        key = verdict.webhook_id or fingerprint
        receipt = await request.app[PROCESSOR].receive(key, body, payload, fingerprint)
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


def _envelope(body: bytes) -> tuple[dict[str, Any], str] | None:
    """`body` parsed, and its fingerprint, when it is a JSON object whose `event_type` is a
    short printable string (it is stored as text and becomes a metric label: no lone
    surrogates, no control characters)."""
    try:
        payload = json.loads(body)
        if not isinstance(payload, dict):
            return None
        event_type = payload.get("event_type")
        if not isinstance(event_type, str) or not 0 < len(event_type) <= MAX_EVENT_TYPE_LENGTH:
            return None
        if not event_type.isprintable():
            return None
        return payload, event_fingerprint(payload)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than we can handle
        return None


def event_fingerprint(payload: dict[str, Any]) -> str:
    """`sha256:<hex>` of the envelope in a canonical form (sorted keys, compact, ASCII).

    The same for every delivery of one event, whatever headers came with it and however its
    sender spaced or ordered the JSON; different for any change to a signed field.
    """
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "sha256:" + hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _age_refusal(
    payload: dict[str, Any], now: float, max_age: float, skew: float
) -> ApiError | None:
    """The refusal of an unstamped request whose envelope `timestamp` is missing, older than
    `max_age` or more than `skew` seconds ahead (past the dedupe memory, a replay would look
    new); None when it is in the window."""
    stamp = payload.get("timestamp")
    seconds = math.nan
    if isinstance(stamp, int | float) and not isinstance(stamp, bool):
        with contextlib.suppress(OverflowError):  # an int too large for a float
            seconds = float(stamp)
    if not math.isfinite(seconds):
        return ApiError(
            401,
            "MISSING_TIMESTAMP",
            "a request without webhook-timestamp needs a numeric envelope timestamp",
            {"reason": "missing_event_timestamp"},
        )
    if not now - max_age <= seconds <= now + skew:
        return ApiError(
            401,
            "TIMESTAMP_OUT_OF_TOLERANCE",
            "the event is older than the receiver remembers, or from the future",
            {"reason": "event_timestamp_out_of_window"},
        )
    return None
