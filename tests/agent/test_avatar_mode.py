"""AVATAR_MODE: auto infers the avatar from the BITHUMAN_* settings as before; an explicit mode
whose settings are missing stops `python -m agent` with one line and exit status 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.settings import (
    AgentSettings,
    AvatarMode,
    CloudAvatar,
    LocalAvatar,
    NoAvatar,
    PlaceholderFace,
)
from common.settings import EXIT_CONFIG_ERROR
from tests.agent.test_settings import GOOD, run_agent

SECRET = {"BITHUMAN_API_SECRET": "fake-bithuman-secret-0123"}


def settings(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> AgentSettings:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return AgentSettings(openai_api_key="sk-x", _env_file=None)  # type: ignore[arg-type,call-arg]


@pytest.mark.parametrize(
    ("env", "mode"),
    [
        ({}, AvatarMode.NONE),
        ({"AVATAR_MODE": ""}, AvatarMode.NONE),
        ({"AVATAR_MODE": "auto", **SECRET, "BITHUMAN_AVATAR_ID": "A1"}, AvatarMode.CLOUD_AGENT),
        ({"AVATAR_MODE": "placeholder"}, AvatarMode.PLACEHOLDER),
        ({"AVATAR_MODE": " Placeholder "}, AvatarMode.PLACEHOLDER),
        ({"AVATAR_MODE": "none", **SECRET, "BITHUMAN_AVATAR_ID": "A1"}, AvatarMode.NONE),
        # the BITHUMAN_* avatar values are ignored, even without a secret
        ({"AVATAR_MODE": "placeholder", "BITHUMAN_AVATAR_ID": "A1"}, AvatarMode.PLACEHOLDER),
        (
            {"AVATAR_MODE": "bithuman-cloud", **SECRET, "BITHUMAN_AVATAR_ID": "A1"},
            AvatarMode.CLOUD_AGENT,
        ),
        (
            {
                "AVATAR_MODE": "bithuman-cloud",
                **SECRET,
                "BITHUMAN_AVATAR_IMAGE": "https://example.com/face.png",
            },
            AvatarMode.CLOUD_IMAGE,
        ),
    ],
)
def test_avatar_mode_resolves(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], mode: AvatarMode
) -> None:
    assert settings(monkeypatch, env).avatar_mode is mode


def test_bithuman_local_uses_the_model_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "avatar.imx"
    model.write_bytes(b"imx")
    env = {"AVATAR_MODE": "bithuman-local", **SECRET, "BITHUMAN_MODEL_PATH": str(model)}
    assert settings(monkeypatch, env).avatar_mode is AvatarMode.LOCAL


def test_placeholder_keeps_the_short_process_init_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert settings(monkeypatch, {"AVATAR_MODE": "placeholder"}).process_init_timeout == 20.0


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"AVATAR_MODE": "bithuman-cloud", **SECRET},
            "AVATAR_MODE=bithuman-cloud needs BITHUMAN_AVATAR_ID or BITHUMAN_AVATAR_IMAGE",
        ),
        (
            {"AVATAR_MODE": "bithuman-local", **SECRET},
            "AVATAR_MODE=bithuman-local needs BITHUMAN_MODEL_PATH",
        ),
        (
            {"AVATAR_MODE": "bithuman-local", **SECRET, "BITHUMAN_AVATAR_ID": "A1"},
            "AVATAR_MODE=bithuman-local needs BITHUMAN_MODEL_PATH",
        ),
        (
            {"AVATAR_MODE": "bithuman-cloud", "BITHUMAN_AVATAR_ID": "A1"},
            "BITHUMAN_API_SECRET is required with BITHUMAN_AVATAR_ID",
        ),
        ({"AVATAR_MODE": "cartoon"}, "AVATAR_MODE is invalid: Input should be 'auto'"),
    ],
)
def test_an_explicit_mode_without_its_settings_is_one_line_and_exit_2(
    tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    result = run_agent(tmp_path, GOOD | env, "start")
    assert result.returncode == EXIT_CONFIG_ERROR, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("configuration error: ") and expected in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert SECRET["BITHUMAN_API_SECRET"] not in result.stderr + result.stdout


def test_the_resolved_avatar_carries_what_its_mode_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cloud = settings(
        monkeypatch, {**SECRET, "BITHUMAN_AVATAR_ID": "A1", "BITHUMAN_MODEL": "expression"}
    ).avatar
    assert isinstance(cloud, CloudAvatar)
    assert (cloud.avatar_id, cloud.avatar_image, cloud.model) == ("A1", None, "expression")
    assert cloud.api_secret.get_secret_value() == SECRET["BITHUMAN_API_SECRET"]

    model = tmp_path / "avatar.imx"
    model.write_bytes(b"imx")
    monkeypatch.delenv("BITHUMAN_AVATAR_ID")
    monkeypatch.delenv("BITHUMAN_MODEL")
    local = settings(monkeypatch, {"BITHUMAN_MODEL_PATH": str(model)}).avatar
    assert local == LocalAvatar(model_path=model, api_secret=cloud.api_secret)

    assert isinstance(settings(monkeypatch, {"AVATAR_MODE": "none"}).avatar, NoAvatar)
    assert isinstance(settings(monkeypatch, {"AVATAR_MODE": "placeholder"}).avatar, PlaceholderFace)


def test_livekit_credentials_only_when_all_three_are_set(monkeypatch: pytest.MonkeyPatch) -> None:
    partial = {"LIVEKIT_URL": "ws://127.0.0.1:7880", "LIVEKIT_API_KEY": "devkey"}
    assert settings(monkeypatch, partial).livekit is None
    full = settings(monkeypatch, {"LIVEKIT_API_SECRET": "secret"}).livekit
    assert full is not None
    assert (full.url, full.api_key, full.api_secret.get_secret_value()) == (
        "ws://127.0.0.1:7880",
        "devkey",
        "secret",
    )
