"""Bad configuration stops `python -m agent` with one readable line and exit status 2."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from agent.settings import AgentSettings, AvatarMode
from common.settings import EXIT_CONFIG_ERROR, describe_error

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
        (GOOD | {"AGENT_MAX_SESSIONS": "-1"}, ("start",), "AGENT_MAX_SESSIONS is invalid"),
        (GOOD | {"AGENT_JOB_EXECUTOR": "fork"}, ("start",), "AGENT_JOB_EXECUTOR is invalid"),
        (GOOD | {"AGENT_LOCAL_VAD": "maybe"}, ("start",), "AGENT_LOCAL_VAD is invalid"),
        (
            GOOD | {"AGENT_LOOP_BLOCK_WARN_MS": "-5"},
            ("start",),
            "AGENT_LOOP_BLOCK_WARN_MS is invalid",
        ),
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
    monkeypatch.setenv("BITHUMAN_API_SECRET", "fake-bithuman-secret")
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
    monkeypatch.setenv("BITHUMAN_API_SECRET", "fake-bithuman-secret")
    settings = AgentSettings(openai_api_key="sk-x", _env_file=None)  # type: ignore[arg-type,call-arg]
    assert settings.avatar_mode is AvatarMode.LOCAL
    assert settings.process_init_timeout >= 60
    monkeypatch.setenv("AGENT_INIT_TIMEOUT", "15")
    assert AgentSettings(openai_api_key="sk-x", _env_file=None).process_init_timeout == 15  # type: ignore[arg-type,call-arg]


# A portrait's bytes: only the PNG signature matters to the settings (and to the plugin).
PORTRAIT = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 600  # about 150 KB
PORTRAIT_B64 = base64.b64encode(PORTRAIT).decode()
LONG_SECRET = "a-livekit-secret-of-at-least-32-bytes"  # no HS256 key-length warning on stderr


def avatar_image_settings(monkeypatch: pytest.MonkeyPatch, value: str) -> AgentSettings:
    monkeypatch.setenv("BITHUMAN_API_SECRET", "fake-bithuman-secret")
    monkeypatch.setenv("BITHUMAN_AVATAR_IMAGE", value)
    return AgentSettings(openai_api_key="sk-x", _env_file=None)  # type: ignore[arg-type,call-arg]


def test_avatar_image_accepts_a_file_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    portrait = tmp_path / "face.png"
    portrait.write_bytes(PORTRAIT)
    settings = avatar_image_settings(monkeypatch, str(portrait))
    assert settings.bithuman_avatar_image == str(portrait)
    assert settings.avatar_mode is AvatarMode.CLOUD_IMAGE


def test_avatar_image_accepts_a_url(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "https://cdn.example.com/portraits/face.jpg?v=2"
    assert avatar_image_settings(monkeypatch, url).bithuman_avatar_image == url


@pytest.mark.parametrize(
    "value",
    [
        PORTRAIT_B64,  # far beyond any file name's length
        "\n".join(PORTRAIT_B64[i : i + 76] for i in range(0, len(PORTRAIT_B64), 76)) + "\n",
        "data:image/png;base64," + PORTRAIT_B64,
        base64.b64encode(b"\xff\xd8\xff\xe0" + b"\x00" * 5000).decode(),  # JPEG, ~6.7 KB
    ],
    ids=["bare", "wrapped", "data-uri", "jpeg"],
)
def test_avatar_image_accepts_large_base64_portraits(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    settings = avatar_image_settings(monkeypatch, value)
    assert settings.avatar_mode is AvatarMode.CLOUD_IMAGE
    # passed on as bare base64, the one form the bitHuman plugin accepts besides path and URL
    assert base64.b64decode(settings.bithuman_avatar_image or "", validate=True)[:4] in (
        PORTRAIT[:4],
        b"\xff\xd8\xff\xe0",
    )


@pytest.mark.parametrize(
    "value",
    ["missing-portrait.png", "portrait", "A" * 8000, "data:image/png,not-base64", "face\x00.png"],
    ids=["missing-file", "base64-looking-name", "long-non-image", "data-uri-no-base64", "nul"],
)
def test_avatar_image_that_is_none_of_the_three_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("BITHUMAN_API_SECRET", "fake-bithuman-secret")
    monkeypatch.setenv("BITHUMAN_AVATAR_IMAGE", value.replace("\x00", ""))
    if "\x00" in value:  # an environment cannot carry NUL: check the validator directly
        with pytest.raises(ValueError, match="neither an http"):
            AgentSettings._image_is_path_url_or_base64(value)
        return
    with pytest.raises(ValidationError) as info:
        AgentSettings(openai_api_key="sk-x", _env_file=None)  # type: ignore[arg-type,call-arg]
    line = describe_error(AgentSettings, info.value)
    assert "BITHUMAN_AVATAR_IMAGE is invalid" in line and "\n" not in line
    assert len(line) < 400, "a long value is not echoed whole"


def test_a_long_non_image_avatar_value_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    # Before: `File name too long` from the path check, as a traceback.
    env = GOOD | {"BITHUMAN_API_SECRET": "x" * 20, "BITHUMAN_AVATAR_IMAGE": "QUFB" * 2000}
    env["LIVEKIT_API_SECRET"] = LONG_SECRET
    result = run_agent(tmp_path, env, "start")
    assert result.returncode == EXIT_CONFIG_ERROR, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "BITHUMAN_AVATAR_IMAGE is invalid" in line and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "content",
    [b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", b"persona\x00\x00\x00"],
    ids=["not-utf8", "nul-bytes"],
)
def test_a_binary_prompt_file_prints_one_line_and_exits_2(tmp_path: Path, content: bytes) -> None:
    prompt = tmp_path / "persona.png"
    prompt.write_bytes(content)
    env = GOOD | {"AGENT_PROMPT_FILE": str(prompt), "LIVEKIT_API_SECRET": LONG_SECRET}
    result = run_agent(tmp_path, env, "start")
    assert result.returncode == EXIT_CONFIG_ERROR, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line == (
        f"configuration error: AGENT_PROMPT_FILE {prompt} is not UTF-8 text "
        "(set AGENT_PROMPT or point AGENT_PROMPT_FILE at a text file)"
    )
    assert "Traceback" not in result.stderr + result.stdout
