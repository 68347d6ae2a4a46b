"""Fixtures for the webhook sender tests: a fake clock, a recording receiver, Redis, Node."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from tests.conftest import settings_of
from tests.system import program_missing, require
from webhooks.outbox import OutboxStore
from webhooks.outbox.redis_store import RedisOutbox
from webhooks.outbox.sqlite_store import SQLiteOutbox
from webhooks.settings import WebhookSettings

NODE_HELPER = Path(__file__).parent / "node" / "verify.js"
SECRET = "test-secret-0123456789"


class FakeClock:
    """Wall time that moves only when someone sleeps: a sleep returns at once, time jumps."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)
        await asyncio.sleep(0)


class ManualClock:
    """Wall time the test sets by hand; sleepers never wake, so periodic work runs only when
    the test calls it."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        await asyncio.Event().wait()


@dataclass
class Received:
    at: float
    path: str
    headers: dict[str, str]
    body: bytes
    held: bool = False  # arrived while the gate was closed: not acknowledged (yet)

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class RecordingReceiver:
    """An HTTP endpoint that records every request and answers from a script.

    `statuses` are popped per request (200 once empty); every answer carries `answer_headers`.
    `delay` holds each answer; `gate`, when cleared, holds answers until it is set again.
    Until the clock reaches `down_until` every answer is a 503 (an outage).
    """

    clock: FakeClock | None = None
    statuses: list[int] = field(default_factory=list)
    answer_headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    requests: list[Received] = field(default_factory=list)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""
    down_until: float = float("-inf")
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    def __post_init__(self) -> None:
        self.gate.set()

    async def handle(self, request: web.Request) -> web.Response:
        at = self.clock.now() if self.clock else time.time()
        body = await request.read()
        held = not self.gate.is_set()
        self.requests.append(Received(at, request.path, dict(request.headers), body, held))
        async with self._arrived:
            self._arrived.notify_all()
        status = self.statuses.pop(0) if self.statuses else 200
        if at < self.down_until:
            status = 503
        if self.delay:
            await asyncio.sleep(self.delay)
        await self.gate.wait()
        return web.json_response({"status": status}, status=status, headers=self.answer_headers)

    async def wait_for(self, count: int, within: float = 10.0) -> list[Received]:
        async with asyncio.timeout(within), self._arrived:
            await self._arrived.wait_for(lambda: len(self.requests) >= count)
        return self.requests

    def event_ids(self) -> set[str]:
        """Ids of the events this receiver acknowledged."""
        return {r.headers["webhook-id"] for r in self.requests if not r.held}


async def eventually(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Poll `condition` until it holds (for state that offers nothing to await)."""
    for _ in range(int(within / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in time")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


async def start_receiver(receiver: RecordingReceiver) -> TestServer:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", receiver.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    receiver.url = str(server.make_url("/hook"))
    return server


@pytest.fixture
async def receiver(clock: FakeClock) -> AsyncIterator[RecordingReceiver]:
    recorder = RecordingReceiver(clock=clock)
    server = await start_receiver(recorder)
    yield recorder
    recorder.gate.set()
    await server.close()


def sender_settings(tmp_path: Path, urls: list[str], **overrides: Any) -> WebhookSettings:
    values: dict[str, Any] = {
        "urls": urls,
        "allow_http": True,
        "secret": SECRET,
        "outbox_path": tmp_path / "outbox.db",
        "poll_interval": 60.0,
        "timeout": 5.0,
        "deliver_in_process": True,  # most tests watch one emitter deliver its own events
        "slow_retry_for": 0.0,  # bitHuman's fast retries only, unless a test is about the slow
    }
    values.update(overrides)
    return settings_of(WebhookSettings, **values)


@pytest.fixture(params=["sqlite", "redis"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """Opens stores on one shared outbox (each call is another connection, like a process)."""
    opened: list[OutboxStore] = []
    if request.param == "sqlite":
        path = tmp_path / "outbox.db"

        def factory() -> OutboxStore:
            store = SQLiteOutbox.open(path)
            opened.append(store)
            return store
    else:
        url = request.getfixturevalue("redis_server")
        prefix = f"test-{uuid.uuid4().hex}"

        def factory() -> OutboxStore:
            store = RedisOutbox.connect(url, prefix=prefix)
            opened.append(store)
            return store

    yield factory
    for store in opened:
        store.close()


class NodeVerifier:
    """bitHuman's documented Node check (and Standard Webhooks), run under `node`."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            ["node", str(NODE_HELPER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def check(self, secret: str, body: bytes, headers: dict[str, str]) -> dict[str, bool]:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        request = {
            "secret": secret,
            "body_b64": base64.b64encode(body).decode(),
            "bithuman": headers["X-bitHuman-Signature"],
            "id": headers["webhook-id"],
            "timestamp": headers["webhook-timestamp"],
            "standard": headers["webhook-signature"],
        }
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError("the node helper exited")
        result: dict[str, bool] = json.loads(line)
        return result

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        self._proc.wait(timeout=10)


@pytest.fixture(scope="session")
def node() -> Iterator[NodeVerifier]:
    require(program_missing("node", "nodejs"))
    verifier = NodeVerifier()
    yield verifier
    verifier.close()
