"""`python -m bithuman_client` against the bitHuman stub and a stand-in self-hosted context API:
in-process through `execute` (the whole command but the process wrapper), and as users run it,
a subprocess in a folder with a written `.env` and nothing exported."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bithuman_client.cli import CliSettings, execute, parse_args
from bithuman_client.commands import Run
from common.settings import load_settings
from devkit.bithuman_api import (
    ACCOUNT_SECRET,
    GENERATE,
    BithumanStub,
    add_context_path,
    speak_path,
    status_path,
)

REPO = Path(__file__).resolve().parents[2]
CONTEXT_SECRET = "context-cli-secret-0123456789"


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def hosted(stub: BithumanStub) -> dict[str, str]:
    return {"BITHUMAN_API_SECRET": stub.secret, "BITHUMAN_REST_URL": stub.url}


async def cli(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], *argv: str) -> Result:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    out, err = io.StringIO(), io.StringIO()
    settings = load_settings(CliSettings)
    run = Run(parse_args(argv), out, err, secrets=settings.secret_values())
    code = await execute(run, settings)
    return Result(code, out.getvalue(), err.getvalue())


# -- speak / add-context -------------------------------------------------------------------


async def test_speak_to_the_hosted_api(
    bithuman_api: BithumanStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    bithuman_api.live_rooms["A12345678"] = ["room_1", "room_2"]
    result = await cli(monkeypatch, hosted(bithuman_api), "speak", "A12345678", "Hello!")
    assert (result.code, result.err) == (0, "")
    assert result.out == "Speech triggered successfully: delivered to 2 rooms\n"
    result = await cli(
        monkeypatch, hosted(bithuman_api), "speak", "A12345678", "Hi", "--room", "room_1", "--json"
    )
    body = result.json()
    assert body["success"] is True and body["message"] == "Speech triggered successfully"
    assert body["data"]["delivered_to_rooms"] == 1 and body["data"]["agent_code"] == "A12345678"
    assert set(body["data"]) == {"agent_code", "delivered_to_rooms", "timestamp"}  # as received
    assert [c.rooms for c in bithuman_api.context_commands] == [("room_1", "room_2"), ("room_1",)]


async def test_add_context_with_type_and_room(
    bithuman_api: BithumanStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    bithuman_api.live_rooms["A12345678"] = ["room_1", "room_2"]
    env = hosted(bithuman_api)
    result = await cli(monkeypatch, env, "add-context", "A12345678", "VIP", "--room", "room_2")
    assert result.out == "Context added successfully: delivered to 1 room\n"
    await cli(monkeypatch, env, "add-context", "A12345678", "Thanks!", "--type", "speak")
    assert [(c.type, c.text) for c in bithuman_api.context_commands] == [
        ("add_context", "VIP"),
        ("speak", "Thanks!"),
    ]
    assert bithuman_api.calls(add_context_path("A12345678"))[1].body == {
        "context": "Thanks!",
        "type": "speak",
    }


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["speak", "A99UNKNOWN", "hi"], "AGENT_NOT_FOUND"),
        (["speak", "A00IDLE000", "hi"], "NO_ACTIVE_ROOMS"),
        (["speak", "A12345678", ""], "VALIDATION_ERROR"),
    ],
)
async def test_context_errors_are_one_line_naming_the_code_exit_1(
    bithuman_api: BithumanStub, monkeypatch: pytest.MonkeyPatch, argv: list[str], code: str
) -> None:
    bithuman_api.known_agents.add("A00IDLE000")
    bithuman_api.live_rooms["A12345678"] = ["room_1"]
    result = await cli(monkeypatch, hosted(bithuman_api), *argv)
    assert (result.code, result.out) == (1, "")
    (line,) = result.err.splitlines()
    assert line.startswith(f"error: {code}: bitHuman API POST ")
    as_json = await cli(monkeypatch, hosted(bithuman_api), *argv, "--json")
    assert as_json.code == 1
    assert as_json.json() | {"message": ""} == {
        "success": False,
        "error": code,
        "status": 400 if code == "VALIDATION_ERROR" else 404,
        "message": "",
    }


@pytest.fixture
async def self_hosted() -> AsyncIterator[list[dict[str, Any]]]:
    """A stand-in for `python -m context_api` (the real one is driven in tests/e2e): records
    each request and answers in our API's shape, per-room lists included."""
    seen: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append({"path": request.path, "headers": dict(request.headers), "body": body})
        if request.headers.get("api-secret") != CONTEXT_SECRET:
            answer = {"success": False, "error": "UNAUTHORIZED", "message": "Invalid api-secret"}
            return web.json_response(answer | {"status_code": 401}, status=401)
        data = {
            "agent_code": request.match_info["code"],
            "context_type": "speak",
            "command_id": "cmd_1",
            "delivered_to_rooms": 1,
            "timestamp": "2026-01-01T00:00:00Z",
            "rooms": [{"room_id": "r1", "via": "rpc", "acknowledged": True, "result": "accepted"}],
            "rooms_skipped": [{"room_id": "r2", "reason": "commands off"}],
            "rooms_failed": [{"room_id": "r3", "reason": "the agent did not answer within 5 s"}],
        }
        return web.json_response(
            {"success": True, "message": "Speech triggered successfully", "data": data}
        )

    app = web.Application()
    app.router.add_post("/v1/agent/{code}/{route}", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    seen.append({"url": str(server.make_url("")).rstrip("/")})
    yield seen
    await server.close()


async def test_context_commands_go_to_the_self_hosted_api_when_configured(
    bithuman_api: BithumanStub,
    self_hosted: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = self_hosted.pop(0)["url"]
    env = hosted(bithuman_api) | {"CONTEXT_API_URL": url, "CONTEXT_API_SECRET": CONTEXT_SECRET}
    result = await cli(monkeypatch, env, "speak", "A1", "Hello!", "--idempotency-key", "k1")
    assert result.code == 0
    assert result.out.splitlines() == [
        "Speech triggered successfully: delivered to 1 room",
        "  r1: accepted via rpc",
        "  r2: skipped: commands off",
        "  r3: failed: the agent did not answer within 5 s",
    ]
    [request] = self_hosted
    assert request["path"] == "/v1/agent/A1/speak" and request["body"] == {"message": "Hello!"}
    assert request["headers"]["api-secret"] == CONTEXT_SECRET
    assert request["headers"]["Idempotency-Key"] == "k1"
    assert bithuman_api.requests == [], "the hosted API saw nothing"
    # generation still goes to bitHuman
    bithuman_api.known_agents.add("A11AAA1111")
    assert (await cli(monkeypatch, env, "agent", "status", "A11AAA1111")).code == 0
    assert [r.path for r in bithuman_api.requests] == [status_path("A11AAA1111")]


async def test_each_api_needs_its_own_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {"CONTEXT_API_URL": "http://127.0.0.1:3100", "BITHUMAN_API_SECRET": ACCOUNT_SECRET}
    with pytest.raises(SystemExit) as info:
        await cli(monkeypatch, env, "speak", "A1", "hi")
    assert info.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "configuration error: CONTEXT_API_SECRET is not set "
        "(the api-secret your python -m context_api was started with)"
    ]
    monkeypatch.setenv("CONTEXT_API_URL", "http://context.example")
    with pytest.raises(SystemExit) as bad_url:
        await cli(monkeypatch, {}, "speak", "A1", "hi")
    assert bad_url.value.code == 2
    assert "CONTEXT_API_URL is invalid: refusing plain http://" in capsys.readouterr().err


# -- agent generate / status ---------------------------------------------------------------


async def test_generate_with_files_and_urls_then_wait_until_ready(
    bithuman_api: BithumanStub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "me.png").write_bytes(b"\x89PNG portrait")
    (tmp_path / "voice.wav").write_bytes(b"RIFF voice")
    result = await cli(
        monkeypatch, hosted(bithuman_api), "agent", "generate", "--prompt", "Be kind.",
        "--image", "me.png", "--video", "https://example.com/me.mp4", "--audio", "voice.wav",
        "--wait", "--poll-interval", "0.01", "--json",
    )  # fmt: skip
    assert result.code == 0, result.err
    final = result.json()
    agent_id = final["data"]["agent_id"]
    assert final["data"]["status"] == "ready" and final["data"]["model_url"]
    assert result.err.splitlines() == [
        f"agent {agent_id}: {status} (0:00 elapsed)"
        for status in ("processing", "generating", "completed", "ready")
    ]
    assert bithuman_api.generated[agent_id].request == {
        "prompt": "Be kind.",
        "image": "iVBORyBwb3J0cmFpdA==",
        "video": "https://example.com/me.mp4",
        "audio": "UklGRiB2b2ljZQ==",
    }


async def test_generate_without_wait_says_how_to_check(
    bithuman_api: BithumanStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = await cli(monkeypatch, hosted(bithuman_api), "agent", "generate", "--prompt", "x")
    assert result.code == 0
    [agent_id] = bithuman_api.generated
    assert result.out.splitlines() == [
        f"agent {agent_id}: processing (Agent generation started)",
        f"check it with: python -m bithuman_client agent status {agent_id} --wait",
    ]
    as_json = await cli(
        monkeypatch, hosted(bithuman_api), "agent", "generate", "--prompt", "y", "--json"
    )
    assert set(as_json.json()) == {"success", "message", "agent_id", "status"}


async def test_a_failed_generation_exits_4(
    bithuman_api: BithumanStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    bithuman_api.job_statuses = ("processing", "failed")
    result = await cli(
        monkeypatch, hosted(bithuman_api), "agent", "generate", "--prompt", "x", "--wait",
        "--poll-interval", "0.01",
    )  # fmt: skip
    assert result.code == 4
    [agent_id] = bithuman_api.generated
    assert result.out.splitlines() == [
        f"{agent_id}: failed",
        f"  name: agent {agent_id}",
        "  error_message: stub: generation failed",
    ] + [line for line in result.out.splitlines() if line.startswith("  updated_at")]
    status = await cli(monkeypatch, hosted(bithuman_api), "agent", "status", agent_id, "--json")
    assert status.code == 4 and status.json()["data"]["status"] == "failed"


async def test_waiting_gives_up_at_the_wait_timeout_exit_5(
    bithuman_api: BithumanStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    bithuman_api.job_statuses = ("processing",)
    result = await cli(
        monkeypatch, hosted(bithuman_api), "agent", "generate", "--prompt", "x", "--wait",
        "--poll-interval", "0.05", "--wait-timeout", "0.3",
    )  # fmt: skip
    assert result.code == 5
    [agent_id] = bithuman_api.generated
    last = result.err.splitlines()[-1]
    assert last.startswith("error: WAIT_TIMEOUT: gave up waiting after 0:00")
    assert last.endswith(f"check it with python -m bithuman_client agent status {agent_id} --wait")
    assert 3 <= len(bithuman_api.calls(status_path(agent_id))) <= 8


async def test_generate_refuses_bad_media_before_sending(
    bithuman_api: BithumanStub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = hosted(bithuman_api)
    (tmp_path / "notes.txt").write_text("hello")
    cases = {
        ("--image", "missing.png"): "usage error: --image: no such file: missing.png",
        ("--image", "notes.txt"): "usage error: --image: notes.txt is not a image file",
        (): "usage error: agent generate: give --prompt, --image, --video or --audio",
    }
    for args, expected in cases.items():
        result = await cli(monkeypatch, env, "agent", "generate", *args)
        assert result.code == 2
        assert result.err.startswith(expected) and result.err.count("\n") == 1
    assert bithuman_api.requests == []


async def test_the_stubs_size_limit_is_an_api_error(
    bithuman_api: BithumanStub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bithuman_api.file_limits["audio"] = 10
    (tmp_path / "voice.mp3").write_bytes(b"ID3" + b"\0" * 20)
    result = await cli(
        monkeypatch, hosted(bithuman_api), "agent", "generate", "--audio", "voice.mp3"
    )
    assert result.code == 1
    assert result.err.startswith("error: FILE_TOO_LARGE: bitHuman API POST /v1/agent/generate")


async def test_status_of_an_unknown_agent(
    bithuman_api: BithumanStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = await cli(monkeypatch, hosted(bithuman_api), "agent", "status", "A00NOPE000")
    assert result.code == 1
    assert result.err.startswith("error: AGENT_NOT_FOUND: ")


# -- dynamics ------------------------------------------------------------------------------


async def test_dynamics_generate_then_show(
    bithuman_api: BithumanStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    bithuman_api.known_agents.add("A11AAA1111")
    bithuman_api.dynamics_polls = 1
    env = hosted(bithuman_api)
    result = await cli(
        monkeypatch, env, "dynamics", "generate", "A11AAA1111", "--duration", "3", "--model", "auto"
    )
    assert result.out.splitlines() == [
        "dynamics for A11AAA1111: processing (Dynamics generation started)",
        "check them with: python -m bithuman_client dynamics A11AAA1111",
    ]
    generating = await cli(monkeypatch, env, "dynamics", "A11AAA1111", "--json")
    assert generating.json()["status"] == "generating"
    ready = await cli(monkeypatch, env, "dynamics", "A11AAA1111")
    assert ready.out.startswith("A11AAA1111: dynamics ready, 4 gestures")
    unknown = await cli(monkeypatch, env, "dynamics", "generate", "A00NOPE000", "--json")
    assert unknown.code == 1 and unknown.json()["error"] == "AGENT_NOT_FOUND"


# -- as users run it: a subprocess in a folder with a .env ---------------------------------


async def start_cli(folder: Path, *argv: str) -> asyncio.subprocess.Process:
    # nothing of ours is exported (the suite's fixture removed it): the CLI reads folder/.env
    env = os.environ | {"PYTHONPATH": str(REPO)}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bithuman_client", *argv, cwd=folder, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def run_cli(folder: Path, *argv: str) -> Result:
    process = await start_cli(folder, *argv)
    out, err = await process.communicate()
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


def write_env(folder: Path, settings: dict[str, str]) -> None:
    (folder / ".env").write_text("".join(f"{k}={v}\n" for k, v in settings.items()))


async def test_subprocess_speak_reads_its_env_file(
    bithuman_api: BithumanStub, tmp_path: Path
) -> None:
    bithuman_api.live_rooms["A12345678"] = ["room_1"]
    write_env(tmp_path, hosted(bithuman_api))
    result = await run_cli(tmp_path, "speak", "A12345678", "Hello from the shell", "--json")
    assert (result.code, result.err) == (0, "")
    assert result.json()["data"]["delivered_to_rooms"] == 1
    assert bithuman_api.context_commands[0].text == "Hello from the shell"
    assert ACCOUNT_SECRET not in result.out + result.err


async def test_subprocess_ctrl_c_leaves_the_job_running_exit_130(
    bithuman_api: BithumanStub, tmp_path: Path
) -> None:
    bithuman_api.job_statuses = ("processing",)
    write_env(tmp_path, hosted(bithuman_api))
    process = await start_cli(
        tmp_path, "agent", "generate", "--prompt", "x", "--wait", "--poll-interval", "0.1"
    )
    assert process.stderr is not None
    first = (await asyncio.wait_for(process.stderr.readline(), 30)).decode()
    [agent_id] = bithuman_api.generated
    assert first.startswith(f"agent {agent_id}: processing (0:00 elapsed)")
    process.send_signal(signal.SIGINT)
    out, rest = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 130
    assert out == b""
    assert rest.decode().splitlines()[-1] == (
        f"interrupted: agent {agent_id} is still being generated; check it with: "
        f"python -m bithuman_client agent status {agent_id} --wait"
    )
    bithuman_api.job_statuses = ("ready",)
    bithuman_api.generated[agent_id].statuses = ("processing", "ready")
    later = await run_cli(
        tmp_path, "agent", "status", agent_id, "--wait", "--poll-interval", "0.05"
    )
    assert later.code == 0 and later.out.startswith(f"{agent_id}: ready")
    assert len(bithuman_api.calls(GENERATE)) == 1, "the job was started once"


async def test_subprocess_unreachable_api_exits_3(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    write_env(
        tmp_path,
        {"BITHUMAN_API_SECRET": ACCOUNT_SECRET, "BITHUMAN_REST_URL": f"http://127.0.0.1:{port}"},
    )
    result = await run_cli(tmp_path, "agent", "generate", "--prompt", "x", "--timeout", "1")
    assert (result.code, result.out) == (3, "")
    (line,) = result.err.splitlines()
    assert line.startswith("error: UNREACHABLE: POST /v1/agent/generate: ClientConnectorError")


async def test_subprocess_a_timed_out_speak_is_not_repeated_exit_3(
    bithuman_api: BithumanStub, tmp_path: Path
) -> None:
    bithuman_api.live_rooms["A1"] = ["room_1"]
    bithuman_api.delays[speak_path("A1")] = 3
    write_env(tmp_path, hosted(bithuman_api))
    result = await run_cli(tmp_path, "speak", "A1", "hi", "--timeout", "0.5")
    assert result.code == 3
    assert "not retried: it may have been acted on" in result.err
    assert len(bithuman_api.calls(speak_path("A1"))) == 1
