"""The session's real LiveKit server (fixture `livekit_server`; the runner is
`devkit/livekit_server.py`). One server per test session: rooms and agent names are unique per
test. Without the binary a test fails in CI and skips elsewhere."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devkit import livekit_server as runner
from devkit.livekit_server import LiveKitServer
from tests.system import unavailable


def server_binary() -> Path:
    try:
        return runner.server_binary()
    except runner.NoServerBinary as missing:
        unavailable(str(missing))


@pytest.fixture(scope="session")
def livekit_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveKitServer]:
    with runner.running_server(tmp_path_factory.mktemp("livekit"), server_binary()) as server:
        yield server
