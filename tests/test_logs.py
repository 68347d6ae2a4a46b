"""The shared log pipeline: one JSON line per record, secrets masked wherever they appear."""

from __future__ import annotations

import io
import json
import logging
import sys
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
    logs.register_secrets(["fake_registered_secret_value"])
    log = logs.get_logger("tests.logs")
    log.info(
        "call",
        api_key="fake-api-key-123456",
        scoped_token="abc.def.ghi",
        input_tokens=42,
        url="https://x/?secret=fake_registered_secret_value",
        headers={"Authorization": "Bearer zzz", "Accept": "json"},
    )
    logging.getLogger("aiohttp").error("failed with fake_registered_secret_value inside")
    ours, foreign = lines(captured)
    text = captured.getvalue()
    assert "fake-api-key-123456" not in text and "abc.def.ghi" not in text and "zzz" not in text
    assert "fake_registered_secret_value" not in text
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


def _raise(message: str) -> None:
    raise RuntimeError(message)


def test_exception_text_is_masked_for_structlog_and_stdlib_records(captured: io.StringIO) -> None:
    logs.register_secrets(["fake_registered_secret_value"])
    try:
        _raise("auth failed for fake_registered_secret_value at https://h/?access_token=abc.def")
    except RuntimeError:
        logs.get_logger("tests.logs").exception("call failed")
        logging.getLogger("aiohttp").exception("stdlib call failed")
    ours, foreign = lines(captured)
    assert "fake_registered_secret_value" not in captured.getvalue()
    assert "abc.def" not in captured.getvalue()
    for line in (ours, foreign):
        exception = str(line["exception"])
        assert "RuntimeError: auth failed for *** at https://h/?access_token=***" in exception
        assert "Traceback" in exception


def test_a_record_formatted_after_its_except_block_keeps_its_traceback(
    captured: io.StringIO,
) -> None:
    # Records can be formatted later (queue handlers, job processes): the exception travels
    # in record.exc_info, which the masking must leave intact.
    try:
        _raise("late fake_secret_abcdefgh")
    except RuntimeError:
        info = sys.exc_info()
    logs.register_secrets(["fake_secret_abcdefgh"])
    record = logging.LogRecord("aiohttp", logging.ERROR, __file__, 1, "late", None, info)
    logging.getLogger("aiohttp").handle(record)
    (line,) = lines(captured)
    assert "RuntimeError: late ***" in str(line["exception"])


@pytest.mark.parametrize(
    ("text", "leaked"),
    [
        ("GET https://lk.example/rtc?access_token=eyJhbGciOi.payload.sig&x=1", "payload.sig"),
        ("wss://lk.example/rtc?auto_subscribe=1&token=s3cr3t-token-value", "s3cr3t-token-value"),
        ("POST /hook?jwt=aaa.bbb.ccc", "aaa.bbb.ccc"),
        ("retry with api_key=fake-key-for-tests later", "fake-key-for-tests"),
        ("headers {'api-secret': 'fake-secret-for-tests'}", "fake-secret-for-tests"),
        ("sent Authorization: Bearer opaque-credential-123", "opaque-credential-123"),
        ("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.c2lnbmF0dXJl issued", "c2lnbmF0dXJl"),
    ],
)
def test_credentials_in_free_text_are_masked(captured: io.StringIO, text: str, leaked: str) -> None:
    logs.get_logger("tests.logs").info(text, url=text, nested={"note": text})
    logging.getLogger("livekit").warning("%s", text)
    assert leaked not in captured.getvalue()
    assert "***" in captured.getvalue()


def test_keys_named_jwt_or_token_are_masked_but_counts_are_not(captured: io.StringIO) -> None:
    logs.get_logger("tests.logs").info(
        "minted",
        jwt="opaque",
        livekit_jwt="opaque",
        payload={"jwt": "opaque", "access-token": "opaque", "Cookie": "sid=opaque"},
        output_tokens=7,
        token_count=3,
    )
    (line,) = lines(captured)
    assert "opaque" not in captured.getvalue()
    assert line["jwt"] == "***" and line["livekit_jwt"] == "***"
    assert line["output_tokens"] == 7 and line["token_count"] == 3


def test_ordinary_text_is_left_alone(captured: io.StringIO) -> None:
    text = "token issued for room demo (3 tokens, key rotation at 10:00, basic plan)"
    logs.get_logger("tests.logs").info(text, path="/token?room=demo")
    (line,) = lines(captured)
    assert line["message"] == text and line["path"] == "/token?room=demo"
