"""The command format between the context API and the agent: a signed envelope the agent
accepts only as it was signed, for itself, in time."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from livekit import api

from context_api.wire import (
    MAX_PAYLOAD_BYTES,
    PROOF_NAME,
    Command,
    CommandSigner,
    CommandVerifier,
    Refused,
    canonical,
    new_command_id,
)

KEY = "APIwiretest"
SECRET = "wire-test-secret-0123456789abcdefghij"
signer = CommandSigner(KEY, SECRET)


def command(**changes: Any) -> Command:
    fields: dict[str, Any] = {
        "id": new_command_id(),
        "type": "speak",
        "text": "Grüße, and a ✓.",
        "agent_code": "A12345678",
        "room": "room-1",
        "to": "agent-AJ_1",
        "issued_at": int(time.time() * 1000),
    }
    return Command(**(fields | changes))


def verifier(**changes: str) -> CommandVerifier:
    where = {"room": "room-1", "identity": "agent-AJ_1", "agent_code": "A12345678"} | changes
    return CommandVerifier(KEY, SECRET, **where)


def refusal(payload: str | bytes, check: CommandVerifier | None = None) -> Refused:
    with pytest.raises(Refused) as refused:
        (check or verifier()).verify(payload)
    return refused.value


def test_a_signed_command_verifies_and_carries_its_expiry() -> None:
    sent = command()
    payload = signer.envelope(sent)
    verified = verifier().verify(payload)
    assert verified.command == sent
    assert time.time() + 50 < verified.expires_at <= time.time() + 61
    assert verifier().verify(payload.encode()).command == sent


def test_the_proof_is_a_livekit_token_over_the_command_hash() -> None:
    sent = command()
    envelope = json.loads(signer.envelope(sent))
    claims = api.TokenVerifier(KEY, SECRET).verify(envelope["proof"])
    assert claims.identity == sent.to and claims.name == PROOF_NAME
    digest = base64.b64decode(claims.sha256)
    import hashlib

    assert digest == hashlib.sha256(canonical(envelope["command"])).digest()
    raw = jwt.decode(envelope["proof"], SECRET, algorithms=["HS256"], issuer=KEY)
    assert raw["exp"] - raw["nbf"] == 60
    assert raw["video"] == {"canPublish": False, "canSubscribe": False, "canPublishData": False}


@pytest.mark.parametrize(
    ("field", "value"),
    [("text", "Something else."), ("type", "add_context"), ("interrupt", True), ("issued_at", 1)],
)
def test_any_change_to_the_command_breaks_the_proof(field: str, value: Any) -> None:
    envelope = json.loads(signer.envelope(command()))
    envelope["command"][field] = value
    assert refusal(json.dumps(envelope)).reason == "proof does not match the command"


def test_an_unknown_field_is_malformed_even_when_signed() -> None:
    envelope = json.loads(signer.envelope(command()))
    envelope["command"]["extra"] = 1
    assert refusal(json.dumps(envelope)).code == Refused.MALFORMED


@pytest.mark.parametrize(
    "where",
    [{"room": "room-2"}, {"identity": "agent-AJ_2"}, {"agent_code": "B1"}],
)
def test_a_command_for_another_room_agent_or_code_is_misdirected(where: dict[str, str]) -> None:
    refused = refusal(signer.envelope(command()), verifier(**where))
    assert (refused.code, refused.reason) == (
        Refused.MISDIRECTED,
        "command is for another room, agent or code",
    )


def test_wrong_secret_wrong_key_and_expired_proofs() -> None:
    sent = command()
    assert refusal(
        CommandSigner(KEY, "another-secret-0123456789abcdefgh").envelope(sent)
    ).reason == ("proof invalid")
    assert refusal(CommandSigner("APIother", SECRET).envelope(sent)).reason == "proof invalid"
    old = CommandSigner(KEY, SECRET, ttl_seconds=5).envelope(sent, now=time.time() - 60)
    assert refusal(old).reason == "proof expired"
    # within the clock skew it still passes
    recent = CommandSigner(KEY, SECRET, ttl_seconds=5).envelope(sent, now=time.time() - 12)
    assert verifier().verify(recent).command == sent


def test_a_participant_token_is_no_proof() -> None:
    envelope = json.loads(signer.envelope(command()))
    envelope["proof"] = (
        api.AccessToken(KEY, SECRET)
        .with_identity("agent-AJ_1")
        .with_grants(api.VideoGrants(room_join=True, room="room-1"))
        .to_jwt()
    )
    assert refusal(json.dumps(envelope)).reason == "proof does not match the command"
    envelope["proof"] = "not a jwt"
    assert refusal(json.dumps(envelope)).reason == "proof invalid"


@pytest.mark.parametrize(
    "payload",
    [
        "",
        "hello",
        "[]",
        '{"command": {}}',
        '{"command": {}, "proof": "x", "more": 1}',
        '{"command": [], "proof": "x"}',
        '{"command": {}, "proof": 5}',
        '{"command": {"id": "cmd_x"}, "proof": "x"}',
        "[" * 10_000,
        "x" * (MAX_PAYLOAD_BYTES + 1),
        b"\xff\xfe",
    ],
)
def test_malformed_payloads(payload: str | bytes) -> None:
    assert refusal(payload).code == Refused.MALFORMED


def test_a_command_too_large_for_livekit_is_refused_before_sending() -> None:
    with pytest.raises(ValueError, match="bytes once encoded"):
        signer.envelope(command(text="\U0001f600" * 4000))
    assert len(signer.envelope(command(text="x" * 4096)).encode()) < MAX_PAYLOAD_BYTES


def test_command_ids() -> None:
    assert new_command_id() != new_command_id()
    assert new_command_id("key", scope="A1") == new_command_id("key", scope="A1")
    assert new_command_id("key", scope="A1") != new_command_id("key", scope="A2")
    assert new_command_id("\ud800", scope="A1").startswith("cmd_")
    with pytest.raises(ValueError):
        command(id="cmd_not-hex")
