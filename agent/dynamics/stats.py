"""What became of each gesture: counted per session and per process, problems logged once."""

from __future__ import annotations

from collections import Counter
from enum import StrEnum
from typing import Any

from prometheus_client import Counter as PrometheusCounter

from common.logs import get_logger

log = get_logger("agent.dynamics")

GESTURES = PrometheusCounter(
    "dynamics_gestures", "Gesture triggers by what became of them.", ["outcome"]
)


class Outcome(StrEnum):
    PERFORMED = "performed"
    NOT_PERFORMED = "not_performed"
    UNCONFIRMED = "unconfirmed"
    UNSUPPORTED_METHOD = "unsupported_method"
    RECIPIENT_NOT_FOUND = "recipient_not_found"
    TIMEOUT = "timeout"
    RPC_ERROR = "rpc_error"
    ERROR = "error"
    NOT_JOINED = "not_joined"
    PACED = "paced"


# The first occurrence of each of these in a session is a warning; repeats are debug lines.
_PROBLEMS = {
    Outcome.NOT_PERFORMED: "avatar did not perform the gesture (unknown to it?)",
    Outcome.UNCONFIRMED: "avatar's reply does not say whether it performed the gesture",
    Outcome.UNSUPPORTED_METHOD: "avatar has no trigger_dynamics handler (RPC error 1400)",
    Outcome.RECIPIENT_NOT_FOUND: "avatar participant not found (RPC error 1401)",
    Outcome.TIMEOUT: "avatar did not answer the gesture request in time",
    Outcome.RPC_ERROR: "gesture request failed",
    Outcome.ERROR: "gesture request failed unexpectedly",
}


class GestureStats:
    """Per-session tally; also feeds the process-wide Prometheus counter."""

    def __init__(self) -> None:
        self.counts: Counter[Outcome] = Counter()

    def record(self, outcome: Outcome, **fields: Any) -> None:
        self.counts[outcome] += 1
        GESTURES.labels(outcome.value).inc()
        message = _PROBLEMS.get(outcome)
        if outcome is Outcome.PERFORMED:
            log.info("gesture performed", **fields)
        elif message is None:
            log.debug("gesture skipped", outcome=outcome.value, **fields)
        elif self.counts[outcome] == 1:
            log.warning(message, outcome=outcome.value, **fields)
        else:
            log.debug(message, outcome=outcome.value, **fields)

    def summary(self) -> dict[str, int]:
        return {outcome.value: count for outcome, count in sorted(self.counts.items())}
