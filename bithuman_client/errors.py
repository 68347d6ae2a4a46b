"""Typed errors for bitHuman API calls, carrying the API's `error`, `code` and `details`."""

from __future__ import annotations

from typing import Any


class BithumanError(Exception):
    """A bitHuman API call failed. `status` is None when no HTTP answer arrived."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error: str | None = None,
        code: str | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.code = code
        self.details = details


class AuthenticationError(BithumanError):
    """401/403: the secret is wrong, or a token was minted for another agent, room or URL."""


class ValidationError(BithumanError):
    """400/422: the request was refused as invalid (for example a model the avatar lacks)."""


class NotFoundError(BithumanError):
    """404: no such agent (or nothing to deliver to)."""


class QuotaExceededError(BithumanError):
    """402: out of credits."""


class RateLimitError(BithumanError):
    """429 after all retries; `retry_after` is the server's last hint, in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class ServerError(BithumanError):
    """5xx after all retries."""


class RedirectError(BithumanError):
    """3xx: the API redirected. Never followed: the `api-secret` header would go along."""


class NetworkError(BithumanError):
    """No answer: connection refused, DNS failure, timeout (after all retries)."""


def error_for_status(status: int) -> type[BithumanError]:
    if status in (401, 403):
        return AuthenticationError
    if status in (400, 409, 422):
        return ValidationError
    if status == 404:
        return NotFoundError
    if status == 402:
        return QuotaExceededError
    if status == 429:
        return RateLimitError
    if status >= 500:
        return ServerError
    return BithumanError
