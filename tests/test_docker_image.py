"""The Dockerfile builds with Podman from Debian's packages, offline except for the Debian, PyPI
and npm mirrors, and the image's services answer their health checks.

Opt-in (`IMAGE_TESTS=1`, as root with podman, buildah and debootstrap installed): the build
takes about 8 minutes on 2 vCPUs, more than the rest of the suite's budget allows. Docker Hub
is out of reach here, so the bases come in through the Dockerfile's BASE and NODE_BASE build
arguments: a bootstrapped Debian with Python, and the same with this machine's Node.js.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devkit.livekit_server import LiveKitServer
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
STORAGE = ["--storage-driver", "vfs"]  # the only driver that works inside a container
PYTHON_BASE = "localhost/bithuman-test-python:bookworm"
NODE_BASE = "localhost/bithuman-test-node:bookworm"
IMAGE = "localhost/bithuman-livekit-agent:test"

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("IMAGE_TESTS") != "1",
        reason="builds the image with podman (about 8 minutes): set IMAGE_TESTS=1",
    ),
    pytest.mark.timeout(1800),
]


def _run(*command: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, text=True, capture_output=True, **kwargs)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{' '.join(command[:4])} ...: {done.stderr[-3000:]}"
    return done  # type: ignore[no-any-return]


def _import(rootfs: Path, name: str, *changes: str) -> None:
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    flags = [f"--change={change}" for change in changes]
    _run("podman", *STORAGE, "import", *flags, "-", name, stdin=tar.stdout)
    assert tar.wait() == 0


def _bases(workdir: Path) -> None:
    rootfs = workdir / "rootfs"
    _run(
        "debootstrap", "--variant=minbase",
        "--include=python3,python3-venv,python-is-python3,ca-certificates",
        "bookworm", str(rootfs), "http://deb.debian.org/debian",
    )  # fmt: skip
    # this machine's CA bundle: a proxy in the way re-signs TLS to PyPI and npm
    shutil.copy("/etc/ssl/certs/ca-certificates.crt", rootfs / "etc/ssl/certs/")
    _import(rootfs, PYTHON_BASE)
    node = Path(shutil.which("node") or "/usr/bin/node").resolve()
    npm = Path(shutil.which("npm") or "/usr/bin/npm").resolve().parents[1]  # .../node_modules/npm
    shutil.copy(node, rootfs / "usr/local/bin/node")
    shutil.copytree(npm, rootfs / "usr/local/lib/node_modules/npm", symlinks=True)
    (rootfs / "usr/local/bin/npm").symlink_to("../lib/node_modules/npm/bin/npm-cli.js")
    # Node.js ignores the system bundle unless told
    _import(rootfs, NODE_BASE, "ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt")


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    for tool in ("podman", "buildah", "debootstrap"):
        assert shutil.which(tool), f"{tool} is needed: apt-get install podman buildah debootstrap"
    _bases(tmp_path_factory.mktemp("image"))
    _run(
        "podman", *STORAGE, "build", "--isolation", "chroot", "--network", "host",
        "--format", "docker", "--build-arg", f"BASE={PYTHON_BASE}",
        "--build-arg", f"NODE_BASE={NODE_BASE}", "-t", IMAGE, str(ROOT),
    )  # fmt: skip
    yield IMAGE


def _healthcheck(image: str) -> list[str]:
    inspected = json.loads(_run("podman", *STORAGE, "image", "inspect", image).stdout)[0]
    test = inspected["Healthcheck"]["Test"]
    assert test[0] == "CMD", test
    return list(test[1:])


class Container:
    """A working container of the image; commands run in it by buildah's chroot isolation."""

    def __init__(self, image: str) -> None:
        self.name = _run("buildah", *STORAGE, "from", image).stdout.strip().splitlines()[-1]

    def command(self, *argv: str, env: dict[str, str] | None = None) -> list[str]:
        flags = [f"--env={k}={v}" for k, v in (env or {}).items()]
        return [
            "buildah", *STORAGE, "run", "--isolation", "chroot", "--network", "host",
            *flags, self.name, "--", *argv,
        ]  # fmt: skip

    def healthy(self, probe: list[str], within: float = 60) -> bool:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if subprocess.run(self.command(*probe), capture_output=True).returncode == 0:
                return True
            time.sleep(1)
        return False

    def remove(self) -> None:
        subprocess.run(["buildah", *STORAGE, "rm", self.name], capture_output=True)


def test_the_workers_healthcheck_passes_once_it_runs(
    image: str, livekit_server: LiveKitServer
) -> None:
    container = Container(image)
    port = free_port()
    env = livekit_server.env() | {
        "OPENAI_API_KEY": "sk-image-test",
        "AGENT_HTTP_PORT": str(port),
        "AGENT_IDLE_PROCESSES": "0",
    }
    worker = subprocess.Popen(container.command("python", "-m", "agent", "start", env=env))
    try:
        probe = _healthcheck(image)
        assert probe[:3] == ["python", "-m", "common.healthcheck"]
        assert container.healthy([*probe[:3], f"http://127.0.0.1:{port}/"], within=120)
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        container.remove()


def test_the_token_server_serves_tokens_and_the_page(
    image: str, livekit_server: LiveKitServer
) -> None:
    container = Container(image)
    port = free_port()
    env = livekit_server.env() | {"TOKEN_SERVER_PORT": str(port), "TOKEN_SERVER_HOST": "127.0.0.1"}
    server = subprocess.Popen(container.command("python", "-m", "token_server", env=env))
    try:
        probe = ["python", "-m", "common.healthcheck"]
        assert container.healthy([*probe, f"http://127.0.0.1:{port}/healthz"])
        assert container.healthy([*probe, f"http://127.0.0.1:{port}/"], within=5)  # the page
    finally:
        server.terminate()
        server.wait(timeout=30)
        container.remove()
