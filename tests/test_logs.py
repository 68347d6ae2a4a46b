"""The shared log pipeline: one JSON line per record, secrets masked wherever they appear."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from common import logs


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """JSON lines of the root logger; the logger level and the masked secrets are restored."""
    monkeypatch.setattr(logs, "_secrets", set())
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.formatter(json=True))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_structlog_and_stdlib_lines_share_one_json_shape(captured: io.StringIO) -> None:
    logs.get_logger("tests.logs").info("hello", room="r1", count=3)
    logging.getLogger("livekit.agents").warning("foreign %s", "line", extra={"job_id": "AJ_1"})
    ours, foreign = lines(captured)
    # livekit's own JSON field names, so its start-up lines and ours share one schema
    assert ours["message"] == "hello" and ours["room"] == "r1" and ours["count"] == 3
    assert ours["level"] == "INFO" and ours["name"] == "tests.logs" and "timestamp" in ours
    assert foreign["message"] == "foreign line" and foreign["job_id"] == "AJ_1"
    assert foreign["name"] == "livekit.agents" and foreign["level"] == "WARNING"


def test_secrets_are_masked_by_key_and_by_value(captured: io.StringIO) -> None:
    logs.register_secrets(["sk_bh_registered_secret_value"])
    log = logs.get_logger("tests.logs")
    log.info(
        "call",
        api_key="sk-live-123456",
        scoped_token="abc.def.ghi",
        input_tokens=42,
        url="https://x/?secret=sk_bh_registered_secret_value",
        headers={"Authorization": "Bearer zzz", "Accept": "json"},
    )
    logging.getLogger("aiohttp").error("failed with sk_bh_registered_secret_value inside")
    ours, foreign = lines(captured)
    text = captured.getvalue()
    assert "sk-live-123456" not in text and "abc.def.ghi" not in text and "zzz" not in text
    assert "sk_bh_registered_secret_value" not in text
    assert ours["api_key"] == "***" and ours["scoped_token"] == "***"
    assert ours["input_tokens"] == 42, "counts named *_tokens are not secrets"
    assert ours["headers"] == {"Authorization": "***", "Accept": "json"}
    assert foreign["message"] == "failed with *** inside"


def test_records_forwarded_from_job_processes_keep_one_message(captured: io.StringIO) -> None:
    # livekit's job processes send records whose `message` attribute is already filled in
    record = logging.LogRecord("livekit.agents", logging.INFO, __file__, 1, "job done", None, None)
    record.message = record.msg
    record.job_id = "AJ_2"
    logging.getLogger("livekit.agents").handle(record)
    (line,) = lines(captured)
    assert line["message"] == "job done" and line["job_id"] == "AJ_2"
    formatted = logs.formatter(json=False).format(record)
    assert formatted.count("job done") == 1
