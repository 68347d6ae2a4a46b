"""Operator footguns and slow or hostile clients: partial headers, slow bodies, hostile display
names and attributes, over-trusting proxy settings; and what the server logs per request."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import Any

import pytest
from pydantic import ValidationError

from common import logs
from common.settings import describe_error
from tests.token_server.conftest import make_settings
from token_server import TokenServerSettings, create_app
from token_server.metrics import Metrics
from token_server.summary import TrafficSummary

# -- connections that never finish their request ------------------------------------------------


def _open(port: int, data: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(data)
    return sock


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    """True when the server closes the connection (EOF or reset) within `within` seconds."""
    sock.settimeout(within)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


async def test_connections_with_partial_headers_are_closed_after_the_read_timeout(
    serve: Any,
) -> None:
    client = await serve(create_app(make_settings(read_timeout_seconds=0.3)))
    partial = b"POST /token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
    socks = [_open(client.port, partial) for _ in range(50)]
    trickler = socks[0]
    started = time.monotonic()
    try:
        for i in range(3):  # header lines trickled in do not extend the deadline
            await asyncio.sleep(0.1)
            trickler.sendall(b"X-Slow-%d: y\r\n" % i)
        closed = await asyncio.to_thread(lambda: [_closed_by_server(s, 3.0) for s in socks])
    finally:
        for sock in socks:
            sock.close()
    assert all(closed), f"{closed.count(False)} of {len(socks)} connections still open"
    assert time.monotonic() - started < 3


async def test_a_complete_request_is_answered_and_idle_keep_alive_ends_too(serve: Any) -> None:
    client = await serve(create_app(make_settings(read_timeout_seconds=0.3)))
    sock = _open(client.port, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
    try:
        sock.settimeout(3)
        assert (await asyncio.to_thread(sock.recv, 4096)).startswith(b"HTTP/1.1 200")
        assert await asyncio.to_thread(_closed_by_server, sock, 3.0)
    finally:
        sock.close()


async def test_a_body_that_arrives_too_slowly_gets_408_and_the_connection_closes(
    serve: Any,
) -> None:
    client = await serve(create_app(make_settings(read_timeout_seconds=0.3)))
    head = (
        b"POST /token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n"
    )
    sock = _open(client.port, head + b'{"room": ')
    try:
        sock.settimeout(3)
        answer = b""
        while chunk := await asyncio.to_thread(sock.recv, 65536):
            answer += chunk
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"code": "REQUEST_TIMEOUT"' in answer
    metrics = await (await client.get("/metrics")).text()
    assert 'route="/token",status="408"} 1.0' in metrics


# -- what a client may put into a token ---------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"participant_attributes": {"role": "a\x00b"}}, "participant_attributes.role"),
        ({"participant_attributes": {"role": "line\nbreak"}}, "participant_attributes.role"),
        ({"participant_attributes": {"role": "cr\rlf"}}, "participant_attributes.role"),
        ({"participant_attributes": {"role": "\u202eevil"}}, "participant_attributes.role"),
        (
            {"participant_attributes": {"ro\u2066le": "x"}},
            "participant_attributes.ro\u2066le.[key]",
        ),
        ({"participant_name": "Ada\u202egnp.exe"}, "participant_name"),
        ({"participant_name": "\u2067Ada\u2069"}, "participant_name"),
        ({"participant_name": "Ada\u200f"}, "participant_name"),
        ({"participant": "Ada\u2028Bob"}, "participant"),
        ({"participant_identity": "x\u202dy"}, "participant_identity"),
        ({"participant_metadata": "a\x00b"}, "participant_metadata"),
        (
            {"room_config": {"agents": [{"agent_name": "main", "metadata": "\x00"}]}},
            "room_config.agents.0.metadata",
        ),
    ],
)
async def test_control_and_bidi_characters_are_refused(
    serve: Any, body: dict[str, Any], field: str
) -> None:
    client = await serve(create_app(make_settings(agent_name="main")))
    response = await client.post("/token", json=body)
    assert response.status == 400
    answer = await response.json()
    assert answer["code"] == "VALIDATION_ERROR"
    assert [detail["field"] for detail in answer["details"]] == [field]
    assert "characters" in answer["details"][0]["message"]


@pytest.mark.parametrize(
    "body",
    [
        {"participant_name": "أحمد"},  # right-to-left text itself is fine
        {"participant_name": "👩‍👩‍👧 family"},  # zero-width joiners in emoji are fine
        {"participant_metadata": '{\n  "plan": "pro"\n}'},  # free text keeps its line breaks
        {"participant_attributes": {"lang": "ja-JP", "nick": "ちゃん"}},
    ],
)
async def test_ordinary_names_metadata_and_attributes_pass(
    serve: Any, body: dict[str, Any]
) -> None:
    client = await serve(create_app(make_settings()))
    assert (await client.post("/token", json=body)).status == 200


# -- settings an operator can get dangerously wrong ----------------------------------------------


@pytest.mark.parametrize("value", ["0.0.0.0/0", "10.0.0.0/8, ::/0", "0.0.0.0/0.0.0.0"])
def test_trusting_every_address_as_a_proxy_is_refused(value: str) -> None:
    with pytest.raises(ValidationError) as info:
        make_settings(trusted_proxies=value)
    line = describe_error(TokenServerSettings, info.value)
    assert line.startswith("configuration error: TOKEN_SERVER_TRUSTED_PROXIES is invalid: ")
    assert "trusts every address" in line and "\n" not in line


def test_very_wide_proxy_networks_are_named_for_a_warning() -> None:
    settings = make_settings(trusted_proxies="10.0.0.0/8, 0.0.0.0/1, 2001::/12, 192.168.0.1")
    assert [str(n) for n in settings.broad_trusted_proxies()] == ["0.0.0.0/1", "2000::/12"]


# -- logging: counted per request, logged per interval --------------------------------------------


@pytest.fixture
def records(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    logs.configure_structlog()
    return caplog


async def test_no_line_per_request_at_the_default_level(
    serve: Any, records: pytest.LogCaptureFixture
) -> None:
    records.set_level(logging.INFO)
    client = await serve(create_app(make_settings(summary_interval_seconds=0)))
    for _ in range(5):
        assert (await client.post("/token", json={"room_name": "demo"})).status == 200
    refused = await client.post("/token", data=b"{", headers={"Content-Type": "application/json"})
    assert refused.status == 400
    assert [r.getMessage() for r in records.records if r.name.startswith("token_server")] == []


async def test_each_token_is_logged_at_debug(serve: Any, records: pytest.LogCaptureFixture) -> None:
    records.set_level(logging.DEBUG)
    client = await serve(create_app(make_settings(summary_interval_seconds=0)))
    answer = await (await client.post("/token", json={"room_name": "demo"})).json()
    (line,) = [r for r in records.records if r.getMessage() == "token issued"]
    assert line.levelno == logging.DEBUG
    assert line.room == "demo" and line.identity == answer["participant_identity"]  # type: ignore[attr-defined]


async def test_traffic_is_summarised_in_one_info_line_per_interval(
    serve: Any, records: pytest.LogCaptureFixture
) -> None:
    records.set_level(logging.INFO)
    client = await serve(create_app(make_settings(summary_interval_seconds=0.2, api_key="k" * 16)))
    headers = {"X-API-Key": "k" * 16}
    for _ in range(3):
        assert (await client.post("/token", json={}, headers=headers)).status == 200
    assert (await client.post("/token", json={})).status == 401
    deadline = time.monotonic() + 5
    while not [r for r in records.records if r.getMessage() == "traffic"]:
        assert time.monotonic() < deadline, "no summary line"
        await asyncio.sleep(0.05)
    (line,) = [r for r in records.records if r.getMessage() == "traffic"]
    assert line.levelno == logging.INFO
    assert line.requests == 4 and line.tokens_issued == 3  # type: ignore[attr-defined]
    assert line.by_status == {"200": 3, "401": 1}  # type: ignore[attr-defined]
    await asyncio.sleep(0.5)  # quiet intervals log nothing
    assert len([r for r in records.records if r.getMessage() == "traffic"]) == 1


def test_summary_counts_differences_between_readings() -> None:
    metrics = Metrics()
    summary = TrafficSummary(metrics)
    assert summary.take() is None
    metrics.requests.labels("/token", "POST", "200").inc(2)
    metrics.requests.labels("unmatched", "GET", "404").inc()
    metrics.mint_seconds.observe(0.0001)
    metrics.mint_seconds.observe(0.0001)
    assert summary.take() == {"requests": 3, "tokens_issued": 2, "by_status": {"200": 2, "404": 1}}
    metrics.requests.labels("/token", "POST", "429").inc()
    assert summary.take() == {"requests": 1, "tokens_issued": 0, "by_status": {"429": 1}}
    assert summary.take() is None
