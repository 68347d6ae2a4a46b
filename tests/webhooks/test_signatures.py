"""Signing and verification: both schemes, constant-time compares, clean failures."""

from __future__ import annotations

import base64
import hashlib
import hmac

from hypothesis import given, settings
from hypothesis import strategies as st

from webhooks import payloads
from webhooks.payloads import EventIds
from webhooks.signatures import (
    Failure,
    sign_headers,
    standard_key,
    verify_bithuman_signature,
    verify_webhook,
)

new_id = EventIds().next
# A loaded CI machine must not fail a correct example on time.
no_deadline = settings(deadline=None)

SECRET = "s3cret-for-tests"
NOW = 1_700_000_000


def documented_python_check(secret: str, payload: bytes, signature: str) -> bool:
    """bitHuman's Flask example, verbatim in substance: HMAC over request.data."""
    expected = hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()
    return hmac.compare_digest(f"sha256={expected}", signature)


def event_body() -> bytes:
    return payloads.chat_push(
        event_id=new_id(),
        agent_id="A1",
        role="user",
        message="Grüße 👋",
        session_id="s1",
        now=NOW + 0.5,
    ).body


def test_signed_body_passes_the_documented_python_check() -> None:
    body = event_body()
    headers = sign_headers(SECRET, "evt_1", NOW, body)
    assert documented_python_check(SECRET, body, headers["X-bitHuman-Signature"])
    assert not documented_python_check("other", body, headers["X-bitHuman-Signature"])


def test_both_schemes_verify_and_report_the_id() -> None:
    body = event_body()
    headers = sign_headers(SECRET, "evt_1", NOW, body)
    verdict = verify_webhook(SECRET, body, headers, now=NOW + 10)
    assert verdict.ok and verdict.scheme == "standard" and verdict.webhook_id == "evt_1"
    legacy_only = {"X-bitHuman-Signature": headers["X-bitHuman-Signature"]}
    verdict = verify_webhook(SECRET, body, legacy_only, now=NOW)
    assert verdict.ok and verdict.scheme == "bithuman" and verdict.webhook_id is None


def test_header_names_are_case_insensitive() -> None:
    body = event_body()
    headers = {k.upper(): v for k, v in sign_headers(SECRET, "evt_1", NOW, body).items()}
    assert verify_webhook(SECRET, body, headers, now=NOW)


def test_tampering_and_wrong_secret_fail() -> None:
    body = event_body()
    headers = sign_headers(SECRET, "evt_1", NOW, body)
    assert (
        verify_webhook(SECRET, body + b" ", headers, now=NOW).failure is Failure.SIGNATURE_MISMATCH
    )
    assert verify_webhook("wrong", body, headers, now=NOW).failure is Failure.SIGNATURE_MISMATCH
    # A valid standard signature does not excuse a wrong bitHuman one.
    mixed = {**headers, "X-bitHuman-Signature": "sha256=" + "0" * 64}
    assert verify_webhook(SECRET, body, mixed, now=NOW).failure is Failure.SIGNATURE_MISMATCH


def test_replays_outside_the_tolerance_are_refused() -> None:
    body = event_body()
    headers = sign_headers(SECRET, "evt_1", NOW, body)
    assert verify_webhook(SECRET, body, headers, now=NOW + 300, tolerance=300)
    late = verify_webhook(SECRET, body, headers, now=NOW + 301, tolerance=300)
    assert late.failure is Failure.TIMESTAMP_OUT_OF_TOLERANCE
    early = verify_webhook(SECRET, body, headers, now=NOW - 301, tolerance=300)
    assert early.failure is Failure.TIMESTAMP_OUT_OF_TOLERANCE
    # Moving the timestamp forward breaks the signature.
    moved = {**headers, "webhook-timestamp": str(NOW + 1000)}
    moved.pop("X-bitHuman-Signature")
    assert verify_webhook(SECRET, body, moved, now=NOW + 1000).failure is Failure.SIGNATURE_MISMATCH


def test_missing_and_partial_headers() -> None:
    body = event_body()
    headers = sign_headers(SECRET, "evt_1", NOW, body)
    assert verify_webhook(SECRET, body, {}, now=NOW).failure is Failure.MISSING_SIGNATURE
    legacy_only = {"X-bitHuman-Signature": headers["X-bitHuman-Signature"]}
    refused = verify_webhook(SECRET, body, legacy_only, now=NOW, require_timestamp=True)
    assert refused.failure is Failure.MISSING_TIMESTAMP
    partial = {"webhook-id": "evt_1", "webhook-timestamp": str(NOW)}
    assert verify_webhook(SECRET, body, partial, now=NOW).failure is Failure.MALFORMED_HEADER
    bad_stamp = {**headers, "webhook-timestamp": "yesterday"}
    assert verify_webhook(SECRET, body, bad_stamp, now=NOW).failure is Failure.MALFORMED_HEADER


def test_any_of_several_standard_signatures_may_match() -> None:
    body = event_body()
    headers = sign_headers(SECRET, "evt_1", NOW, body)
    headers["webhook-signature"] = "v1,AAAA " + headers["webhook-signature"] + " v2,zzz"
    assert verify_webhook(SECRET, body, headers, now=NOW)


def test_whsec_secrets_use_their_base64_key() -> None:
    raw = b"\x01\x02secret-bytes"
    secret = "whsec_" + base64.b64encode(raw).decode()
    assert standard_key(secret) == raw
    assert standard_key("plain") == b"plain"
    assert standard_key("whsec_not base64!") == b"whsec_not base64!"
    body = event_body()
    headers = sign_headers(secret, "evt_1", NOW, body)
    signed = f"evt_1.{NOW}.".encode() + body
    expected = base64.b64encode(hmac.new(raw, signed, hashlib.sha256).digest()).decode()
    assert headers["webhook-signature"] == f"v1,{expected}"
    assert verify_webhook(secret, body, headers, now=NOW)


header_text = st.text(max_size=80)


@no_deadline
@given(
    st.binary(max_size=200),
    st.dictionaries(
        st.sampled_from(
            ["X-bitHuman-Signature", "webhook-id", "webhook-timestamp", "webhook-signature", "x"]
        ),
        header_text,
    ),
)
def test_arbitrary_headers_fail_cleanly_never_raise(body: bytes, headers: dict[str, str]) -> None:
    verdict = verify_webhook(SECRET, body, headers, now=NOW)
    assert not verdict.ok and isinstance(verdict.failure, Failure)
    assert verify_bithuman_signature(SECRET, body, headers.get("X-bitHuman-Signature")) is False
