"""What the embedded local stack hands its services (agent/local_stack.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.local_stack import child_environments, effective_settings


def test_env_wins_over_dotenv_and_blank_means_unset(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("AVATAR_MODE=none\nBITHUMAN_AVATAR_ID=\nTOKEN_SERVER_PORT=4000\n")
    settings = effective_settings({"AVATAR_MODE": "bithuman-cloud"}, dotenv)
    assert settings["AVATAR_MODE"] == "bithuman-cloud"
    assert settings["TOKEN_SERVER_PORT"] == "4000"
    assert "BITHUMAN_AVATAR_ID" not in settings


def test_no_avatar_configured_gives_the_placeholder_face() -> None:
    extra = child_environments({"OPENAI_API_KEY": "sk-x"}, 7880)
    assert extra["AVATAR_MODE"] == "placeholder"
    assert extra["LIVEKIT_URL"] == "ws://127.0.0.1:7880"
    assert extra["TOKEN_SERVER_HOST"] == "127.0.0.1"  # the page and tokens stay on this machine


@pytest.mark.parametrize(
    "setting",
    [
        {"AVATAR_MODE": "none"},
        {"BITHUMAN_AVATAR_ID": "A12BCD3456"},
        {"BITHUMAN_AVATAR_IMAGE": "face.jpg"},
        {"BITHUMAN_MODEL_PATH": "model.imx"},
    ],
)
def test_a_chosen_avatar_is_left_alone(setting: dict[str, str]) -> None:
    assert "AVATAR_MODE" not in child_environments(setting, 7880)


def test_the_users_load_threshold_and_host_win() -> None:
    extra = child_environments({"AGENT_LOAD_THRESHOLD": "0.9", "TOKEN_SERVER_HOST": "0.0.0.0"}, 1)
    assert extra["AGENT_LOAD_THRESHOLD"] == "0.9"
    assert extra["TOKEN_SERVER_HOST"] == "0.0.0.0"
