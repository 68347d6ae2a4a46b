"""Webhook signatures, both schemes, for senders and receivers.

bitHuman's scheme: `X-bitHuman-Signature: sha256=<hex HMAC-SHA256(secret, body)>`. It signs the
body only, so a captured request can be replayed; receivers compensate by deduplicating.

Standard Webhooks (standardwebhooks.com): `webhook-id`, `webhook-timestamp` (Unix seconds) and
`webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`, which lets a
receiver refuse stale requests. Its key is the base64 part of a `whsec_...` secret, or the
secret's UTF-8 bytes for any other secret, so one configured secret serves both schemes.

Verification never raises on what a client sent: a missing or malformed header is a failure
with a stable reason, and digests are compared in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

BITHUMAN_HEADER = "X-bitHuman-Signature"
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
DEFAULT_TOLERANCE = 300.0
MAX_ID_LENGTH = 256
_STANDARD_PREFIX = "whsec_"


def bithuman_signature(secret: str, body: bytes) -> str:
    """The `X-bitHuman-Signature` value for `body`."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def standard_key(secret: str) -> bytes:
    """The HMAC key Standard Webhooks libraries derive from `secret`."""
    if secret.startswith(_STANDARD_PREFIX):
        try:
            return base64.b64decode(secret.removeprefix(_STANDARD_PREFIX), validate=True)
        except binascii.Error:
            pass  # not really a whsec_ secret: use it verbatim like any other
    return secret.encode("utf-8")


def standard_signature(key: bytes, webhook_id: str, timestamp: int | str, body: bytes) -> str:
    """The `webhook-signature` value (one `v1,` entry) for this id, timestamp and body."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def sign_headers(secret: str, webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Every signature header a delivery carries (ids and timestamps come from the caller)."""
    return {
        BITHUMAN_HEADER: bithuman_signature(secret, body),
        ID_HEADER: webhook_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: standard_signature(standard_key(secret), webhook_id, timestamp, body),
    }


class Failure(StrEnum):
    """Why a request did not verify (values are stable, for logs, metrics and responses)."""

    MISSING_SIGNATURE = "missing_signature"
    MISSING_TIMESTAMP = "missing_timestamp"
    MALFORMED_HEADER = "malformed_header"
    SIGNATURE_MISMATCH = "signature_mismatch"
    TIMESTAMP_OUT_OF_TOLERANCE = "timestamp_out_of_tolerance"


@dataclass(frozen=True, slots=True)
class Verification:
    """The verdict on one request; truthy when it verified."""

    failure: Failure | None
    scheme: str | None = None  # "standard" or "bithuman" when verified
    webhook_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None

    def __bool__(self) -> bool:
        return self.ok


def verify_bithuman_signature(secret: str, body: bytes, header: str | None) -> bool:
    """bitHuman's documented check over the raw body bytes, in constant time."""
    if not header:
        return False
    expected = bithuman_signature(secret, body).encode("ascii")
    return hmac.compare_digest(expected, header.strip().encode("utf-8", "replace"))


def verify_webhook(
    secret: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
    require_timestamp: bool = False,
) -> Verification:
    """Verify a request signed with either scheme; every signature present must match.

    With Standard Webhooks headers the timestamp must lie within `tolerance` seconds of `now`.
    Without them only the bitHuman signature is checked, unless `require_timestamp` refuses
    such requests (they cannot be protected against replay).
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    legacy = lowered.get(BITHUMAN_HEADER.lower())
    standard = [lowered.get(name) for name in (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER)]
    if legacy is not None and not verify_bithuman_signature(secret, body, legacy):
        return Verification(Failure.SIGNATURE_MISMATCH)
    if all(value is None for value in standard):
        if require_timestamp:
            return Verification(Failure.MISSING_TIMESTAMP)
        if legacy is None:
            return Verification(Failure.MISSING_SIGNATURE)
        return Verification(None, scheme="bithuman")
    webhook_id, timestamp, signature = standard
    if not webhook_id or not timestamp or not signature or not _plausible_id(webhook_id):
        return Verification(Failure.MALFORMED_HEADER)
    failure = _verify_standard(secret, body, webhook_id, timestamp, signature, tolerance, now)
    if failure is not None:
        return Verification(failure)
    return Verification(None, scheme="standard", webhook_id=webhook_id)


def _plausible_id(webhook_id: str) -> bool:
    """Ids are visible ASCII (what senders use, and safe to store and log), at most 256."""
    return (
        len(webhook_id) <= MAX_ID_LENGTH
        and webhook_id.isascii()
        and webhook_id.isprintable()
        and " " not in webhook_id
    )


def _verify_standard(
    secret: str,
    body: bytes,
    webhook_id: str,
    timestamp: str,
    signature: str,
    tolerance: float,
    now: float | None,
) -> Failure | None:
    stamp = timestamp.strip()
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        return Failure.MALFORMED_HEADER
    current = time.time() if now is None else now
    if abs(current - int(stamp)) > tolerance:
        return Failure.TIMESTAMP_OUT_OF_TOLERANCE
    expected = standard_signature(standard_key(secret), webhook_id, stamp, body)
    expected_bytes = expected.encode("ascii")
    # The header may list several space-separated signatures (key rotation): any one will do.
    matched = False
    for candidate in signature.split():
        matched |= hmac.compare_digest(expected_bytes, candidate.encode("utf-8", "replace"))
    return None if matched else Failure.SIGNATURE_MISMATCH
