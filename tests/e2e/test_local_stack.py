"""The embedded local stack as a user starts it (`scripts/run-agent.sh dev` with no LIVEKIT_URL
ends in `python -m agent.local_stack dev`): a folder with a written `.env` holding only the
OpenAI settings and ports, nothing exported. A local LiveKit server, the token server and the
agent come up; a user with a token from that token server meets the agent and its placeholder
face; Ctrl-C stops all three."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import pytest

from devkit.harness import OUR_VARIABLES, User, agent_identity, free_port, write_env
from devkit.livekit_server import server_ports
from devkit.openai_realtime import GREETING, FakeRealtimeServer
from tests.livekit_local import server_binary

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]  # their own waits add up past 120 s


async def _read_until(stream: asyncio.StreamReader, pattern: str, seen: list[str]) -> str:
    while True:
        line = (await stream.readline()).decode(errors="replace")
        if not line:
            raise AssertionError("the stack exited before printing its address:\n" + "".join(seen))
        seen.append(line)
        if re.search(pattern, line):
            return line


async def _drain(stream: asyncio.StreamReader, seen: list[str]) -> None:
    """Keep reading the stack's output so it never blocks on a full pipe."""
    while line := await stream.readline():
        seen.append(line.decode(errors="replace"))


def _closed(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


async def test_one_command_brings_up_server_tokens_and_agent_and_ctrl_c_stops_them(
    tmp_path: Path, realtime_server: FakeRealtimeServer
) -> None:
    livekit_port, _, _ = server_ports()
    token_port = free_port()
    write_env(
        tmp_path,
        {
            "OPENAI_API_KEY": "sk-local-stack",
            "OPENAI_BASE_URL": realtime_server.base_url,
            "LOCAL_LIVEKIT_PORT": str(livekit_port),
            "TOKEN_SERVER_PORT": str(token_port),
            "LOG_FORMAT": "json",
        },
    )
    # livekit-server found on PATH, as a user's installed one would be
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "livekit-server").symlink_to(server_binary())
    env = {k: v for k, v in os.environ.items() if not k.startswith(OUR_VARIABLES)}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    stack = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent.local_stack", "dev", cwd=tmp_path, env=env,
        stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    assert stack.stderr is not None
    seen: list[str] = []
    user: User | None = None
    drain: asyncio.Future[None] | None = None
    try:
        async with asyncio.timeout(90):
            line = await _read_until(stack.stderr, r"open http://localhost:\d+ ", seen)
        assert f"open http://localhost:{token_port} to talk to your agent" in line
        drain = asyncio.ensure_future(_drain(stack.stderr, seen))

        base = f"http://localhost:{token_port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/healthz") as response:
                assert response.status == 200
            async with http.get(f"{base}/") as response:  # the page, built by the bootstrap
                assert response.status == 200
                assert "text/html" in response.headers["Content-Type"]
            user = await User.join(base, "local-stack-room", session=http)
        assert user.room.connection_state == 1  # CONN_CONNECTED, on the stack's own server
        await user.until(lambda: agent_identity(user) is not None, within=60)
        agent = agent_identity(user)
        assert agent is not None
        # no bitHuman setting in .env: the placeholder face shows, and the greeting is heard
        await user.until(lambda: bool(user.seen) and user.voiced(agent) > 20, within=60)
        await user.until(lambda: GREETING in user.final_texts(agent), within=30)
    finally:
        if user is not None:
            await user.leave()
        if stack.returncode is None:
            stack.send_signal(signal.SIGINT)  # what Ctrl-C delivers to the foreground process
        async with asyncio.timeout(60):
            status = await stack.wait()
        if drain is not None:
            await drain
    assert status == 0, "".join(seen)[-4000:]
    assert _closed(livekit_port) and _closed(token_port)


async def test_a_taken_port_is_one_line_and_exit_1(tmp_path: Path) -> None:
    livekit_port, _, _ = server_ports()
    write_env(
        tmp_path, {"OPENAI_API_KEY": "sk-local-stack", "LOCAL_LIVEKIT_PORT": str(livekit_port)}
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "livekit-server").symlink_to(server_binary())
    env = {k: v for k, v in os.environ.items() if not k.startswith(OUR_VARIABLES)}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", livekit_port))  # bound, not listening: nothing answers there
        stack = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agent.local_stack", "dev", cwd=tmp_path, env=env,
            stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        async with asyncio.timeout(60):
            _, err = await stack.communicate()
    assert stack.returncode == 1
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("local stack: livekit-server stopped while starting"), lines
