"""`POST /v1/agent/{code}/speak` and `POST /v1/agent/{code}/add-context`, bitHuman's shapes.

    speak        {"message": str, "room_id"?: str | null, "interrupt"?: bool}
    add-context  {"context": str, "type"?: "add_context" | "speak", "room_id"?: str | null,
                  "interrupt"?: bool}

No `room_id` (or null): every room where the agent is live. `interrupt` (ours; bitHuman has no
such field) makes a speak cut into what the agent is saying instead of queueing after it. An
`Idempotency-Key` header (ours too) makes the command id stable across a client's retries, so
an agent that already has the command does not act on it twice. Other fields are ignored.
Checks run in this order: api-secret (401), agent code (404), body (400/408/413/415), rooms.
"""

from __future__ import annotations

import asyncio
import hmac
import time
import unicodedata
from datetime import UTC, datetime
from typing import Any

from aiohttp import hdrs, web

from common.logs import get_logger
from context_api.delivery import LiveKitUnavailable, Order, Report
from context_api.errors import ContextError
from context_api.state import SERVICES, Services
from context_api.wire import MAX_TEXT_CHARS, Command, CommandType, new_command_id

log = get_logger("context_api")

MAX_BODY_BYTES = 64 * 1024  # 4096 characters, each up to a 6-byte \\uXXXX escape, and room
MAX_ROOM_CHARS = 256
MAX_IDEMPOTENCY_KEY_CHARS = 256
ALLOWED_CONTROLS = {"\t", "\n", "\r"}
SUCCESS_MESSAGES = {
    "speak": "Speech triggered successfully",
    "add_context": "Context added successfully",
}


def _invalid(message: str) -> ContextError:
    return ContextError(400, "VALIDATION_ERROR", message)


def authenticate(request: web.Request, secret: bytes) -> None:
    given = request.headers.get("api-secret")
    if given is None:
        raise ContextError(401, "UNAUTHORIZED", "Missing api-secret header")
    # constant time over the secret's length; header text back to the bytes that were sent
    if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), secret):
        raise ContextError(401, "UNAUTHORIZED", "Invalid api-secret")


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or content_type.endswith("+json")


async def read_body(request: web.Request, read_timeout: float) -> dict[str, Any]:
    import json

    try:
        async with asyncio.timeout(read_timeout):
            raw = await request.read()
    except TimeoutError:
        raise ContextError(408, "VALIDATION_ERROR", "The request body arrived too slowly") from None
    if hdrs.CONTENT_TYPE in request.headers and not _is_json(request.content_type):
        raise ContextError(415, "VALIDATION_ERROR", "Send Content-Type: application/json")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise _invalid("The body must be a JSON object") from None
    if not isinstance(body, dict):
        raise _invalid("The body must be a JSON object")
    return body


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None:
        raise _invalid(f"Missing required field: {name}")
    if not isinstance(value, str):
        raise _invalid(f"{name} must be a string")
    value = value.strip()
    if not value:
        raise _invalid(f"{name} must not be empty")
    if len(value) > MAX_TEXT_CHARS:
        raise _invalid(f"{name} is longer than {MAX_TEXT_CHARS} characters")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise _invalid(f"{name} is not valid Unicode text (a lone surrogate)") from None
    if any(unicodedata.category(c) == "Cc" and c not in ALLOWED_CONTROLS for c in value):
        raise _invalid(f"{name} holds control characters")
    return value


def _room_id(body: dict[str, Any]) -> str | None:
    value = body.get("room_id")
    if value is None:
        return None
    if (
        not isinstance(value, str)
        or not value
        or len(value) > MAX_ROOM_CHARS
        or not value.isprintable()
    ):
        raise _invalid(f"room_id must be a room name (1-{MAX_ROOM_CHARS} printable characters)")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise _invalid("room_id is not valid Unicode text") from None
    return value


def _interrupt(body: dict[str, Any]) -> bool:
    value = body.get("interrupt", False)
    if not isinstance(value, bool):
        raise _invalid("interrupt must be true or false")
    return value


def _command_type(body: dict[str, Any]) -> CommandType:
    value = body.get("type", "add_context")
    if value == "speak":
        return "speak"
    if value == "add_context":
        return "add_context"
    raise _invalid("Invalid type. Must be one of: speak, add_context")


def _idempotency_key(request: web.Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not key or len(key) > MAX_IDEMPOTENCY_KEY_CHARS or not key.isprintable():
        raise _invalid(
            f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY_CHARS} printable characters"
        )
    return key


def _shown(code: str) -> str:
    return (
        code
        if len(code) <= 64 and code.isprintable()
        else code[:64].encode("unicode_escape").decode()
    )


async def speak(request: web.Request) -> web.Response:
    return await _command(request, speak_route=True)


async def add_context(request: web.Request) -> web.Response:
    return await _command(request, speak_route=False)


async def _command(request: web.Request, *, speak_route: bool) -> web.Response:
    services: Services = request.app[SERVICES]
    settings = services.settings
    authenticate(request, services.secret)
    code = request.match_info["code"]
    if not settings.knows(code):
        raise ContextError(404, "AGENT_NOT_FOUND", f"Agent with code '{_shown(code)}' not found")
    key = _idempotency_key(request)
    body = await read_body(request, settings.read_timeout_seconds)
    if speak_route:
        text, kind = _text(body, "message"), "speak"
    else:
        text, kind = _text(body, "context"), _command_type(body)
    order = Order(
        command_id=new_command_id(key, scope=code),
        agent_code=code,
        type=kind,  # type: ignore[arg-type]
        text=text,
        room_id=_room_id(body),
        interrupt=_interrupt(body),
    )
    _check_size(services, order)

    started = time.perf_counter()
    assert services.fanout is not None  # made when the app starts
    try:
        report = await services.fanout.run(order)
    except LiveKitUnavailable as exc:
        services.metrics.commands.labels(order.type, "livekit_unavailable").inc()
        log.warning("LiveKit unavailable", agent_code=code, error=str(exc))
        raise ContextError(
            503, "LIVEKIT_UNAVAILABLE", "The LiveKit server could not be reached"
        ) from None
    elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    data = _data(order, report)
    log.info(
        "context command",
        agent_code=code,
        type=order.type,
        command_id=order.command_id,
        room_id=order.room_id,
        delivered=report.delivered_rooms,
        skipped=len(report.skipped),
        failed=len(report.failed),
        failures=[f"{r.room_id}: {r.reason}" for r in report.failed[:5]] or None,
        elapsed_ms=elapsed_ms,
    )
    if report.delivered:
        services.metrics.commands.labels(order.type, "delivered").inc()
        return web.json_response(
            {"success": True, "message": SUCCESS_MESSAGES[order.type], "data": data}
        )
    if report.failed:
        services.metrics.commands.labels(order.type, "failed").inc()
        raise ContextError(502, "DELIVERY_FAILED", "Delivery failed in every room", data)
    services.metrics.commands.labels(order.type, "no_active_rooms").inc()
    where = f" in room '{_shown(order.room_id)}'" if order.room_id else ""
    message = f"No active sessions found for agent{where}"
    if report.skipped:
        message += " that take context commands"
    raise ContextError(404, "NO_ACTIVE_ROOMS", message, data if report.skipped else None)


def _check_size(services: Services, order: Order) -> None:
    """A command that LiveKit could not carry is the client's to shorten: 400, not a failure in
    every room. Measured with a long room name and identity, as no real one is known yet."""
    sample = Command(
        id=order.command_id,
        type=order.type,
        text=order.text,
        agent_code=order.agent_code,
        room=order.room_id or "r" * 64,
        to="a" * 64,
        issued_at=int(time.time() * 1000),
        interrupt=order.interrupt,
    )
    try:
        services.signer.envelope(sample)
    except ValueError as exc:
        raise _invalid(f"The text is too long: {exc}") from None


def _data(order: Order, report: Report) -> dict[str, Any]:
    return {
        "agent_code": order.agent_code,
        "context_type": order.type,
        "command_id": order.command_id,
        "delivered_to_rooms": report.delivered_rooms,
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "rooms": [r.as_json() for r in report.delivered],
        "rooms_skipped": [r.as_json() for r in report.skipped],
        "rooms_failed": [r.as_json() for r in report.failed],
    }


def health(services: Services) -> dict[str, object]:
    return {
        "livekit_url": services.settings.livekit_url,
        "delivery": services.fanout.via if services.fanout else services.settings.delivery,
        "agent_codes": len(services.settings.agent_codes) or "any",
    }


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/agent/{code}/speak", speak)
    app.router.add_post("/v1/agent/{code}/add-context", add_context)
