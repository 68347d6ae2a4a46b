"""`python -m token_server` as a user runs it: real subprocesses."""

from __future__ import annotations

import os
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


def test_development_server_starts_without_credentials_and_reports_it() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "token_server"],
        env=environment(TOKEN_SERVER_PORT=str(port), TOKEN_SERVER_HOST="127.0.0.1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                status, body = _get(f"http://127.0.0.1:{port}/healthz")
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("token server did not start")
                time.sleep(0.05)
        assert status == 200
        assert b'"livekit_configured": false' in body
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
    assert "LiveKit settings missing" in output
