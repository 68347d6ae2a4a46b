"""Prometheus metrics of the webhook sender, and the one-set-per-registry rule for every set.

`metrics_on(SenderMetrics, registry)` builds a set once per registry, so an emitter and a
deliverer in one process (or two receiver apps) share counters instead of failing on duplicate
registration.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TypeVar, cast

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

M = TypeVar("M")

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class SenderMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.stored = Counter(
            "webhook_events_stored",
            "Events written to the outbox (one per event, whatever the destinations).",
            ["event_type"],
            registry=registry,
        )
        self.delivered = Counter(
            "webhook_deliveries_delivered",
            "Deliveries answered with a 2xx status.",
            ["event_type"],
            registry=registry,
        )
        self.retried = Counter(
            "webhook_deliveries_retried",
            "Failed attempts that were scheduled for another try.",
            ["event_type"],
            registry=registry,
        )
        self.dead_lettered = Counter(
            "webhook_deliveries_dead_lettered",
            "Deliveries given up after the last attempt failed.",
            ["event_type"],
            registry=registry,
        )
        self.destinations_failing = Gauge(
            "webhook_destinations_failing",
            "Destinations whose last attempt failed (in an outage), as this deliverer sees them.",
            registry=registry,
        )
        self.queue_depth = Gauge(
            "webhook_outbox_depth",
            "Deliveries waiting in the outbox (pending, retrying or in flight).",
            registry=registry,
        )
        self.latency = Histogram(
            "webhook_delivery_latency_seconds",
            "Time from an event's creation to its 2xx answer, retries included.",
            ["event_type"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )


_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, dict[object, object]] = (
    weakref.WeakKeyDictionary()
)


def metrics_on(
    kind: Callable[[CollectorRegistry], M], registry: CollectorRegistry | None = None
) -> M:
    """The `kind` metrics registered on `registry` (the global default when None), built once."""
    target = REGISTRY if registry is None else registry
    built = _by_registry.setdefault(target, {})
    if kind not in built:
        built[kind] = kind(target)
    return cast(M, built[kind])
