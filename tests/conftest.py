"""Suite-wide setup: our structlog pipeline, as every service configures it at start-up; tests
isolated from the developer's shell and `.env`; helpers and a Redis server several suites share."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
from hypothesis import settings as hypothesis_settings
from pydantic_settings import BaseSettings

from common import logs

# Hypothesis's 200 ms per-example deadline measures the machine's load, not our code: a first
# call that touches the file system or imports lazily overruns it on a busy 2-core runner
hypothesis_settings.register_profile("suite", deadline=None)
hypothesis_settings.load_profile("suite")

# structlog lines become stdlib records, so pytest's caplog sees them with their fields
logs.configure_structlog()

# Tests press Ctrl-C on the programs they start (SIGINT). A suite started in the background by
# a non-interactive shell (`cmd &`, nohup) inherits SIGINT ignored and passes that on to every
# child, which then never sees it: handled here, it is back to the default in each child.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

from devkit import livekit_server as livekit_runner  # noqa: E402
from devkit.bithuman_api import BithumanStub  # noqa: E402
from devkit.bithuman_avatar import AvatarStandIn  # noqa: E402
from devkit.harness import OUR_VARIABLES, free_port  # noqa: E402
from devkit.livekit_server import LiveKitServer  # noqa: E402
from devkit.openai_realtime import FakeRealtimeServer  # noqa: E402
from tests.livekit_local import livekit_server  # noqa: E402,F401
from tests.system import program_missing, require  # noqa: E402

S = TypeVar("S", bound=BaseSettings)


@pytest.fixture(autouse=True)
def isolated_environment(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Neither the developer's shell nor a `.env` may change what a test sees (live tests,
    which exist to use the developer's credentials, excepted)."""
    if request.node.get_closest_marker("live"):
        return
    for name in list(os.environ):
        if name.startswith(OUR_VARIABLES):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


_LOG_OFFSET = pytest.StashKey[int]()


def pytest_runtest_setup(item: pytest.Item) -> None:
    server = _running_server(item)
    item.stash[_LOG_OFFSET] = server.log_size() if server else 0


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failing test that used the LiveKit server gets the server's log lines of its run."""
    report = yield
    server = _running_server(item)
    if report.failed and server is not None:
        text = server.log_since(item.stash.get(_LOG_OFFSET, 0))
        # SDP offers fill whole lines: keep each line's head, and the run's last lines
        lines = [line[:400] for line in text.splitlines()]
        report.sections.append(("livekit-server log", "\n".join(lines[-150:])))
    return report


def _running_server(item: pytest.Item) -> LiveKitServer | None:
    if "livekit_server" not in getattr(item, "fixturenames", ()):
        return None
    return livekit_runner.RUNNING[0] if livekit_runner.RUNNING else None


def settings_of(cls: type[S], **fields: Any) -> S:
    """Settings from field names (they are read by their environment names only)."""
    by_alias = {}
    for name, value in fields.items():
        alias = cls.model_fields[name].validation_alias
        by_alias[alias if isinstance(alias, str) else name] = value
    return cls(**by_alias)


@pytest.fixture
async def realtime_server() -> AsyncIterator[FakeRealtimeServer]:
    """The OpenAI Realtime stand-in, started on a free port, default script per test."""
    async with FakeRealtimeServer() as server:
        yield server


@pytest.fixture
async def bithuman_api() -> AsyncIterator[BithumanStub]:
    """The bitHuman REST stub, started on a free port, closed after the test."""
    async with BithumanStub() as stub:
        yield stub


@pytest.fixture
async def bithuman_cloud() -> AsyncIterator[BithumanStub]:
    """The bitHuman stub with the cloud avatar stand-in attached (`stub.avatar`)."""
    async with BithumanStub(avatar=AvatarStandIn()) as stub:
        yield stub


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway redis-server on a free port; yields its URL."""
    require(program_missing("redis-server", "redis-server"))
    binary = shutil.which("redis-server")
    assert binary is not None
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir)]
    args += ["--save", "", "--appendonly", "no"]  # nothing written to disk
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"redis-server did not start on port {port}")
                time.sleep(0.02)
        yield url
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)
