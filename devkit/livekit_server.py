"""The real LiveKit server, built by `scripts/livekit-server.sh`, on 127.0.0.1 for tests and
benchmarks.

A server gets a generated key and secret, free ports for signal and ICE/TCP and a small UDP range,
and media on loopback only. The tests' session fixture is `tests/livekit_local.py`; each failing
test gets the server log lines written during it (see `tests/conftest.py`).
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BINARY = ROOT / "tools" / "livekit-server"
# WebRTC over UDP goes through these ports, shared by every participant (livekit's UDP mux, as
# recommended in production: as many ports as vCPUs). A port range instead gives each peer
# connection a port of its own: 20 of them ran out at 7-10 rooms in benchmarks/capacity.py.
UDP_PORTS = 2

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


def server_ports() -> tuple[int, int, int]:
    """Signal (TCP), ICE/TCP and the first of `UDP_PORTS` UDP ports, all free now and all below
    the kernel's ephemeral range, where no client socket of the tests is handed one meanwhile."""
    low = 20_000
    with contextlib.suppress(OSError, ValueError):
        low = min(low, int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0]))
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(10_000, low - UDP_PORTS - 2)
        wanted = [(socket.SOCK_STREAM, base), (socket.SOCK_STREAM, base + 1)]
        wanted += [(socket.SOCK_DGRAM, base + 2 + i) for i in range(UDP_PORTS)]
        if all(_bindable(kind, port) for kind, port in wanted):
            return base, base + 1, base + 2
    raise RuntimeError("no free ports for livekit-server on 127.0.0.1")


def _bindable(kind: int, port: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class NoServerBinary(RuntimeError):
    """No executable livekit-server where one was looked for."""


def server_binary() -> Path:
    """The server the scripts build (or `LIVEKIT_SERVER_BIN`); `NoServerBinary` without one."""
    override = os.environ.get("LIVEKIT_SERVER_BIN")
    binary = Path(override) if override else BINARY
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary
    raise NoServerBinary(
        f"no livekit-server at {binary}: run scripts/livekit-server.sh (test.sh does)"
    )


def require_server() -> str:
    """For scripts: the server's version line, or exit with the reason there is no server."""
    try:
        binary = server_binary()
    except NoServerBinary as missing:
        raise SystemExit(str(missing)) from None
    version = subprocess.run(
        [str(binary), "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return version or str(binary)


def config(http_port: int, tcp_port: int, udp_start: int, key: str, secret: str) -> str:
    # JSON is YAML: the server's strict parser refuses unknown keys, so a typo fails loudly.
    # agents.target_load: the server offers jobs only to workers reporting less CPU load than
    # this (0.7 by default); a worker's load is the host's CPU, which on a shared test machine
    # is other work's (the workers run with AGENT_LOAD_THRESHOLD=inf for the same reason)
    return f"""{{
  "port": {http_port},
  "bind_addresses": ["127.0.0.1"],
  "keys": {{"{key}": "{secret}"}},
  "rtc": {{
    "tcp_port": {tcp_port},
    "udp_port": "{udp_start}-{udp_start + UDP_PORTS - 1}",
    "node_ip": "127.0.0.1",
    "use_external_ip": false,
    "enable_loopback_candidate": true
  }},
  "agents": {{"target_load": 2.0}},
  "logging": {{"level": "info"}}
}}"""


def wait_until_ready(process: subprocess.Popen[bytes], http_url: str) -> bool:
    """True once the server answers; False if it exited first (a port taken meanwhile)."""
    deadline = time.monotonic() + 30
    while process.poll() is None:
        try:
            with urllib.request.urlopen(http_url, timeout=1) as answer:
                if answer.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            process.kill()
            break
        time.sleep(0.05)
    process.wait()
    return False


def start(binary: Path, log_path: Path) -> tuple[subprocess.Popen[bytes], LiveKitServer]:
    key = "test-" + secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    for _ in range(3):
        http_port, tcp_port, udp_start = server_ports()
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [str(binary), "--config-body", config(http_port, tcp_port, udp_start, key, secret)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=log_path.parent,
            )
        server = LiveKitServer(f"ws://127.0.0.1:{http_port}", key, secret, log_path)
        if wait_until_ready(process, server.http_url):
            return process, server
    tail = log_path.read_text(errors="replace")[-3000:]
    raise RuntimeError(f"livekit-server did not start:\n{tail}")


@contextlib.contextmanager
def running_server(workdir: Path, binary: Path | None = None) -> Iterator[LiveKitServer]:
    """A started server (`binary`, else `server_binary()`); stopped on exit."""
    process, server = start(binary or server_binary(), workdir / "livekit-server.log")
    RUNNING.append(server)
    try:
        yield server
    finally:
        RUNNING.remove(server)
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
