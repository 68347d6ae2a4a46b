"""Whatever a client sends, /token answers 200 or a 4xx JSON error, never a 5xx."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
