"""A receiver app served in-process on a hand-set clock, and signed sample events.

The `harness` fixture (in conftest) gives each test one, with a handler recording
chat.push events in `harness.seen`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from tests.conftest import settings_of
from tests.webhooks.conftest import ManualClock
from webhook_receiver import ReceivedEvent, ReceiverSettings, Router, create_app
from webhook_receiver.app import PROCESSOR
from webhook_receiver.processor import Processor
from webhooks import payloads
from webhooks.payloads import EventIds
from webhooks.signatures import sign_headers

new_id = EventIds().next

SECRET = "receiver-secret-123"
T0 = 1_700_000_000.0
Client = TestClient[Any, Any]


def body_for(message: str = "hello", when: float = T0) -> bytes:
    return payloads.chat_push(
        event_id=new_id(), agent_id="a", role="user", message=message, session_id="s", now=when
    ).body


def signed(body: bytes, event_id: str = "evt_1", stamp: float = T0) -> dict[str, str]:
    return {**sign_headers(SECRET, event_id, int(stamp), body), "Content-Type": "application/json"}


class Harness:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.clock = ManualClock(T0)
        self.router = Router()
        self.seen: list[ReceivedEvent] = []
        self.registry = CollectorRegistry()
        self.client: Client | None = None

    def settings(self, **overrides: Any) -> ReceiverSettings:
        values: dict[str, Any] = {"secret": SECRET, "store_path": self.tmp_path / "recv.db"}
        values.update(overrides)
        return settings_of(ReceiverSettings, **values)

    async def start(self, **overrides: Any) -> Client:
        app = create_app(
            self.settings(**overrides), self.router, registry=self.registry, clock=self.clock
        )
        self.client = TestClient(TestServer(app))
        await self.client.start_server()
        return self.client

    @property
    def processor(self) -> Processor:
        assert self.client is not None
        processor: Processor = self.client.app[PROCESSOR]
        return processor

    async def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        assert self.client is not None
        response = await self.client.post("/webhook", data=body, headers=headers)
        return response.status, await response.json()

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels or None) or 0.0


def recording_harness(tmp_path: Path) -> Harness:
    h = Harness(tmp_path)

    @h.router.on("chat.push")
    async def record(event: ReceivedEvent) -> None:
        h.seen.append(event)

    return h
