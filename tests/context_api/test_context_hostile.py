"""Whatever a client sends the context API, the answer is a 2xx or a 4xx in bitHuman's error
shape, never a 5xx and never a traceback: generated JSON bodies and bytes, then hand-picked
malformed requests. The app runs against the real LiveKit server, so a body that passes
validation goes on to look for rooms (and finds none: NO_ACTIVE_ROOMS)."""

from __future__ import annotations

import gzip
import json
import logging
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from context_api.routes import MAX_BODY_BYTES
from tests.context_api.conftest import API_SECRET, headers

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=60),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)
bodies = st.dictionaries(
    st.sampled_from(["message", "context", "type", "room_id", "interrupt"]) | st.text(max_size=8),
    json_values | st.sampled_from(["speak", "add_context"]),
    max_size=5,
)
# what a client can put in a header value: visible Latin-1 (aiohttp refuses control characters)
header_values = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"),
    max_size=40,
)
paths = st.sampled_from(["speak", "add-context"])
codes = st.sampled_from(["A12345678", "a.b-c_d"]) | st.text(max_size=12)
share_app = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
ERROR_KEYS = {"success", "error", "message", "status_code"}


@pytest.fixture
async def client(serve: Any) -> Any:
    return await serve(CONTEXT_API_ROOM_TIMEOUT_SECONDS="2")


async def assert_answered(response: Any) -> dict[str, Any]:
    assert response.status < 500, await response.text()
    body: dict[str, Any] = await response.json()
    if response.status >= 400:
        assert ERROR_KEYS <= set(body) <= ERROR_KEYS | {"data"}, body
        assert body["success"] is False and body["status_code"] == response.status
        assert body["error"].isupper()
    return body


def url(code: str, path: str) -> str:
    from urllib.parse import quote

    return f"/v1/agent/{quote(code, safe='') or 'x'}/{path}"


@share_app
@given(body=bodies, path=paths, code=codes)
async def test_generated_bodies(client: Any, body: dict[str, Any], path: str, code: str) -> None:
    response = await client.post(url(code, path), data=json.dumps(body), headers=headers())
    answer = await assert_answered(response)
    assert response.status in (400, 404), answer


@share_app
@given(body=json_values, path=paths)
async def test_any_json_value(client: Any, body: Any, path: str) -> None:
    response = await client.post(url("A1", path), data=json.dumps(body), headers=headers())
    await assert_answered(response)
    assert response.status in (400, 404)


@share_app
@given(body=st.binary(max_size=300), secret=header_values | st.just(API_SECRET))
async def test_arbitrary_bytes_and_secrets(client: Any, body: bytes, secret: str) -> None:
    response = await client.post(url("A1", "speak"), data=body, headers={"api-secret": secret})
    await assert_answered(response)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{", 400),
        (b"\xff\xfe{}", 400),
        (b'{"message": "\\ud800 lone surrogate"}', 400),
        (b'{"message": "bell \\u0007"}', 400),
        (b"[" * 5000 + b"]" * 5000, 400),
        (b'{"message": 1' + b"0" * 5000 + b"}", 400),
        (b'{"message": "x", "room_id": ""}', 400),
        (b'{"message": "x", "room_id": "tab\\there"}', 400),
        (b'{"message": "x", "interrupt": "yes"}', 400),
        (b'{"message": "   "}', 400),
        (b"null", 400),
        (b'{"message": "' + "\U0001f600".encode() * 4000 + b'"}', 400),  # over LiveKit's 15 KiB
        (b'{"message": "fine", "type": "ignored on /speak"}', 404),
    ],
)
async def test_malformed_bodies(client: Any, body: bytes, status: int) -> None:
    response = await client.post(url("A1", "speak"), data=body, headers=headers())
    answer = await assert_answered(response)
    assert response.status == status, answer
    if status == 400:
        assert answer["error"] == "VALIDATION_ERROR"


async def test_the_secret_comes_first(client: Any) -> None:
    for secret_headers in (
        {},
        {"api-secret": ""},
        {"api-secret": API_SECRET + "x"},
        {"API-SECRET": API_SECRET.upper()},
    ):
        response = await client.post(url("A1", "speak"), data=b"{", headers=secret_headers)
        answer = await assert_answered(response)
        assert (response.status, answer["error"]) == (401, "UNAUTHORIZED")
    # the header name is case-insensitive, as HTTP says
    response = await client.post(
        url("A1", "speak"),
        data=b"{",
        headers={"API-Secret": API_SECRET, "Content-Type": "application/json"},
    )
    assert response.status == 400


async def test_limits_types_and_methods(client: Any) -> None:
    big = json.dumps({"message": "x" * MAX_BODY_BYTES})
    response = await client.post(url("A1", "speak"), data=big, headers=headers())
    assert (response.status, (await assert_answered(response))["error"]) == (
        413,
        "VALIDATION_ERROR",
    )

    response = await client.post(
        url("A1", "speak"), data="message=hi", headers=headers(**{"Content-Type": "text/plain"})
    )
    assert (response.status, (await assert_answered(response))["error"]) == (
        415,
        "VALIDATION_ERROR",
    )

    response = await client.get(url("A1", "speak"), headers=headers())
    assert (response.status, (await assert_answered(response))["error"]) == (
        405,
        "METHOD_NOT_ALLOWED",
    )
    response = await client.post("/v1/agent/A1/shout", data=b"{}", headers=headers())
    assert (response.status, (await assert_answered(response))["error"]) == (404, "NOT_FOUND")

    response = await client.post(
        url("A1", "speak"),
        data=b"this is not gzip",
        headers=headers(**{"Content-Encoding": "gzip"}),
    )
    assert response.status == 400
    response = await client.post(
        url("A1", "speak"),
        data=gzip.compress(b'{"message": "zipped"}'),
        headers=headers(**{"Content-Encoding": "gzip"}),
    )
    assert (response.status, (await assert_answered(response))["error"]) == (404, "NO_ACTIVE_ROOMS")


async def test_bad_idempotency_key_and_unknown_code(client: Any) -> None:
    response = await client.post(
        url("A1", "speak"), data=b'{"message": "x"}', headers=headers(**{"Idempotency-Key": ""})
    )
    assert response.status == 400
    response = await client.post(url("../etc", "speak"), data=b"{}", headers=headers())
    assert response.status == 404
    response = await client.post(url("a" * 300, "speak"), data=b"{}", headers=headers())
    answer = await assert_answered(response)
    assert answer["error"] == "AGENT_NOT_FOUND" and len(answer["message"]) < 200


async def test_nothing_is_logged_with_a_traceback(
    client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for body in (b"{", b"\xff", b"[]", b'{"message": 5}', b'{"message": "ok"}'):
        await client.post(url("A1", "speak"), data=body, headers=headers())
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert API_SECRET not in caplog.text
