"""`python -m agent start` and `python -m agent console --text` as subprocesses, against the
LiveKit and OpenAI Realtime stand-ins: registration, dispatch, the entrypoint up to the room
connection, JSON logs with room and job id, SIGTERM, and one console exchange."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

import pexpect
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.fakes.livekit_server import FakeLiveKitServer, run_one_job
from tests.fakes.openai_realtime import FakeRealtimeServer

ROOT = Path(__file__).resolve().parents[2]
OPENAI_KEY = "sk-test-never-logged-0123"


def agent_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIVEKIT_", "OPENAI_"))}
    return (
        env
        | {
            "PYTHONPATH": str(ROOT),
            "HOME": str(tmp_path),
            "OPENAI_API_KEY": OPENAI_KEY,
            "AGENT_PROMPT_FILE": str(ROOT / "config" / "persona.md"),
            # a busy CI machine would otherwise look overloaded and refuse the job
            "AGENT_LOAD_THRESHOLD": "1",
            "AGENT_IDLE_PROCESSES": "1",
            "AGENT_HTTP_PORT": "0",
        }
        | extra
    )


async def start_worker(
    tmp_path: Path, env: dict[str, str]
) -> tuple[asyncio.subprocess.Process, Path]:
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agent", "start", cwd=tmp_path, env=env,
            stdout=log_file, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
    return process, log_path


def json_lines(log_path: Path) -> list[dict[str, Any]]:
    lines = []
    for raw in log_path.read_text(errors="replace").splitlines():
        if raw.startswith("{"):
            lines.append(json.loads(raw))
    return lines


@pytest.mark.parametrize("agent_name", ["", "avatar-agent"])
async def test_start_registers_takes_a_job_and_reaches_the_room(
    livekit_server: FakeLiveKitServer,
    realtime_server: FakeRealtimeServer,
    tmp_path: Path,
    agent_name: str,
) -> None:
    env = agent_env(
        tmp_path,
        OPENAI_BASE_URL=realtime_server.base_url,
        AGENT_NAME=agent_name,
        **livekit_server.env(),
    )
    process, log_path = await start_worker(tmp_path, env)
    async with asyncio.timeout(90):
        done = await run_one_job(
            livekit_server, process, log_path, "demo-room", agent_name=agent_name
        )
    worker, job, attempt, exit_status = done.worker, done.job, done.attempt, done.exit_status

    assert worker.agent_name == agent_name
    assert attempt.authorized and attempt.room == "demo-room"
    assert exit_status == 0, "SIGTERM drains and exits cleanly"

    output = log_path.read_text(errors="replace")
    assert OPENAI_KEY not in output and livekit_server.credentials.api_secret not in output
    lines = json_lines(log_path)
    assert lines, "start writes JSON lines"
    from_job = [line for line in lines if line.get("job_id") == job.job.id]
    assert from_job and all(line.get("room") == "demo-room" for line in from_job)


async def test_console_text_holds_one_exchange_and_sends_its_webhooks(
    realtime_server: FakeRealtimeServer, tmp_path: Path
) -> None:
    hooks: list[dict[str, Any]] = []
    expected = {("user", "what time is it"), ("assistant", "You said: what time is it.")}
    all_arrived = threading.Event()

    def chats() -> set[tuple[str, str]]:
        return {(h["data"]["role"], h["data"]["message"]) for h in hooks if "role" in h["data"]}

    async def receive(request: web.Request) -> web.Response:
        hooks.append(await request.json())
        if chats() >= expected:
            all_arrived.set()
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post("/hook", receive)
    async with TestServer(app, port=0) as receiver:
        env = agent_env(
            tmp_path,
            OPENAI_BASE_URL=realtime_server.base_url,
            WEBHOOK_URLS=str(receiver.make_url("/hook")),
            WEBHOOK_ALLOW_HTTP="true",
            WEBHOOK_OUTBOX_PATH=str(tmp_path / "outbox.db"),
        )
        # the console reads keystrokes from a terminal: drive it through a pseudo-terminal, in
        # a thread, while this loop serves the realtime stand-in and the webhook receiver
        transcript = await asyncio.to_thread(converse_in_console, env, tmp_path, all_arrived)

    assert "You said: what time is it." in transcript
    assert OPENAI_KEY not in transcript
    assert realtime_server.received_of("conversation.item.create")
    assert chats() >= expected


async def test_console_goes_on_when_webhooks_cannot_start(
    realtime_server: FakeRealtimeServer, tmp_path: Path
) -> None:
    not_a_dir = tmp_path / "a-file"
    not_a_dir.write_text("")
    env = agent_env(
        tmp_path,
        OPENAI_BASE_URL=realtime_server.base_url,
        WEBHOOK_URLS="https://hooks.example.com/bithuman",
        WEBHOOK_OUTBOX_PATH=str(not_a_dir / "outbox.db"),  # cannot be created
    )
    transcript = await asyncio.to_thread(converse_in_console, env, tmp_path)
    assert "You said: what time is it." in transcript
    assert "feature unavailable for this session" in transcript


def converse_in_console(
    env: dict[str, str], cwd: Path, before_exit: threading.Event | None = None
) -> str:
    """One exchange in `console --text` through a pseudo-terminal; returns all it printed.
    `before_exit`: wait (up to 30 s) for it before stopping the console."""
    child = pexpect.spawn(
        sys.executable,
        ["-m", "agent", "console", "--text"],
        cwd=str(cwd),
        env=env,
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 120),
    )
    child.logfile_read = printed = io.StringIO()
    try:
        child.expect("Type to talk to your agent")
        child.send("what time is it\r")
        child.expect(r"You said: what time is it\.")
        if before_exit is not None:
            before_exit.wait(30)
    finally:
        child.sendcontrol("c")
        child.expect(pexpect.EOF, timeout=30)
        child.close()
    return printed.getvalue()
