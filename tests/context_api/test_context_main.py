"""`python -m context_api` as a user runs it (a subprocess, a written `.env`), and its settings:
one line and exit status 2 for a bad value, never a traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from devkit.livekit_server import LiveKitServer
from tests.conftest import free_port
from tests.context_api.conftest import API_SECRET, make_settings

REPO = Path(__file__).resolve().parents[2]


def run(folder: Path, env: dict[str, str], *args: str, wait: bool = True) -> Any:
    (folder / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    command = [sys.executable, "-m", "context_api", *args]
    environment = dict(os.environ) | {"PYTHONPATH": str(REPO)}
    if wait:
        return subprocess.run(
            command, cwd=folder, env=environment, capture_output=True, text=True, timeout=60
        )
    return subprocess.Popen(
        command, cwd=folder, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def base_env(livekit: LiveKitServer | None = None, **extra: str) -> dict[str, str]:
    env = (
        livekit.env()
        if livekit
        else {
            "LIVEKIT_URL": "ws://127.0.0.1:9",
            "LIVEKIT_API_KEY": "APIx",
            "LIVEKIT_API_SECRET": "livekit-secret-0123456789abcdef",
        }
    )
    return env | {"CONTEXT_API_SECRET": API_SECRET} | extra


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"CONTEXT_API_SECRET": None}, "CONTEXT_API_SECRET is not set"),
        ({"CONTEXT_API_SECRET": "short"}, "CONTEXT_API_SECRET is invalid: use at least 16"),
        ({"LIVEKIT_URL": None}, "LIVEKIT_URL is not set"),
        ({"LIVEKIT_URL": "localhost:7880"}, "LIVEKIT_URL is invalid: must start with"),
        ({"CONTEXT_API_DELIVERY": "pigeon"}, "CONTEXT_API_DELIVERY is invalid"),
        ({"CONTEXT_API_AGENT_CODES": "A1,bad code"}, "CONTEXT_API_AGENT_CODES is invalid"),
        ({"CONTEXT_API_ROOM_TIMEOUT_SECONDS": "0"}, "CONTEXT_API_ROOM_TIMEOUT_SECONDS is invalid"),
        ({"TOKEN_SERVER_API_KEY": API_SECRET}, "must differ from TOKEN_SERVER_API_KEY"),
        ({"LIVEKIT_API_SECRET": API_SECRET}, "must differ from LIVEKIT_API_SECRET"),
    ],
)
def test_a_bad_setting_is_one_line_and_exit_2(
    tmp_path: Path, change: dict[str, str | None], expected: str
) -> None:
    env = base_env()
    for name, value in change.items():
        if value is None:
            env.pop(name)
        else:
            env[name] = value
    result = run(tmp_path, env)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("configuration error: "), result.stderr
    assert expected in lines[0]
    assert API_SECRET not in result.stderr


def test_it_serves_standalone_from_a_dotenv(tmp_path: Path, livekit_server: LiveKitServer) -> None:
    port = free_port()
    env = base_env(livekit_server, CONTEXT_API_PORT=str(port), CONTEXT_API_HOST="127.0.0.1")
    process = run(tmp_path, env, wait=False)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    health = json.load(r)
                break
            except (urllib.error.URLError, OSError):
                assert process.poll() is None, process.stdout.read().decode()  # type: ignore[union-attr]
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert health["status"] == "ok" and health["delivery"] == "rpc"
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/agent/A1/speak",
            data=b'{"message": "anyone?"}',
            headers={"api-secret": API_SECRET, "Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(request, timeout=10)
        assert answer.value.code == 404
        assert json.load(answer.value)["error"] == "NO_ACTIVE_ROOMS"
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0].decode()
    assert process.returncode == 0, output
    assert '"message": "context API starting"' in output or "context API starting" in output
    assert API_SECRET not in output and livekit_server.api_secret not in output


def test_settings_defaults() -> None:
    settings = make_settings()
    assert settings.port == 3100 and settings.delivery == "auto"
    assert settings.room_timeout_seconds == 5.0 and settings.command_ttl_seconds == 60.0
    assert settings.knows("A12345678") and not settings.knows("bad code")
    limited = make_settings(CONTEXT_API_AGENT_CODES="A1, B2")
    assert limited.agent_codes == ["A1", "B2"]
    assert limited.knows("A1") and not limited.knows("A3")
