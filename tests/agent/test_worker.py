"""`python -m agent console --text` as a subprocess against the OpenAI Realtime stand-in: one
exchange, its webhooks, and a console that goes on when webhooks cannot start. (`dev` and
`start` run against the real LiveKit server: tests/agent/test_main_command.py, tests/e2e.)"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

import pexpect
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from devkit.openai_realtime import FakeRealtimeServer
from tests.subprocesses import spawn_console
from tests.system import portaudio_fixture  # noqa: F401

pytestmark = pytest.mark.usefixtures("portaudio")  # console imports sounddevice, even with --text

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
    child, printed = spawn_console(env, cwd, columns=120)
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
