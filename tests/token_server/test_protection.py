"""CORS, shared-key auth and the per-client rate limit (in-memory backend)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from common import logs
from tests.token_server.conftest import API_SECRET, FakeClock, make_settings
from token_server import create_app

FLUTTER_WEB = "http://localhost:8080"
SERVER_KEY = "k" * 32


def preflight(origin: str, headers: str = "content-type") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": headers,
    }


async def test_preflight_from_flutter_web_passes_in_development(serve: Any) -> None:
    client = await serve(create_app(make_settings()))
    response = await client.options(
        "/token", headers=preflight(FLUTTER_WEB, "content-type,x-api-key")
    )

    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == FLUTTER_WEB
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    assert {"content-type", "x-api-key", "authorization"} <= set(
        allowed.replace(" ", "").split(",")
    )
    assert response.headers["Vary"] == "Origin"
    assert response.headers["Cache-Control"] == "no-store"
    text = await (await client.get("/metrics")).text()
    assert 'token_server_requests_total{method="OPTIONS",route="/token",status="204"} 1.0' in text


async def test_plain_options_lists_the_methods(serve: Any) -> None:
    client = await serve(create_app(make_settings()))
    response = await client.options("/token")

    assert response.status == 204
    assert response.headers["Allow"] == "POST, OPTIONS"
    assert "Access-Control-Allow-Origin" not in response.headers


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "http://localhost.evil.example", "null"]
)
async def test_preflight_from_unlisted_origin_is_refused(serve: Any, origin: str) -> None:
    client = await serve(create_app(make_settings(cors_origins=["http://localhost:*"])))
    response = await client.options("/token", headers=preflight(origin))

    assert response.status == 403
    assert "Access-Control-Allow-Origin" not in response.headers
    assert (await response.json())["code"] == "ORIGIN_NOT_ALLOWED"


async def test_requests_from_unlisted_origin_are_refused_before_minting(serve: Any) -> None:
    client = await serve(create_app(make_settings()))
    response = await client.post("/token", json={}, headers={"Origin": "https://evil.example"})

    assert response.status == 403
    text = await (await client.get("/metrics")).text()
    assert "token_server_mint_seconds_count 0.0" in text


@pytest.mark.parametrize("origin", [FLUTTER_WEB, "http://localhost"])
async def test_preflight_from_a_listed_origin_passes(serve: Any, origin: str) -> None:
    client = await serve(create_app(make_settings(cors_origins=["http://localhost:*"])))
    response = await client.options("/token", headers=preflight(origin))

    assert response.status == 204  # "any port" includes the scheme's default
    assert response.headers["Access-Control-Allow-Origin"] == origin


async def test_allowed_origin_can_read_the_answer_and_retry_after(serve: Any) -> None:
    client = await serve(create_app(make_settings()))
    response = await client.post("/token", json={}, headers={"Origin": FLUTTER_WEB})

    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == FLUTTER_WEB
    assert "Retry-After" in response.headers["Access-Control-Expose-Headers"]


async def test_production_allows_no_origin_by_default(serve: Any) -> None:
    client = await serve(create_app(make_settings(app_env="production")))
    refused = await client.options("/token", headers=preflight(FLUTTER_WEB))
    native = await client.post("/token", json={})  # no Origin: curl, Flutter mobile, servers

    assert refused.status == 403
    assert native.status == 200


async def test_configured_origins_replace_the_default(serve: Any) -> None:
    settings = make_settings(app_env="production", cors_origins=["https://app.example.com"])
    client = await serve(create_app(settings))

    ok = await client.options("/token", headers=preflight("https://app.example.com"))
    dev = await client.options("/token", headers=preflight(FLUTTER_WEB))
    assert (ok.status, dev.status) == (204, 403)


async def test_every_answer_is_no_store(serve: Any) -> None:
    client = await serve(create_app(make_settings(api_key=SERVER_KEY)))
    for response in [
        await client.post("/token", json={}),
        await client.post("/token", json={}, headers={"X-API-Key": SERVER_KEY}),
        await client.get("/healthz"),
        await client.get("/missing"),
    ]:
        assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-API-Key": "wrong-key-wrong-key-wrong-key"},
        {"Authorization": "Bearer wrong-key-wrong-key-wrong"},
        {"Authorization": SERVER_KEY},
        {"Authorization": f"Basic {SERVER_KEY}"},
        {"X-API-Key": SERVER_KEY[:-1]},
    ],
)
async def test_missing_or_wrong_key_is_401(serve: Any, headers: dict[str, str]) -> None:
    client = await serve(create_app(make_settings(api_key=SERVER_KEY)))
    response = await client.post("/token", json={}, headers=headers)

    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    body = await response.json()
    assert body["code"] == "UNAUTHORIZED"
    assert "token" not in body


@pytest.mark.parametrize(
    "headers", [{"X-API-Key": SERVER_KEY}, {"Authorization": f"Bearer {SERVER_KEY}"}]
)
async def test_right_key_in_either_header_passes(serve: Any, headers: dict[str, str]) -> None:
    client = await serve(create_app(make_settings(api_key=SERVER_KEY)))
    response = await client.post("/token", json={}, headers=headers)

    assert response.status == 200


async def test_health_and_metrics_need_no_key(serve: Any) -> None:
    client = await serve(create_app(make_settings(api_key=SERVER_KEY)))

    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/metrics")).status == 200


def test_short_api_keys_are_rejected_at_start_up() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        make_settings(api_key="short")


async def test_rate_limit_answers_429_with_retry_after(serve: Any, clock: FakeClock) -> None:
    settings = make_settings(rate_limit_per_minute=6, rate_limit_burst=2)  # one per 10 s
    client = await serve(create_app(settings, clock=clock))

    assert [(await client.post("/token", json={})).status for _ in range(2)] == [200, 200]
    refused = await client.post("/token", json={})
    assert refused.status == 429
    assert refused.headers["Retry-After"] == "10"
    body = await refused.json()
    assert body["code"] == "RATE_LIMITED"
    assert body["details"] == {"retry_after": 10}

    clock.advance(9.5)
    assert (await client.post("/token", json={})).status == 429
    assert (await client.post("/token", json={})).headers["Retry-After"] == "1"
    clock.advance(0.5)
    assert (await client.post("/token", json={})).status == 200

    text = await (await client.get("/metrics")).text()
    assert 'token_server_rate_limited_total{route="/token"} 3.0' in text


async def test_rate_limit_counts_failed_auth(serve: Any, clock: FakeClock) -> None:
    settings = make_settings(rate_limit_per_minute=1, rate_limit_burst=3, api_key=SERVER_KEY)
    client = await serve(create_app(settings, clock=clock))

    statuses = [(await client.post("/token", json={})).status for _ in range(4)]
    assert statuses == [401, 401, 401, 429]


async def test_rate_limit_off(serve: Any) -> None:
    client = await serve(create_app(make_settings(rate_limit_per_minute=0, rate_limit_burst=1)))

    assert {(await client.post("/token", json={})).status for _ in range(5)} == {200}


async def test_forwarded_for_is_ignored_without_trusted_proxies(
    serve: Any, clock: FakeClock
) -> None:
    settings = make_settings(rate_limit_per_minute=1, rate_limit_burst=1)
    client = await serve(create_app(settings, clock=clock))

    first = await client.post("/token", json={}, headers={"X-Forwarded-For": "203.0.113.1"})
    spoofed = await client.post("/token", json={}, headers={"X-Forwarded-For": "203.0.113.2"})
    assert (first.status, spoofed.status) == (200, 429)


async def test_trusted_proxy_separates_clients(serve: Any, clock: FakeClock) -> None:
    settings = make_settings(
        rate_limit_per_minute=1, rate_limit_burst=1, trusted_proxies="127.0.0.1,10.0.0.0/8"
    )
    client = await serve(create_app(settings, clock=clock))

    def via_proxy(chain: str) -> dict[str, str]:
        return {"X-Forwarded-For": chain}

    a = await client.post("/token", json={}, headers=via_proxy("203.0.113.1"))
    b = await client.post("/token", json={}, headers=via_proxy("203.0.113.2, 10.1.2.3"))
    a_again = await client.post("/token", json={}, headers=via_proxy("198.51.100.7, 203.0.113.1"))
    assert (a.status, b.status, a_again.status) == (200, 200, 429)


async def test_preflights_do_not_spend_the_rate_limit(serve: Any, clock: FakeClock) -> None:
    settings = make_settings(rate_limit_per_minute=1, rate_limit_burst=1)
    client = await serve(create_app(settings, clock=clock))

    for _ in range(3):
        assert (await client.options("/token", headers=preflight(FLUTTER_WEB))).status == 204
    assert (await client.post("/token", json={})).status == 200


async def test_tokens_and_secrets_never_reach_the_logs(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    logs.configure_structlog()
    caplog.set_level(logging.DEBUG)
    client = await serve(create_app(make_settings(api_key=SERVER_KEY, agent_name="main")))
    answer = await (
        await client.post("/token", json={"room_name": "r"}, headers={"X-API-Key": SERVER_KEY})
    ).json()
    await client.post("/token", json={}, headers={"Authorization": "Bearer not-the-key-at-all"})

    logged = "\n".join(str(record.__dict__) for record in caplog.records)
    assert "token issued" in logged
    for secret in [answer["token"], answer["token"].split(".")[2], API_SECRET, SERVER_KEY]:
        assert secret not in logged
