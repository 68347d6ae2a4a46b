"""`python -m bithuman_client dynamics AGENT_ID`, run as a subprocess against the bitHuman stub."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from devkit.bithuman_api import ACCOUNT_SECRET, BithumanStub, dynamics_path
from devkit.dynamics_standins import GESTURES, dynamics_body

REPO = Path(__file__).resolve().parents[2]
SECRET = ACCOUNT_SECRET  # what the stub accepts
A1 = dynamics_path("A1")


async def run_cli(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("BITHUMAN_")
    }
    environment.update(PYTHONPATH=str(REPO), **(env or {}))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bithuman_client",
        *args,
        cwd=tmp_path,  # no .env here
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def env_for(bithuman_api: BithumanStub) -> dict[str, str]:
    return {"BITHUMAN_API_SECRET": SECRET, "BITHUMAN_REST_URL": bithuman_api.url}


async def test_lists_the_gestures(bithuman_api: BithumanStub, tmp_path: Path) -> None:
    bithuman_api.answers[A1] = (200, dynamics_body({name: "https://x" for name in GESTURES}))
    code, out, err = await run_cli(tmp_path, "dynamics", "A1", env=env_for(bithuman_api))
    assert (code, err) == (0, "")
    assert out.splitlines() == ["A1: dynamics ready, 4 gestures", *(f"  {g}" for g in GESTURES)]
    assert [(r.path, r.headers.get("api-secret")) for r in bithuman_api.requests] == [(A1, SECRET)]


async def test_json_output(bithuman_api: BithumanStub, tmp_path: Path) -> None:
    bithuman_api.answers[A1] = (200, dynamics_body(list(GESTURES)))
    code, out, _ = await run_cli(tmp_path, "dynamics", "A1", "--json", env=env_for(bithuman_api))
    assert code == 0
    assert json.loads(out) == {
        "agent_id": "A1",
        "has_dynamics": True,
        "status": "ready",
        "gestures": GESTURES,
    }


async def test_an_avatar_without_dynamics(bithuman_api: BithumanStub, tmp_path: Path) -> None:
    bithuman_api.answers[A1] = (200, dynamics_body(None, url=None))
    code, out, _ = await run_cli(tmp_path, "dynamics", "A1", env=env_for(bithuman_api))
    assert (code, out) == (0, "A1: no dynamics (status: ready)\n")


async def test_api_errors_exit_1_without_leaking_the_secret(
    bithuman_api: BithumanStub, tmp_path: Path
) -> None:
    bithuman_api.answers[A1] = (401, {"error": "invalid api secret", "code": "UNAUTHORIZED"})
    code, out, err = await run_cli(tmp_path, "dynamics", "A1", env=env_for(bithuman_api))
    assert (code, out) == (1, "")
    assert "answered 401: invalid api secret" in err
    assert SECRET not in err


async def test_missing_secret_exits_2_with_one_line(tmp_path: Path) -> None:
    code, out, err = await run_cli(tmp_path, "dynamics", "A1")
    assert (code, out) == (2, "")
    assert err.strip().splitlines() == [
        "configuration error: BITHUMAN_API_SECRET is not set"
        " (copy it from https://imaginex.bithuman.ai/#developer)"
    ]
