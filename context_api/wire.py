"""What travels from the context API to an agent in a room: a command and its proof.

Both ends import this module, so the format lives in one place. It is our own design (how
bitHuman's platform reaches its agents is not public):

- The agent participant advertises itself with two attributes: `bithuman.agent_code` (which
  agent it is, for the API's `/v1/agent/{code}/...`) and `bithuman.agent_context` = "1" (it
  takes commands).
- The API calls RPC method `bithuman.agent_context` on that participant (LiveKit's server-side
  `PerformRpc`), or sends a reliable data packet on topic `bithuman.agent_context` to it
  (`SendData`) where the server has no `PerformRpc`. Either way the payload is the envelope,
  compact UTF-8 JSON, at most `MAX_PAYLOAD_BYTES`:

      {"command": {"v": 1, "id": "cmd_<32 hex>", "type": "speak" | "add_context",
                   "text": "...", "agent_code": "...", "room": "...", "to": "<agent identity>",
                   "issued_at": <unix ms>, "interrupt": false},
       "proof": "<JWT>"}

- The proof is an HS256 JWT signed with the LiveKit API secret, which the API and the agent
  already share: `iss` the LiveKit API key, `sub` the agent's identity, `name`
  "bithuman-agent-context", `sha256` the base64 SHA-256 of the command's canonical JSON (keys
  sorted, no spaces, UTF-8), `nbf`/`exp` a short lifetime (60 s by default), and no grants. The
  agent checks it with livekit-api's `TokenVerifier` (signature, issuer, expiry), then the
  digest, then that the command names its room, its identity and its agent code.
- Any participant may call the same method or topic; without the secret it cannot make a proof,
  and a participant's own access token (signed with the same secret) carries no `sha256` of a
  command and another `name`. A proof cannot be moved to another room or agent, and expires.
- The agent remembers command ids until their proof expires: livekit-api replays a request on a
  transport error or a 5xx, so the same command may arrive twice; it acts once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import jwt
from livekit import api
from pydantic import BaseModel, ConfigDict, Field, ValidationError

METHOD = "bithuman.agent_context"
"""RPC method and data topic of commands."""
TOPIC = METHOD
ATTR_AGENT_CODE = "bithuman.agent_code"
ATTR_ACCEPTS = "bithuman.agent_context"
ACCEPTS_VERSION = "1"
PROOF_NAME = "bithuman-agent-context"

MAX_TEXT_CHARS = 4096
"""Longest message or context: OpenAI's speech endpoint takes at most 4096 characters."""
MAX_PAYLOAD_BYTES = 15 * 1024
"""LiveKit's RPC payload limit (15 KiB); data packets are held to the same."""
MAX_PROOF_CHARS = 2048
DEFAULT_TTL_SECONDS = 60.0
CLOCK_SKEW_SECONDS = 10.0
"""How far the API's and the agent's clocks may disagree (the verifier's leeway)."""

CommandType = Literal["speak", "add_context"]


class Command(BaseModel):
    """One command for one agent participant in one room."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    v: Literal[1] = 1
    id: str = Field(pattern=r"^cmd_[0-9a-f]{32}$")
    type: CommandType
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    agent_code: str = Field(min_length=1, max_length=128)
    room: str = Field(min_length=1, max_length=256)
    to: str = Field(min_length=1, max_length=256)
    issued_at: int = Field(ge=0)
    interrupt: bool = False


def new_command_id(idempotency_key: str | None = None, *, scope: str = "") -> str:
    """A fresh id, or one derived from a client's idempotency key (stable across its retries)."""
    if idempotency_key is None:
        return "cmd_" + secrets.token_hex(16)
    digest = hashlib.sha256(f"{scope}\x00{idempotency_key}".encode("utf-8", "surrogatepass"))
    return "cmd_" + digest.hexdigest()[:32]


def canonical(command: dict[str, Any]) -> bytes:
    return json.dumps(
        command, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def digest(command: dict[str, Any]) -> str:
    return base64.b64encode(hashlib.sha256(canonical(command)).digest()).decode()


@dataclass(frozen=True, slots=True)
class CommandSigner:
    """The API's side: envelopes with a proof, signed with the LiveKit API key and secret."""

    api_key: str
    api_secret: str
    ttl_seconds: float = DEFAULT_TTL_SECONDS

    def envelope(self, command: Command, *, now: float | None = None) -> str:
        """The payload for `command`; ValueError when it exceeds MAX_PAYLOAD_BYTES."""
        text = canonical(command.model_dump())
        issued = int(time.time() if now is None else now)
        # PyJWT directly (not AccessToken.to_jwt): the same claims, a third of the CPU per room
        claims = {
            "iss": self.api_key,
            "sub": command.to,
            "name": PROOF_NAME,
            "sha256": base64.b64encode(hashlib.sha256(text).digest()).decode(),
            "nbf": issued,
            "exp": issued + max(1, round(self.ttl_seconds)),
            "video": {"canPublish": False, "canSubscribe": False, "canPublishData": False},
        }
        proof = jwt.encode(claims, self.api_secret, algorithm="HS256")
        # the canonical text is the command's JSON as is, and a JWT needs no escaping
        payload = f'{{"command":{text.decode()},"proof":"{proof}"}}'
        size = len(payload.encode())
        if size > MAX_PAYLOAD_BYTES:
            raise ValueError(
                f"the command is {size} bytes once encoded; LiveKit carries at most "
                f"{MAX_PAYLOAD_BYTES}"
            )
        return payload


class Refused(Exception):
    """A command the agent does not act on. `code` is the RPC error code it answers with."""

    MALFORMED = 4400
    UNAUTHENTICATED = 4401
    MISDIRECTED = 4403
    BUSY = 4429
    FAILED = 4500
    UNAVAILABLE = 4503

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Verified:
    command: Command
    expires_at: float
    """When the proof expires: the id needs remembering until then (plus the clock skew)."""


class CommandVerifier:
    """The agent's side: parse an envelope and check its proof and its addressee."""

    def __init__(
        self,
        api_key: str,
        api_secret: str,
        *,
        room: str,
        identity: str,
        agent_code: str,
        skew_seconds: float = CLOCK_SKEW_SECONDS,
    ) -> None:
        self._tokens = api.TokenVerifier(
            api_key, api_secret, leeway=timedelta(seconds=skew_seconds)
        )
        self._room = room
        self._identity = identity
        self._agent_code = agent_code

    def verify(self, payload: str | bytes) -> Verified:
        """The command, or `Refused` saying why not."""
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise Refused(Refused.MALFORMED, "payload too large")
        try:
            envelope = json.loads(payload)
        except (ValueError, RecursionError):
            raise Refused(Refused.MALFORMED, "payload is not JSON") from None
        if not isinstance(envelope, dict) or set(envelope) != {"command", "proof"}:
            raise Refused(Refused.MALFORMED, "payload is not a command envelope")
        body, proof = envelope["command"], envelope["proof"]
        if not isinstance(body, dict) or not isinstance(proof, str) or len(proof) > MAX_PROOF_CHARS:
            raise Refused(Refused.MALFORMED, "payload is not a command envelope")
        try:
            command = Command.model_validate(body)
            expected = digest(body)
        except (ValidationError, ValueError):
            raise Refused(Refused.MALFORMED, "command does not match the schema") from None
        try:
            claims = self._tokens.verify(proof)
        except jwt.ExpiredSignatureError:
            raise Refused(Refused.UNAUTHENTICATED, "proof expired") from None
        except Exception:  # any PyJWT error, or claims of the wrong types
            raise Refused(Refused.UNAUTHENTICATED, "proof invalid") from None
        if (
            claims.name != PROOF_NAME
            or not isinstance(claims.sha256, str)
            or not hmac.compare_digest(claims.sha256.encode(), expected.encode())
            or claims.identity != command.to
        ):
            raise Refused(Refused.UNAUTHENTICATED, "proof does not match the command")
        if (
            command.room != self._room
            or command.to != self._identity
            or command.agent_code != self._agent_code
        ):
            raise Refused(Refused.MISDIRECTED, "command is for another room, agent or code")
        expires = jwt.decode(proof, options={"verify_signature": False}).get("exp", 0)
        return Verified(command, float(expires))
