"""Fixtures for the receiver tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.webhook_receiver.harness import Harness, recording_harness


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    """A receiver app (see harness.py), closed after the test."""
    h = recording_harness(tmp_path)
    yield h
    if h.client is not None:
        await h.client.close()
