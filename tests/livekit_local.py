"""The real LiveKit server, built by `scripts/livekit-server.sh`, on 127.0.0.1 for the tests.

One server per test session (rooms and agent names are unique per test), with a generated key
and secret, free ports for signal and ICE/TCP and a small UDP range, and media on loopback only.
Each failing test gets the server log lines written during it (see `tests/conftest.py`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BINARY = ROOT / "tools" / "livekit-server"
UDP_PORTS = 20  # a few rooms' worth of ICE/UDP candidates

RUNNING: list[LiveKitServer] = []  # the session's server, for the failing-test log hook


@dataclass(frozen=True)
class LiveKitServer:
    url: str
    api_key: str
    api_secret: str
    log_path: Path

    @property
    def http_url(self) -> str:
        return self.url.replace("ws://", "http://", 1)

    def env(self) -> dict[str, str]:
        """The settings every one of our services reads to reach this server."""
        return {
            "LIVEKIT_URL": self.url,
            "LIVEKIT_API_KEY": self.api_key,
            "LIVEKIT_API_SECRET": self.api_secret,
        }

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def log_since(self, offset: int) -> str:
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_udp_range(size: int) -> int:
    """The first port of `size` consecutive UDP ports that are free now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            start = int(probe.getsockname()[1])
        if start + size > 65535:
            continue
        held: list[socket.socket] = []
        try:
            for port in range(start, start + size):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                held.append(sock)
                sock.bind(("127.0.0.1", port))
            return start
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
    raise RuntimeError("no free UDP port range on 127.0.0.1")


def server_binary() -> Path:
    """The server the scripts build; a test run without it fails in CI and skips elsewhere."""
    override = os.environ.get("LIVEKIT_SERVER_BIN")
    binary = Path(override) if override else BINARY
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary
    reason = f"no livekit-server at {binary}: run scripts/livekit-server.sh (scripts/test.sh does)"
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def config(http_port: int, tcp_port: int, udp_start: int, key: str, secret: str) -> str:
    # JSON is YAML: the server's strict parser refuses unknown keys, so a typo fails loudly
    return f"""{{
  "port": {http_port},
  "bind_addresses": ["127.0.0.1"],
  "keys": {{"{key}": "{secret}"}},
  "rtc": {{
    "tcp_port": {tcp_port},
    "port_range_start": {udp_start},
    "port_range_end": {udp_start + UDP_PORTS - 1},
    "node_ip": "127.0.0.1",
    "use_external_ip": false,
    "enable_loopback_candidate": true
  }},
  "logging": {{"level": "info"}}
}}"""


def wait_until_ready(process: subprocess.Popen[bytes], http_url: str, log_path: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(http_url, timeout=1) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"livekit-server did not start:\n{tail}")
        time.sleep(0.05)


@contextlib.contextmanager
def running_server(workdir: Path) -> Iterator[LiveKitServer]:
    """A started server (benchmarks use this too); stopped on exit."""
    binary = server_binary()
    key = "test-" + secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    http_port, tcp_port = free_tcp_port(), free_tcp_port()
    udp_start = free_udp_range(UDP_PORTS)
    log_path = workdir / "livekit-server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(binary), "--config-body", config(http_port, tcp_port, udp_start, key, secret)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
    server = LiveKitServer(f"ws://127.0.0.1:{http_port}", key, secret, log_path)
    try:
        wait_until_ready(process, server.http_url, log_path)
        RUNNING.append(server)
        yield server
    finally:
        if server in RUNNING:
            RUNNING.remove(server)
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def livekit_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveKitServer]:
    with running_server(tmp_path_factory.mktemp("livekit")) as server:
        yield server
