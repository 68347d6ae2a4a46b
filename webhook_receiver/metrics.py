"""Prometheus metrics of the receiver, on a registry the caller chooses."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ReceiverMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "webhook_receiver_requests",
            "Webhook requests by outcome: accepted, duplicate, rejected, invalid, busy.",
            ["outcome"],
            registry=registry,
        )
        self.rejected = Counter(
            "webhook_receiver_rejected",
            "Requests refused by signature verification, by reason.",
            ["reason"],
            registry=registry,
        )
        self.handler_runs = Counter(
            "webhook_receiver_handler_runs",
            "Handler runs by event type and outcome (ok, failed, timeout).",
            ["event_type", "outcome"],
            registry=registry,
        )
        self.handler_timeouts = Counter(
            "webhook_receiver_handler_timeouts",
            "Handler runs that overran WEBHOOK_RECEIVER_HANDLER_TIMEOUT.",
            ["event_type"],
            registry=registry,
        )
        self.handler_seconds = Histogram(
            "webhook_receiver_handler_seconds",
            "Time one handler took.",
            ["event_type"],
            registry=registry,
        )
        self.queue_depth = Gauge(
            "webhook_receiver_queue_depth",
            "Accepted events waiting for their handlers.",
            registry=registry,
        )
        self.dead_letters = Gauge(
            "webhook_receiver_dead_letters",
            "Failed handler runs kept for retry or inspection.",
            registry=registry,
        )
