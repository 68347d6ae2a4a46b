"""TokenServerSettings reads only the variables its errors name."""

from __future__ import annotations

import pytest

from token_server import TokenServerSettings


def test_environment_variables_named_like_fields_are_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Cloud Run sets PORT; HOST and API_KEY are common names in other tools' environments.
    monkeypatch.setenv("PORT", "8080")
    monkeypatch.setenv("HOST", "203.0.113.9")
    monkeypatch.setenv("API_KEY", "k" * 32)
    settings = TokenServerSettings()
    assert (settings.port, settings.host) == (3000, "0.0.0.0")
    assert settings.api_key.get_secret_value() == ""

    monkeypatch.setenv("TOKEN_SERVER_PORT", "8081")
    assert TokenServerSettings().port == 8081
