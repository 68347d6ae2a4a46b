"""Async client for bitHuman's REST APIs (runtime tokens, dynamics, agent generation) and the
Agent Context API, hosted or self-hosted (`python -m context_api`); `python -m bithuman_client`
is its command line (docs/bithuman-client.md)."""

from bithuman_client.client import BithumanClient, RetryPolicy, check_base_url
from bithuman_client.errors import (
    AuthenticationError,
    BithumanError,
    NetworkError,
    NotFoundError,
    QuotaExceededError,
    RateLimitError,
    RedirectError,
    ServerError,
    ValidationError,
)
from bithuman_client.models import (
    AgentStatus,
    AgentStatusAnswer,
    ContextAnswer,
    ContextDelivery,
    DynamicsCatalog,
    JobStarted,
    RuntimeToken,
)

__all__ = [
    "AgentStatus",
    "AgentStatusAnswer",
    "AuthenticationError",
    "BithumanClient",
    "BithumanError",
    "ContextAnswer",
    "ContextDelivery",
    "DynamicsCatalog",
    "JobStarted",
    "NetworkError",
    "NotFoundError",
    "QuotaExceededError",
    "RateLimitError",
    "RedirectError",
    "RetryPolicy",
    "RuntimeToken",
    "ServerError",
    "ValidationError",
    "check_base_url",
]
