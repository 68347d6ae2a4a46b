"""Async client for bitHuman's REST APIs (runtime tokens, dynamics, agents, context)."""

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
from bithuman_client.models import DynamicsCatalog, RuntimeToken

__all__ = [
    "AuthenticationError",
    "BithumanClient",
    "BithumanError",
    "DynamicsCatalog",
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
