"""`python -m agent doctor` against the real LiveKit server, the OpenAI and bitHuman stand-ins and
a webhook receiver: every check passing, then each one failing on its own with its fix, and the
command as a user runs it (a folder with a written `.env`)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from agent.doctor import FAIL, OK, SKIP, Line, run_checks
from devkit.bithuman_api import AgentJob, BithumanStub, status_path
from devkit.harness import OUR_VARIABLES, free_port, write_env
from devkit.livekit_server import LiveKitServer
from devkit.openai_realtime import FakeRealtimeServer
from tests.system import portaudio_fixture  # noqa: F401

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
OPENAI_KEY = "sk-doctor-never-printed-0123456789"
AVATAR_ID = "A12345678"
NETWORK_CHECKS = ("LiveKit", "OpenAI", "bitHuman", "webhook")
SECRETS = ("LIVEKIT_API_SECRET", "OPENAI_API_KEY", "BITHUMAN_API_SECRET")


@pytest_asyncio.fixture(name="receiver")
async def receiver_fixture() -> AsyncIterator[str]:
    """A webhook receiver: POST only, as bitHuman's receivers are (doctor's HEAD gets a 405)."""

    async def receive(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post("/hook", receive)
    async with TestServer(app, port=0) as server:
        yield str(server.make_url("/hook"))


@pytest.fixture(name="good")
def good_fixture(
    livekit_server: LiveKitServer,
    realtime_server: FakeRealtimeServer,
    bithuman_api: BithumanStub,
    receiver: str,
) -> dict[str, str]:
    """Settings under which every check passes."""
    bithuman_api.known_agents.add(AVATAR_ID)
    return {
        **livekit_server.env(),
        "OPENAI_API_KEY": OPENAI_KEY,
        "OPENAI_BASE_URL": realtime_server.base_url,
        "BITHUMAN_API_SECRET": bithuman_api.secret,
        "BITHUMAN_REST_URL": bithuman_api.url,
        "BITHUMAN_AVATAR_ID": AVATAR_ID,
        "WEBHOOK_URLS": receiver,
        "WEBHOOK_ALLOW_HTTP": "true",
    }


async def doctor(folder: Path, settings: dict[str, str], within: float = 5.0) -> dict[str, Line]:
    """The checks, in-process, in `folder` (the test's working directory) with this `.env`."""
    write_env(folder, settings)
    return {line.name: line for line in await run_checks(within)}


def secrets_of(settings: dict[str, str]) -> list[str]:
    return [settings[name] for name in SECRETS if settings[name]]


async def test_every_check_passes(tmp_path: Path, good: dict[str, str]) -> None:
    lines = await doctor(tmp_path, good)
    assert list(lines) == ["settings", *NETWORK_CHECKS, "PortAudio"]  # in this order
    for name in ("settings", *NETWORK_CHECKS):
        assert lines[name].mark == OK, lines[name].render()
    assert f"accepted key {good['LIVEKIT_API_KEY']}" in lines["LiveKit"].text
    assert "…6789 at" in lines["OpenAI"].text  # the key's last four characters only
    assert f"avatar {AVATAR_ID} is ready" in lines["bitHuman"].text
    assert "HTTP 405 to HEAD" in lines["webhook"].text


def wrong_livekit_secret(_: BithumanStub, __: FakeRealtimeServer) -> dict[str, str]:
    return {"LIVEKIT_API_SECRET": "not-the-secret-of-this-server-0123456789"}


def incomplete_livekit(_: BithumanStub, __: FakeRealtimeServer) -> dict[str, str]:
    return {"LIVEKIT_API_SECRET": ""}


def unreachable_livekit(_: BithumanStub, __: FakeRealtimeServer) -> dict[str, str]:
    return {"LIVEKIT_URL": f"ws://127.0.0.1:{free_port()}"}


def refused_openai_key(_: BithumanStub, realtime: FakeRealtimeServer) -> dict[str, str]:
    realtime.script.api_key = "sk-the-only-key-the-stand-in-takes"
    return {}


def unreachable_openai(_: BithumanStub, __: FakeRealtimeServer) -> dict[str, str]:
    return {"OPENAI_BASE_URL": f"http://127.0.0.1:{free_port()}/v1"}


def refused_bithuman_secret(_: BithumanStub, __: FakeRealtimeServer) -> dict[str, str]:
    return {"BITHUMAN_API_SECRET": "not-the-account-secret-0123456789"}


def unknown_avatar(_: BithumanStub, __: FakeRealtimeServer) -> dict[str, str]:
    return {"BITHUMAN_AVATAR_ID": "A00000000"}


def failed_avatar(stub: BithumanStub, _: FakeRealtimeServer) -> dict[str, str]:
    stub.generated["A00000001"] = AgentJob("A00000001", {}, ("failed",))
    return {"BITHUMAN_AVATAR_ID": "A00000001"}


def generating_avatar(stub: BithumanStub, _: FakeRealtimeServer) -> dict[str, str]:
    stub.generated["A00000002"] = AgentJob("A00000002", {}, ("processing",))
    return {"BITHUMAN_AVATAR_ID": "A00000002"}


def webhook_down(_: BithumanStub, __: FakeRealtimeServer) -> dict[str, str]:
    return {"WEBHOOK_URLS": f"http://127.0.0.1:{free_port()}/hook"}


Breakage = Callable[[BithumanStub, FakeRealtimeServer], dict[str, str]]


@pytest.mark.parametrize(
    ("break_it", "failing", "says", "fix"),
    [
        (wrong_livekit_secret, "LiveKit", "refused key test-", "LIVEKIT_API_SECRET to a pair"),
        (incomplete_livekit, "LiveKit", "LIVEKIT_API_SECRET not set", "devkey/secret"),
        (unreachable_livekit, "LiveKit", "cannot reach ws://127.0.0.1:", "fix LIVEKIT_URL"),
        (refused_openai_key, "OpenAI", "refused (401 invalid_api_key)", "platform.openai.com"),
        (unreachable_openai, "OpenAI", "cannot reach http://127.0.0.1:", "OPENAI_BASE_URL"),
        (refused_bithuman_secret, "bitHuman", "refused (401 UNAUTHORIZED)", "imaginex.bithuman"),
        (unknown_avatar, "bitHuman", "accepted, but no avatar A00000000", "BITHUMAN_AVATAR_ID"),
        (failed_avatar, "bitHuman", "avatar A00000001 failed to generate", "generate it again"),
        (generating_avatar, "bitHuman", "not ready yet (processing)", "agent status A00000002"),
        (webhook_down, "webhook", "http://127.0.0.1/... does not answer", "WEBHOOK_URLS"),
    ],
)
async def test_each_failure_is_one_line_with_its_fix(
    tmp_path: Path,
    good: dict[str, str],
    bithuman_api: BithumanStub,
    realtime_server: FakeRealtimeServer,
    break_it: Breakage,
    failing: str,
    says: str,
    fix: str,
) -> None:
    settings = good | break_it(bithuman_api, realtime_server)
    lines = await doctor(tmp_path, settings)
    line = lines[failing]
    assert line.mark == FAIL and says in line.text and fix in line.fix, line.render()
    for name in ("settings", *NETWORK_CHECKS):  # each check stands on its own
        if name != failing:
            assert lines[name].mark == OK, lines[name].render()
    shown = "\n".join(line.render() for line in lines.values())
    for secret in secrets_of(settings):
        assert secret not in shown


async def test_bad_settings_skip_the_checks_that_need_them(
    tmp_path: Path, good: dict[str, str]
) -> None:
    lines = await doctor(tmp_path, good | {"OPENAI_API_KEY": " "})
    assert lines["settings"].mark == FAIL
    assert "OPENAI_API_KEY is not set" in lines["settings"].text and lines["settings"].fix
    for name in ("LiveKit", "OpenAI", "bitHuman"):
        assert lines[name].mark == SKIP and "settings did not load" in lines[name].text
    assert lines["webhooks"].mark == SKIP


async def test_unset_services_are_skipped_not_failed(
    tmp_path: Path, realtime_server: FakeRealtimeServer
) -> None:
    write_env(tmp_path, {"OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": realtime_server.base_url})
    lines = {line.name: line for line in await run_checks(5.0)}
    assert lines["OpenAI"].mark == OK
    assert lines["LiveKit"].mark == SKIP and "scripts/run-agent.sh dev" in lines["LiveKit"].text
    assert lines["bitHuman"].mark == SKIP and lines["webhooks"].mark == SKIP


async def test_the_avatar_that_renders_is_the_one_checked(
    tmp_path: Path, good: dict[str, str]
) -> None:
    # a cloud avatar with another agent's gestures: its own id is what must exist
    lines = await doctor(tmp_path, good | {"BITHUMAN_AGENT_ID": "A99UNKNOWN9"})
    assert lines["bitHuman"].mark == OK, lines["bitHuman"].render()
    assert f"avatar {AVATAR_ID} is ready" in lines["bitHuman"].text
    # no bitHuman avatar in use: the secret is not checked, whatever else is set
    lines = await doctor(tmp_path, good | {"AVATAR_MODE": "placeholder"})
    assert lines["bitHuman"].mark == SKIP and "placeholder" in lines["bitHuman"].text


async def test_a_slow_service_fails_within_the_timeout(
    tmp_path: Path, good: dict[str, str], bithuman_api: BithumanStub
) -> None:
    bithuman_api.delays[status_path(AVATAR_ID)] = 10
    started = time.monotonic()
    lines = await doctor(tmp_path, good, within=1.0)
    assert time.monotonic() - started < 5
    assert lines["bitHuman"].mark == FAIL and "TimeoutError" in lines["bitHuman"].text


async def run_doctor(folder: Path, *, pythonpath: str = str(ROOT)) -> tuple[int, str]:
    """`python -m agent doctor` in `folder`, none of our settings exported: it reads `.env`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(OUR_VARIABLES)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent", "doctor", "--timeout", "5", cwd=folder,
        env=env | {"PYTHONPATH": pythonpath}, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    async with asyncio.timeout(60):
        output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode()


@pytest.mark.usefixtures("portaudio")
async def test_the_command_passes_with_a_good_dotenv(tmp_path: Path, good: dict[str, str]) -> None:
    write_env(tmp_path, good)
    status, output = await run_doctor(tmp_path)
    assert status == 0, output
    lines = output.strip().splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == [
        f"{OK} {name}" for name in ("settings", *NETWORK_CHECKS, "PortAudio")
    ], output
    assert lines[-1] == "all checks passed"
    assert "Warning" not in output  # PyJWT's short-key warning included
    for secret in secrets_of(good):
        assert secret not in output


async def test_the_command_fails_with_a_refused_key_and_no_portaudio(
    tmp_path: Path, good: dict[str, str], realtime_server: FakeRealtimeServer
) -> None:
    realtime_server.script.api_key = "sk-the-only-key-the-stand-in-takes"
    # sounddevice's own failure when its PortAudio lookup finds nothing, first on the path
    shim = tmp_path / "no-portaudio"
    shim.mkdir()
    (shim / "sounddevice.py").write_text('raise OSError("PortAudio library not found")\n')
    write_env(tmp_path, good)
    status, output = await run_doctor(tmp_path, pythonpath=f"{shim}{os.pathsep}{ROOT}")
    assert status == 1, output
    lines = output.strip().splitlines()
    failed = [line for line in lines if line.startswith(FAIL)]
    assert len(failed) == 2, output
    assert failed[0].startswith(f"{FAIL} OpenAI: OPENAI_API_KEY …6789 at http://127.0.0.1:")
    assert "→ create one at https://platform.openai.com/api-keys" in failed[0]
    assert failed[1].startswith(f"{FAIL} PortAudio: not found (PortAudio library not found)")
    assert "apt-get install libportaudio2" in failed[1]
    assert lines[-1] == "2 problems found"
    assert "Traceback" not in output
    for secret in secrets_of(good):
        assert secret not in output
