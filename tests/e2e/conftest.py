"""The end-to-end stack: the real LiveKit server (session-wide), and per test our token server,
a webhook receiver, the OpenAI Realtime stand-in, the bitHuman stub, and agents started from a
written `.env`."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from devkit.bithuman_api import BithumanStub
from devkit.bithuman_avatar import AvatarStandIn
from devkit.harness import AgentProcess, User, write_env
from devkit.livekit_server import LiveKitServer
from devkit.openai_realtime import FakeRealtimeServer
from tests.webhooks.conftest import RecordingReceiver, start_receiver
from token_server.app import create_app
from token_server.settings import TokenServerSettings

ROOT = Path(__file__).resolve().parents[2]
WEBHOOK_SECRET = "whsec-e2e-" + "x" * 24
OPENAI_KEY = "sk-e2e-never-logged-0123"
AVATAR_ID = "A00E2E0001"
AVATAR_IDENTITY = "bithuman-avatar-agent"


class Stack:
    """What one end-to-end test runs against; `start_agent` and `join` are its verbs."""

    def __init__(
        self,
        folder: Path,
        livekit: LiveKitServer,
        realtime: FakeRealtimeServer,
        bithuman: BithumanStub,
        receiver: RecordingReceiver,
        token_server_url: str,
        agent_name: str,
        http: aiohttp.ClientSession,
    ) -> None:
        self.folder = folder
        self.livekit = livekit
        self.realtime = realtime
        self.bithuman = bithuman
        self.receiver = receiver
        self.token_server_url = token_server_url
        self.agent_name = agent_name
        self.http = http
        self.agents: list[AgentProcess] = []
        self.users: list[User] = []

    def settings(self, **overrides: str) -> dict[str, str]:
        """The `.env` of an audio-only agent on this stack; `overrides` by variable name."""
        base = {
            **self.livekit.env(),
            "OPENAI_API_KEY": OPENAI_KEY,
            "OPENAI_BASE_URL": self.realtime.base_url,
            "AGENT_NAME": self.agent_name,
            "LOG_FORMAT": "json",
            # a busy CI machine would otherwise look overloaded and refuse jobs
            "AGENT_LOAD_THRESHOLD": "inf",
            "AGENT_IDLE_PROCESSES": "1",
            "AGENT_HTTP_PORT": "0",
            "AGENT_DRAIN_TIMEOUT": "30",
            "WEBHOOK_URLS": self.receiver.url,
            "WEBHOOK_SECRET": WEBHOOK_SECRET,
            "WEBHOOK_ALLOW_HTTP": "true",
            "WEBHOOK_POLL_INTERVAL": "0.05",
        }
        return base | overrides

    def avatar_settings(self, **overrides: str) -> dict[str, str]:
        """A cloud avatar by agent code, served by the bitHuman stub and its avatar stand-in."""
        return self.settings(
            BITHUMAN_API_SECRET=self.bithuman.secret,
            BITHUMAN_AVATAR_ID=AVATAR_ID,
            BITHUMAN_API_URL=self.bithuman.session_request_url,
            BITHUMAN_REST_URL=self.bithuman.url,
            **overrides,
        )

    @property
    def avatar(self) -> AvatarStandIn:
        assert self.bithuman.avatar is not None
        return self.bithuman.avatar

    async def start_agent(self, settings: dict[str, str] | None = None) -> AgentProcess:
        folder = self.folder / f"agent-{len(self.agents)}"
        folder.mkdir()
        write_env(folder, settings if settings is not None else self.settings())
        agent = await AgentProcess.start(folder)
        self.agents.append(agent)
        await agent.registered()
        return agent

    async def join(self, room: str | None = None, **body: Any) -> User:
        user = await User.join(
            self.token_server_url,
            room or f"room-{secrets.token_hex(4)}",
            session=self.http,
            **body,
        )
        self.users.append(user)
        return user


@pytest.fixture
async def stack(
    tmp_path: Path,
    livekit_server: LiveKitServer,
    realtime_server: FakeRealtimeServer,
    bithuman_cloud: BithumanStub,
) -> AsyncIterator[Stack]:
    agent_name = f"e2e-{secrets.token_hex(3)}"
    token_settings = TokenServerSettings(
        **livekit_server.env(),
        AGENT_NAME=agent_name,
        TOKEN_SERVER_RATE_LIMIT_PER_MINUTE=0,
    )
    token_server = TestServer(create_app(token_settings), host="127.0.0.1")
    await token_server.start_server()
    receiver = RecordingReceiver()
    receiver_server = await start_receiver(receiver)
    async with aiohttp.ClientSession() as http:
        stack = Stack(
            tmp_path,
            livekit_server,
            realtime_server,
            bithuman_cloud,
            receiver,
            str(token_server.make_url("")).rstrip("/"),
            agent_name,
            http,
        )
        try:
            yield stack
        finally:
            for user in stack.users:
                await user.leave()
            for agent in stack.agents:
                agent.kill()
                await agent.process.wait()
            await receiver_server.close()
            await token_server.close()
