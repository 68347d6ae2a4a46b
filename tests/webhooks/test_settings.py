"""WebhookSettings: HTTPS enforcement, list parsing, header rules, readable config errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from common.settings import load_settings
from tests.conftest import settings_of
from webhook_receiver.settings import ReceiverSettings
from webhooks.settings import WebhookSettings


def test_off_without_urls() -> None:
    settings = WebhookSettings()
    assert not settings.enabled
    assert settings.retry_delays == [1.0, 5.0, 30.0]
    assert settings.retry_schedule[:10] == (1, 5, 30, 60, 120, 240, 480, 960, 1920, 3600)
    assert sum(settings.retry_schedule[3:]) == 24 * 3600  # slow retries for a day
    assert max(settings.retry_schedule) == 3600 and settings.attempts == 33
    assert settings.timeout == 30.0


def test_environment_lists_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_URLS", "https://a.example/hook, https://b.example/x?k=1")
    monkeypatch.setenv("WEBHOOK_RETRY_DELAYS", "0.5,2")
    monkeypatch.setenv("WEBHOOK_EVENTS", "chat.push")
    monkeypatch.setenv("WEBHOOK_HEADERS", '{"Authorization": "Bearer tok-123456"}')
    monkeypatch.setenv("WEBHOOK_SLOW_RETRY_FOR", "0")
    settings = WebhookSettings()
    assert settings.urls == ["https://a.example/hook", "https://b.example/x?k=1"]
    assert settings.retry_delays == [0.5, 2.0] and settings.attempts == 3
    assert settings.events == ["chat.push"]
    assert settings.header_values() == {"Authorization": "Bearer tok-123456"}
    assert "Bearer tok-123456" in settings.secret_values()


def test_no_retry_delays_mean_a_single_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_SLOW_RETRY_FOR", "0")
    monkeypatch.setenv("WEBHOOK_RETRY_DELAYS", "")  # blank is unset: bitHuman's three retries
    assert WebhookSettings().attempts == 4
    monkeypatch.setenv("WEBHOOK_RETRY_DELAYS", "none")
    assert WebhookSettings().attempts == 1


def test_the_slow_schedule_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_SLOW_RETRY_FOR", "1000")
    monkeypatch.setenv("WEBHOOK_SLOW_RETRY_MAX_DELAY", "300")
    assert WebhookSettings().retry_schedule == (1, 5, 30, 60, 120, 240, 300, 280)
    monkeypatch.setenv("WEBHOOK_SLOW_RETRY_MAX_DELAY", "10")
    with pytest.raises(ValidationError):
        WebhookSettings()


def test_plain_http_needs_the_development_switch() -> None:
    with pytest.raises(ValidationError, match="plain HTTP"):
        settings_of(WebhookSettings, urls=["http://localhost:3000/hook"])
    allowed = settings_of(WebhookSettings, urls=["http://localhost:3000/hook"], allow_http=True)
    assert allowed.urls == ["http://localhost:3000/hook"]


@pytest.mark.parametrize("url", ["ftp://x.example/", "https://", "not a url", "https://h:99x/"])
def test_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(ValidationError):
        settings_of(WebhookSettings, urls=[url])


def test_reserved_and_malformed_headers_are_refused() -> None:
    with pytest.raises(ValidationError, match="cannot be overridden"):
        settings_of(WebhookSettings, headers={"webhook-signature": "x"})
    with pytest.raises(ValidationError, match="not a valid header name"):
        settings_of(WebhookSettings, headers={"Bad Name": "x"})
    with pytest.raises(ValidationError, match="line break"):
        settings_of(WebhookSettings, headers={"X-Key": "a\r\nInjected: 1"})


def test_bad_config_is_one_readable_line_without_the_url_path(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WEBHOOK_URLS", "http://hooks.example/secret-token-path")
    with pytest.raises(SystemExit) as exit_info:
        load_settings(WebhookSettings)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "WEBHOOK_URLS" in err and "WEBHOOK_ALLOW_HTTP" in err
    assert "secret-token-path" not in err


def test_receiver_needs_a_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("WEBHOOK_RECEIVER_SECRET", raising=False)
    with pytest.raises(SystemExit):
        load_settings(ReceiverSettings)
    assert "WEBHOOK_RECEIVER_SECRET is not set" in capsys.readouterr().err
    monkeypatch.setenv("WEBHOOK_RECEIVER_SECRET", "x" * 16)
    assert load_settings(ReceiverSettings).port == 3001


def test_environment_variables_named_like_fields_are_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("URLS", "SECRET", "TIMEOUT", "PATH", "PORT", "HOST"):
        monkeypatch.setenv(name, "https://evil.example/")
    monkeypatch.setenv("WEBHOOK_RECEIVER_SECRET", "x" * 16)
    settings = WebhookSettings()
    assert settings.urls == [] and settings.secret is None and settings.timeout == 30.0
    receiver = ReceiverSettings()
    assert receiver.path == "/webhook" and receiver.port == 3001


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ('{"Authorization": "Bearer tok-123456"', "not valid JSON"),
        ("Authorization: Bearer tok-123456", "not valid JSON"),
        ('["Authorization"]', "JSON object"),
        ('{"X-Retries": 3}', "JSON object"),
    ],
)
def test_bad_header_json_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], value: str, complaint: str
) -> None:
    monkeypatch.setenv("WEBHOOK_HEADERS", value)
    with pytest.raises(SystemExit) as exit_info:
        load_settings(WebhookSettings)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("configuration error: WEBHOOK_HEADERS")
    assert complaint in err and "tok-123456" not in err  # the value holds secrets


def test_blank_header_json_means_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_HEADERS", " ")
    assert WebhookSettings().header_values() == {}
