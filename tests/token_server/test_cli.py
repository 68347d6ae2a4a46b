"""`python -m token_server` as a user runs it: real subprocesses."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from livekit.api import TokenVerifier

from tests.conftest import free_port
from tests.token_server.conftest import API_KEY, API_SECRET, LIVEKIT_URL

REPO = Path(__file__).resolve().parents[2]
LIVEKIT_ENV = {
    "LIVEKIT_URL": LIVEKIT_URL,
    "LIVEKIT_API_KEY": API_KEY,
    "LIVEKIT_API_SECRET": API_SECRET,
}


def environment(**variables: str) -> dict[str, str]:
    env = dict(os.environ)  # already cleared of our settings by the autouse fixture
    env["PYTHONPATH"] = str(REPO)
    env.update(variables)
    return env


def run(*args: str, **variables: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "token_server", *args],
        env=environment(**variables),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_mint_prints_server_url_and_a_valid_token() -> None:
    result = run(
        "mint", "--room", "playground", "--name", "Tester", AGENT_NAME="main", **LIVEKIT_ENV
    )

    assert result.returncode == 0, result.stderr
    lines = dict(line.split(":", 1) for line in result.stdout.splitlines()[:2])
    assert lines["server URL"].strip() == LIVEKIT_URL
    claims = TokenVerifier(API_KEY, API_SECRET).verify(lines["token"].strip())
    assert claims.video is not None and claims.video.room == "playground"
    assert claims.name == "Tester"
    assert claims.room_config is not None
    assert [a.agent_name for a in claims.room_config.agents] == ["main"]
    assert API_SECRET not in result.stdout + result.stderr


def test_mint_without_credentials_prints_one_line_and_exits_2() -> None:
    result = run("mint", "--room", "playground", LIVEKIT_URL=LIVEKIT_URL)

    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "LIVEKIT_API_KEY is not set" in lines[0]
    assert "LIVEKIT_API_SECRET is not set" in lines[0]


def test_mint_refuses_an_invalid_room() -> None:
    result = run("mint", "--room", "no spaces", **LIVEKIT_ENV)

    assert result.returncode == 2
    assert "--room" in result.stderr


def test_bad_setting_prints_one_line_and_exits_2() -> None:
    result = run("mint", "--room", "r", TOKEN_SERVER_TOKEN_TTL_SECONDS="7200", **LIVEKIT_ENV)

    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "TOKEN_SERVER_TOKEN_TTL_SECONDS is invalid" in result.stderr


def test_production_server_will_not_start_without_credentials() -> None:
    result = run(APP_ENV="production", TOKEN_SERVER_PORT=str(free_port()))

    assert result.returncode == 2
    assert "LIVEKIT_URL is not set" in result.stderr.strip().splitlines()[-1]


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=2) as response:
        return response.status, response.read()


def _start(**variables: str) -> tuple[subprocess.Popen[str], int]:
    """`python -m token_server` on a free loopback port, once /healthz answers."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "token_server"],
        env=environment(TOKEN_SERVER_PORT=str(port), TOKEN_SERVER_HOST="127.0.0.1", **variables),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            status, _ = _get(f"http://127.0.0.1:{port}/healthz")
            assert status == 200
            return process, port
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                output, _ = process.communicate(timeout=10)
                pytest.fail(f"token server did not start:\n{output}")
            time.sleep(0.05)


def _stop(process: subprocess.Popen[str]) -> str:
    process.terminate()
    output, _ = process.communicate(timeout=10)
    return output


def test_development_server_starts_without_credentials_and_reports_it() -> None:
    process, port = _start()
    try:
        _, body = _get(f"http://127.0.0.1:{port}/healthz")
        assert b'"livekit_configured": false' in body
    finally:
        output = _stop(process)
    assert "LiveKit settings missing" in output


def test_production_server_without_an_api_key_will_not_start() -> None:
    result = run(APP_ENV="production", TOKEN_SERVER_PORT=str(free_port()), **LIVEKIT_ENV)

    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("configuration error: TOKEN_SERVER_API_KEY is not set, so anyone")
    assert "TOKEN_SERVER_ALLOW_ANONYMOUS=true" in line
    assert API_SECRET not in result.stdout + result.stderr


def test_production_server_starts_with_an_api_key_or_an_anonymous_opt_in() -> None:
    process, _ = _start(APP_ENV="production", TOKEN_SERVER_API_KEY="k" * 32, **LIVEKIT_ENV)
    output = _stop(process)
    assert "needs no API key" not in output
    process, _ = _start(APP_ENV="production", TOKEN_SERVER_ALLOW_ANONYMOUS="true", **LIVEKIT_ENV)
    output = _stop(process)
    assert "/token needs no API key" in output


@pytest.mark.parametrize("networks", ["0.0.0.0/0", "10.0.0.0/8,::/0"])
def test_trusting_every_proxy_address_stops_start_up(networks: str) -> None:
    result = run("mint", "--room", "r", TOKEN_SERVER_TRUSTED_PROXIES=networks, **LIVEKIT_ENV)

    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "TOKEN_SERVER_TRUSTED_PROXIES is invalid" in line and "trusts every address" in line


def test_the_server_closes_connections_that_never_finish_their_headers() -> None:
    process, port = _start(TOKEN_SERVER_READ_TIMEOUT_SECONDS="0.5")
    try:
        socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(20)]
        for sock in socks:
            sock.sendall(b"POST /token HTTP/1.1\r\nHost: localhost\r\n")
        started = time.monotonic()
        for sock in socks:
            sock.settimeout(max(0.1, started + 4 - time.monotonic()))
            try:
                assert sock.recv(4096) == b"", "the server answered a request it never got"
            except ConnectionResetError:
                pass
            except TimeoutError:
                pytest.fail("a connection with partial headers is still open after 4 s")
            finally:
                sock.close()
    finally:
        _stop(process)
