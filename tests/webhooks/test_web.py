"""common.web as the receiver and the token server use it: what a client sends never becomes a
500 or a logged traceback (bodies that do not match their Content-Encoding, an Expect header
that is not UTF-8, malformed requests, clients that vanish mid-body)."""

from __future__ import annotations

import asyncio
import gzip
import logging
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from common.web import HANDLER_ARGS, error_middleware
from tests.token_server.conftest import make_settings
from token_server import create_app as create_token_server


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


@pytest.fixture
async def echo() -> Any:
    """A service built like ours: JSON errors, quiet client-error logging, a body-reading route."""

    async def read(request: web.Request) -> web.Response:
        return web.json_response({"size": len(await request.read())})

    app = web.Application(middlewares=[error_middleware], handler_args=HANDLER_ARGS)
    app.router.add_post("/echo", read)
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    yield client
    await client.close()


async def raw(client: TestClient[Any, Any], request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(request)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return answer


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_body_that_is_not_its_encoding_is_a_400(
    echo: TestClient[Any, Any], caplog: pytest.LogCaptureFixture, encoding: str
) -> None:
    response = await echo.post("/echo", data=b"plain text", headers={"Content-Encoding": encoding})
    assert response.status == 400
    answer = await response.json()
    assert answer["code"] == "INVALID_BODY_ENCODING" and answer["details"]["reason"]
    good = await echo.post(
        "/echo", data=gzip.compress(b"x" * 100), headers={"Content-Encoding": "gzip"}
    )
    assert await good.json() == {"size": 100}
    await asyncio.sleep(0.05)  # aiohttp's after-answer work on the failed connection
    assert tracebacks(caplog) == []


async def test_the_token_server_answers_a_bad_gzip_body_with_a_400(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client: TestClient[Any, Any] = TestClient(TestServer(create_token_server(make_settings())))
    await client.start_server()
    try:
        response = await client.post(
            "/token",
            data=b'{"room_name": "not gzip"}',
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )
        assert response.status == 400
        assert (await response.json())["code"] == "INVALID_BODY_ENCODING"
    finally:
        await client.close()
    assert tracebacks(caplog) == []


async def test_an_expect_header_that_is_not_utf8_is_a_417(
    echo: TestClient[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    for path in (b"/echo", b"/nowhere"):
        answer = await raw(
            echo,
            b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Expect: \xff\xfe\r\nContent-Length: 2\r\n\r\n{}",
        )
        assert answer.startswith(b"HTTP/1.1 417 "), answer[:100]
        assert b'"code": "EXPECTATION_FAILED"' in answer
    continued = await raw(
        echo,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\n{}",
    )
    assert continued.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 ")
    assert tracebacks(caplog) == []


async def test_malformed_requests_are_logged_without_a_traceback(
    echo: TestClient[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aiohttp.server")
    for request in (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nBad\x01Header: 1\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Encoding: br\r\nContent-Length: 2\r\n\r\nxx",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ):
        answer = await raw(echo, request)
        assert answer.split(b" ")[1] == b"400", answer[:100]
    assert tracebacks(caplog) == []
    quiet = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert quiet and all(r.levelno == logging.DEBUG for r in quiet)


async def test_a_client_that_vanishes_mid_body_leaves_no_traceback(
    echo: TestClient[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    _, writer = await asyncio.open_connection(echo.host, echo.port)
    writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly part")
    await writer.drain()
    writer.write_eof()  # it stops sending, 91 bytes short
    await asyncio.sleep(0.1)
    writer.close()
    assert tracebacks(caplog) == []
