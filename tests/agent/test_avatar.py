"""The avatar's prewarm. Starting, joining, falling back and leaving run against the real LiveKit
server: tests/e2e/test_cloud_avatar.py."""

from __future__ import annotations

import logging

import pytest

from agent.avatar import prewarm_avatar
from agent.settings import AgentSettings
from devkit.bithuman_api import ACCOUNT_SECRET


def test_prewarm_routes_the_bithuman_sdk_logs_into_ours(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from loguru import logger as loguru_logger

    settings = AgentSettings(
        _env_file=None,  # type: ignore[call-arg]
        openai_api_key="sk-test",
        bithuman_api_secret=ACCOUNT_SECRET,
        bithuman_avatar_id="A12BCD3456",
    )
    assert prewarm_avatar(settings.avatar) is None  # a cloud avatar has no runtime to load
    with caplog.at_level(logging.INFO):
        loguru_logger.warning("runtime token refresh failed")
    (record,) = [r for r in caplog.records if r.name == "bithuman"]
    assert record.levelno == logging.WARNING
    assert record.getMessage() == "runtime token refresh failed"
