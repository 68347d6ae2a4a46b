"""docker-compose.yml as a user edits it: `.env` can override every service's settings, and the
LiveKit and Redis containers stay out when the user brings their own."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ("agent", "token-server")


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_every_setting_given_in_compose_defers_to_dotenv() -> None:
    for name in APP_SERVICES:
        service = compose()["services"][name]
        assert service["env_file"] == [{"path": ".env", "required": False}]
        for variable, value in service["environment"].items():
            # ${VAR:-default} or ${VAR-default}, naming the variable it sets
            assert re.fullmatch(rf"\$\{{{variable}:?-[^}}]*\}}", str(value)), (name, variable)


def test_livekit_and_redis_are_optional() -> None:
    services = compose()["services"]
    for name in ("livekit", "redis"):
        assert services[name]["profiles"] == ["local"]
    for name in APP_SERVICES:
        for dependency in services[name]["depends_on"].values():
            assert dependency["required"] is False
    example = (ROOT / ".env.example").read_text()
    assert re.search(r"^COMPOSE_PROFILES=local$", example, re.MULTILINE)


def test_every_app_service_has_a_healthcheck_with_the_image_probe() -> None:
    for name in APP_SERVICES:
        test = compose()["services"][name]["healthcheck"]["test"]
        assert test[:4] == ["CMD", "python", "-m", "common.healthcheck"], name
