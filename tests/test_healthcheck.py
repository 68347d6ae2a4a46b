"""`python -m common.healthcheck URL`, the image probe: 0 for a 2xx answer, else 1 and a line."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from devkit.harness import free_port


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 503)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def probe(url: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "common.healthcheck", url]
    return subprocess.run(command, capture_output=True, text=True, timeout=30)


def test_healthy(server: str) -> None:
    done = probe(f"{server}/healthz")
    assert (done.returncode, done.stderr) == (0, "")


def test_unhealthy_answer(server: str) -> None:
    done = probe(f"{server}/other")
    assert done.returncode == 1
    assert done.stderr.strip() == f"unhealthy: {server}/other: HTTP 503"


def test_nothing_listening() -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    done = probe(url)
    assert done.returncode == 1
    assert done.stderr.startswith(f"unhealthy: {url}: URLError")
    assert len(done.stderr.strip().splitlines()) == 1


def test_without_a_url_it_probes_healthcheck_url(server: str) -> None:
    command = [sys.executable, "-m", "common.healthcheck"]
    env = {**os.environ, "HEALTHCHECK_URL": f"{server}/healthz"}
    assert subprocess.run(command, env=env, capture_output=True, timeout=30).returncode == 0
    env["HEALTHCHECK_URL"] = f"{server}/other"
    assert subprocess.run(command, env=env, capture_output=True, timeout=30).returncode == 1
