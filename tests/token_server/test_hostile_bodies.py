"""Whatever a client sends, /token answers 200 or a 4xx JSON error, never a 5xx, and nothing is
logged with a traceback: JSON bodies through the client, then raw requests on a socket."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hostile_http import (
    Served,
    encoded,
    exchange,
    framed,
    hostile_text,
    mostly,
    serve_in_thread,
    status_of,
)
from tests.token_server.conftest import make_settings
from token_server import create_app
from token_server.routes import MAX_BODY_BYTES

FIELDS = [
    "room_name",
    "room",
    "participant_name",
    "participant",
    "participant_identity",
    "participant_metadata",
    "participant_attributes",
    "room_config",
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=80),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
room_configs = st.fixed_dictionaries(
    {},
    optional={
        "agents": st.lists(
            st.dictionaries(
                st.sampled_from(["agent_name", "agentName", "metadata", "deployment"]),
                json_values,
                max_size=3,
            ),
            max_size=3,
        ),
        "max_participants": json_values,
    },
)
token_requests = st.dictionaries(
    st.sampled_from(FIELDS) | st.text(max_size=10),
    json_values | room_configs,
    max_size=6,
)
# Shared app for every example: starting a server per example would dominate the run time.
share_app = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
async def client(serve: Any) -> Any:
    return await serve(create_app(make_settings(agent_name="main", rate_limit_per_minute=0)))


async def assert_not_server_error(response: Any) -> None:
    assert response.status < 500, await response.text()
    body = await response.json()
    if response.status >= 400:
        assert set(body) == {"error", "code", "details"}
        assert body["code"].isupper()
    else:
        assert body["token"]


@share_app
@given(body=token_requests)
async def test_hostile_json_objects(client: Any, body: dict[str, Any]) -> None:
    response = await client.post("/token", data=json.dumps(body), headers=_json)
    await assert_not_server_error(response)


@share_app
@given(body=json_values)
async def test_any_json_value(client: Any, body: Any) -> None:
    response = await client.post("/token", data=json.dumps(body), headers=_json)
    await assert_not_server_error(response)
    if not isinstance(body, dict) and body is not None:
        assert response.status == 400


@share_app
@given(body=st.binary(max_size=512))
async def test_arbitrary_bytes(client: Any, body: bytes) -> None:
    response = await client.post("/token", data=body, headers=_json)
    await assert_not_server_error(response)


_json = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{", "INVALID_JSON"),
        (b"\xff\xfe{}", "INVALID_JSON"),
        (b'{"room": "\\ud800"}', "INVALID_JSON"),
        (b"[" * 5000 + b"]" * 5000, "INVALID_JSON"),
        (b'{"x": ' + b"[" * 3000 + b"]" * 3000 + b"}", "INVALID_JSON"),
        (b'{"room": 1' + b"0" * 5000 + b"}", "INVALID_JSON"),  # beyond any number parser
        (b"[]", "INVALID_BODY"),
        (b'"room"', "INVALID_BODY"),
        (b'{"room_name": 42}', "VALIDATION_ERROR"),
        (b'{"room": ["a"]}', "VALIDATION_ERROR"),
        (b'{"participant_name": {"a": 1}}', "VALIDATION_ERROR"),
        (b'{"participant_name": "' + b"n" * 129 + b'"}', "VALIDATION_ERROR"),
        (b'{"participant_name": "evil\\u0000name"}', "VALIDATION_ERROR"),
        (b'{"participant_attributes": {"a": 1}}', "VALIDATION_ERROR"),
        (b'{"participant_attributes": []}', "VALIDATION_ERROR"),
        (b'{"room_config": "main"}', "VALIDATION_ERROR"),
        (b'{"room_config": {"agents": {"agent_name": "main"}}}', "VALIDATION_ERROR"),
        (b'{"room_config": {"agents": [{"agent_name": 7}]}}', "VALIDATION_ERROR"),
        (b'{"room_config": {"agents": [{}]}}', "VALIDATION_ERROR"),
        (b'{"room_config": {"agents": [{"agent_name": ""}]}}', "VALIDATION_ERROR"),
        (
            b'{"room_config": {"agents": [{"agent_name": "main", "metadata": 1}]}}',
            "VALIDATION_ERROR",
        ),
    ],
)
async def test_malformed_and_wrongly_typed_bodies(client: Any, body: bytes, code: str) -> None:
    response = await client.post("/token", data=body, headers=_json)

    assert response.status == 400
    assert (await response.json())["code"] == code


async def test_empty_body_means_defaults(client: Any) -> None:
    for response in [
        await client.post("/token"),
        await client.post("/token", data=b"", headers=_json),
        await client.post("/token", data=b" \n", headers=_json),
    ]:
        assert response.status == 200
        assert (await response.json())["room_name"].startswith("room-")


async def test_json_null_is_not_an_object(client: Any) -> None:
    response = await client.post("/token", data=b"null", headers=_json)

    assert response.status == 400
    assert (await response.json())["code"] == "INVALID_BODY"


async def test_oversized_body_is_413(client: Any) -> None:
    padding = "x" * MAX_BODY_BYTES
    response = await client.post("/token", data=json.dumps({"pad": padding}), headers=_json)

    assert response.status == 413
    assert (await response.json())["code"] == "PAYLOAD_TOO_LARGE"


async def test_body_at_the_cap_is_accepted(client: Any) -> None:
    body = json.dumps({"pad": ""})
    body = json.dumps({"pad": "x" * (MAX_BODY_BYTES - len(body))})
    assert len(body) == MAX_BODY_BYTES

    response = await client.post("/token", data=body, headers=_json)
    assert response.status == 200


async def test_non_json_content_type_is_415(client: Any) -> None:
    response = await client.post(
        "/token", data='{"room": "a"}', headers={"Content-Type": "text/plain"}
    )

    assert response.status == 415
    assert (await response.json())["code"] == "UNSUPPORTED_MEDIA_TYPE"


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
async def test_wrong_method_is_a_json_405(client: Any, method: str) -> None:
    response = await client.request(method, "/token")

    assert response.status == 405
    assert (await response.json())["code"] == "METHOD_NOT_ALLOWED"


# -- hostile requests, byte by byte on a real socket --------------------------------------------
# Whatever the method, path, headers, encoding, framing, size or body, and with or without the
# API key: never a 5xx, and nothing logged with a traceback or at ERROR (or unwritable).

FUZZ_KEY = "fuzz-api-key-0123456789"


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    """The token server with every protection on, on a loop of its own in a thread."""
    settings_ = make_settings(
        api_key=FUZZ_KEY,
        agent_name="main",
        rate_limit_per_minute=1e9,
        rate_limit_burst=10**9,
        trusted_proxies=["127.0.0.1"],
        read_timeout_seconds=1.0,
    )
    # the per-token lines, with hostile names, get formatted too
    with serve_in_thread(create_app(settings_), "token_server", logging.DEBUG) as served:
        yield served


raw_header_values = st.binary(max_size=80).map(
    lambda v: v.replace(b"\r", b" ").replace(b"\n", b"-")
)
method_tokens = st.binary(min_size=1, max_size=8).filter(lambda v: not set(v) & set(b" \r\n"))
hostile_strings = (
    st.sampled_from(
        ["a\x00b", "line\nbreak", "\u202egnp.exe", "\u2066x\u2069", "\ud800", "x" * 2000, "ok"]
    )
    | hostile_text
)
hostile_token_requests = st.fixed_dictionaries(
    {},
    optional={
        "room_name": mostly(st.sampled_from(["demo", "room_1"]), hostile_strings),
        "room": hostile_strings,
        "participant_name": mostly(st.just("Ada"), hostile_strings),
        "participant": hostile_strings,
        "participant_identity": hostile_strings | st.just("bithuman-avatar-agent"),
        "participant_metadata": hostile_strings | st.just('{"a":\n1}'),
        "participant_attributes": st.dictionaries(
            hostile_strings | st.just("lk.agent.state"), hostile_strings, max_size=4
        )
        | json_values,
        "room_config": room_configs | json_values,
    },
)


@st.composite
def token_bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["json"] * 3 + ["bytes", "big", "empty", "deep"]))
    if kind == "bytes":
        return draw(st.binary(max_size=600))
    if kind == "big":
        return b'{"room":"' + b"x" * draw(st.integers(MAX_BODY_BYTES - 100, 40000)) + b'"}'
    if kind == "empty":
        return b""
    if kind == "deep":
        return b"[" * draw(st.integers(1, 20000))
    text = json.dumps(draw(hostile_token_requests), ensure_ascii=draw(st.booleans()))
    return text.encode("utf-8", draw(st.sampled_from(["surrogatepass", "replace"])))


@st.composite
def hostile_requests(draw: st.DrawFn) -> tuple[bytes, bool]:
    """Raw request bytes, and whether the client stops sending before its body is complete."""
    method = draw(
        mostly(
            st.just(b"POST"),
            st.sampled_from([b"GET", b"PUT", b"HEAD", b"OPTIONS", b"DELETE", b"TRACE", b"BREW"])
            | method_tokens,
        )
    )
    path = draw(
        mostly(
            st.just(b"/token"),
            st.sampled_from(
                [b"/token/", b"/healthz", b"/metrics", b"/", b"/%ff%fe", b"/token?x=%00", b"*"]
            )
            | st.just(b"/" + b"t" * 9000),
        )
    )
    body = draw(token_bodies())
    headers: list[tuple[bytes, bytes]] = [(b"Host", b"localhost"), (b"Connection", b"close")]
    key = draw(mostly(st.sampled_from(["x-api-key", "bearer"]), st.sampled_from(["none", "junk"])))
    if key == "x-api-key":
        headers.append((b"X-API-Key", FUZZ_KEY.encode()))
    elif key == "bearer":
        headers.append((b"Authorization", b"Bearer " + FUZZ_KEY.encode()))
    elif key == "junk":
        name = draw(st.sampled_from([b"X-API-Key", b"Authorization"]))
        headers.append((name, draw(raw_header_values)))
    if draw(st.booleans()):
        origin = draw(
            st.sampled_from([b"http://localhost:8080", b"https://evil.example", b"null"])
            | raw_header_values
        )
        headers.append((b"Origin", origin))
        if method == b"OPTIONS" and draw(st.booleans()):
            headers.append((b"Access-Control-Request-Method", draw(raw_header_values)))
    if draw(st.booleans()):
        forwarded = draw(
            st.sampled_from([b"203.0.113.9", b"::1, 10.0.0.1", b"unknown, , x", b"999.1.1.1"])
            | raw_header_values
        )
        headers.append((b"X-Forwarded-For", forwarded))
    body = encoded(draw, headers, body)
    content_type = draw(
        mostly(
            st.just(b"application/json"),
            st.sampled_from([b"text/plain", b"application/x-www-form-urlencoded", b""])
            | raw_header_values,
        )
    )
    headers.append((b"Content-Type", content_type))
    if draw(mostly(st.just(False), st.just(True))):
        name = draw(st.sampled_from([b"Accept", b"Expect", b"X-Fuzz", b"Cookie", b"Upgrade"]))
        headers.append((name, draw(raw_header_values)))
    if draw(mostly(st.just(False), st.just(True))):
        headers += [(b"X-Many-%d" % i, b"v") for i in range(draw(st.integers(50, 200)))]
    return framed(draw, method, path, headers, body)


@settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(request=hostile_requests())
def test_hostile_requests_get_no_5xx_and_no_traceback(
    served: Served, request: tuple[bytes, bool]
) -> None:
    raw, stops_short = request
    answer = exchange(served.port, raw, half_close=stops_short)
    if stops_short and not answer:
        return  # a client that went away mid-body was dropped: nobody to answer
    assert answer, raw[:300]
    status = status_of(answer)
    served.statuses.append(status)
    assert status < 500, answer[:400]
    head, _, content = answer.partition(b"\r\n\r\n")
    if status >= 400 and content and b"application/json" in head.lower():
        assert json.loads(content)["code"].isupper(), content[:200]
    assert served.recorder.bad == [], served.recorder.bad


def test_the_fuzzing_reached_every_outcome(served: Served) -> None:
    """Runs after the property test: its examples must have minted tokens and met every kind
    of refusal, or the strategy has rotted."""
    assert served.statuses, "the property test did not run first"
    assert {200, 400, 401, 403, 404, 405, 413, 415} <= set(served.statuses)
    assert served.recorder.bad == []
