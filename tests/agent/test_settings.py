"""Bad configuration stops `python -m agent` with one readable line and exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.settings import AgentSettings, AvatarMode
from common.settings import EXIT_CONFIG_ERROR

ROOT = Path(__file__).resolve().parents[2]
GOOD = {
    "OPENAI_API_KEY": "sk-test-0123456789",
    "LIVEKIT_URL": "ws://127.0.0.1:7880",
    "LIVEKIT_API_KEY": "devkey",
    "LIVEKIT_API_SECRET": "secret-secret-secret",
    "AGENT_PROMPT_FILE": str(ROOT / "config" / "persona.md"),
}


def run_agent(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI in an empty directory (no .env) with only `env` set."""
    clean = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        cwd=tmp_path,
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def drop(*names: str) -> dict[str, str]:
    return {k: v for k, v in GOOD.items() if k not in names}


@pytest.mark.parametrize(
    ("env", "args", "expected"),
    [
        (drop("OPENAI_API_KEY"), ("start",), "OPENAI_API_KEY is not set (create one at https://"),
        (drop("LIVEKIT_URL", "LIVEKIT_API_SECRET"), ("start",), "LIVEKIT_URL, LIVEKIT_API_SECRET"),
        (GOOD | {"LIVEKIT_URL": "localhost"}, ("dev",), "LIVEKIT_URL is invalid"),
        (GOOD | {"AGENT_LOAD_THRESHOLD": "lots"}, ("start",), "AGENT_LOAD_THRESHOLD is invalid"),
        (GOOD | {"BITHUMAN_AVATAR_ID": "A1"}, ("start",), "BITHUMAN_API_SECRET is required"),
        (
            GOOD | {"BITHUMAN_API_SECRET": "x" * 20, "BITHUMAN_MODEL": "essence-3"},
            ("start",),
            "BITHUMAN_MODEL is invalid",
        ),
        (
            GOOD
            | {
                "BITHUMAN_API_SECRET": "x" * 20,
                "BITHUMAN_AVATAR_ID": "A1",
                "BITHUMAN_AVATAR_IMAGE": "https://example.com/face.jpg",
            },
            ("start",),
            "set only one of BITHUMAN_AVATAR_ID and BITHUMAN_AVATAR_IMAGE",
        ),
        (GOOD | {"AGENT_PROMPT_FILE": "/nonexistent.md"}, ("start",), "AGENT_PROMPT_FILE"),
        (drop("OPENAI_API_KEY"), ("console", "--text"), "OPENAI_API_KEY is not set"),
    ],
)
def test_bad_settings_print_one_line_and_exit_2(
    tmp_path: Path, env: dict[str, str], args: tuple[str, ...], expected: str
) -> None:
    result = run_agent(tmp_path, env, *args)
    assert result.returncode == EXIT_CONFIG_ERROR, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("configuration error: ") and expected in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    for secret in ("sk-test-0123456789", "secret-secret-secret", "x" * 20):
        assert secret not in result.stderr + result.stdout


def test_console_needs_no_livekit_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"):
        monkeypatch.delenv(name, raising=False)
    settings = AgentSettings(openai_api_key="sk-x", _env_file=None)  # type: ignore[arg-type,call-arg]
    assert settings.livekit_url is None
    with pytest.raises(SystemExit) as info:
        settings.require_livekit()
    assert info.value.code == EXIT_CONFIG_ERROR


@pytest.mark.parametrize(
    ("env", "mode"),
    [
        ({}, AvatarMode.NONE),
        ({"BITHUMAN_AVATAR_ID": "A1"}, AvatarMode.CLOUD_AGENT),
        ({"BITHUMAN_AVATAR_IMAGE": "https://example.com/face.png"}, AvatarMode.CLOUD_IMAGE),
        ({"BITHUMAN_AVATAR_ID": "   "}, AvatarMode.NONE),
    ],
)
def test_avatar_mode_follows_the_settings(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], mode: AvatarMode
) -> None:
    monkeypatch.setenv("BITHUMAN_API_SECRET", "sk_bh_test")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = AgentSettings(openai_api_key="sk-x", _env_file=None)  # type: ignore[arg-type,call-arg]
    assert settings.avatar_mode is mode


def test_local_model_file_gets_a_long_process_init_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "avatar.imx"
    model.write_bytes(b"imx")
    monkeypatch.setenv("BITHUMAN_MODEL_PATH", str(model))
    monkeypatch.setenv("BITHUMAN_API_SECRET", "sk_bh_test")
    settings = AgentSettings(openai_api_key="sk-x", _env_file=None)  # type: ignore[arg-type,call-arg]
    assert settings.avatar_mode is AvatarMode.LOCAL
    assert settings.process_init_timeout >= 60
    monkeypatch.setenv("AGENT_INIT_TIMEOUT", "15")
    assert AgentSettings(openai_api_key="sk-x", _env_file=None).process_init_timeout == 15  # type: ignore[arg-type,call-arg]
