from __future__ import annotations

import logging

import pytest


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Our structlog lines as stdlib records (tests/conftest.py set the pipeline up)."""
    caplog.set_level(logging.DEBUG, logger="agent.dynamics")
    return caplog


def lines(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> list[str]:
    """Messages of our own log lines at `level` or above."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= level and r.name.startswith("agent.dynamics")
    ]
