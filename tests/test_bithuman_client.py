"""bithuman_client against a local HTTP stub: requests, retries, backoff and error mapping."""

from __future__ import annotations

import random
import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from bithuman_client import (
    AuthenticationError,
    BithumanClient,
    BithumanError,
    NetworkError,
    NotFoundError,
    QuotaExceededError,
    RateLimitError,
    RedirectError,
    RetryPolicy,
    ServerError,
    ValidationError,
    check_base_url,
    cli,
)
from bithuman_client.client import _retry_after_seconds
from devkit.bithuman_api import ACCOUNT_SECRET, MINT, SCOPED_TOKEN_PREFIX, BithumanStub
from tests.bithuman_client.clock import Sleeps


def client_for(url: str, sleeps: Sleeps, **kw: object) -> BithumanClient:
    return BithumanClient(ACCOUNT_SECRET, base_url=url, sleep=sleeps, rng=random.Random(7), **kw)  # type: ignore[arg-type]


async def mint(client: BithumanClient) -> str:
    async with client:
        token = await client.mint_runtime_token(
            room_name="room-1", livekit_url="wss://lk.example", agent_code="A12BCD3456"
        )
    return token.scoped_token


async def test_mint_sends_the_documented_request(bithuman_api: BithumanStub) -> None:
    sleeps = Sleeps()
    token = await mint(client_for(bithuman_api.url, sleeps))
    assert token.startswith(SCOPED_TOKEN_PREFIX)
    assert token == bithuman_api.minted_for("room-1").token
    (call,) = bithuman_api.calls(MINT)
    assert call.headers["api-secret"] == ACCOUNT_SECRET
    assert call.body == {
        "agent_code": "A12BCD3456",
        "scope": "livekit-cloud",
        "room_name": "room-1",
        "livekit_url": "wss://lk.example",
    }
    assert sleeps.waits == []


async def test_5xx_is_retried_with_growing_jittered_backoff(bithuman_api: BithumanStub) -> None:
    bithuman_api.fail(MINT, 503, times=3)
    sleeps = Sleeps()
    policy = RetryPolicy(attempts=4, base_delay=0.5, max_delay=8.0)
    token = await mint(client_for(bithuman_api.url, sleeps, retry=policy))
    assert token.startswith(SCOPED_TOKEN_PREFIX)
    assert len(bithuman_api.calls(MINT)) == 4
    caps = [0.5, 1.0, 2.0]
    assert len(sleeps.waits) == 3
    for wait, cap in zip(sleeps.waits, caps, strict=True):
        assert cap / 2 <= wait <= cap
    # jitter: the same attempt does not always wait the same time
    other = [RetryPolicy().backoff(2, random.Random(seed)) for seed in range(5)]
    assert len(set(other)) > 1


async def test_5xx_exhausted_raises_server_error_with_api_fields(
    bithuman_api: BithumanStub,
) -> None:
    bithuman_api.fail(
        MINT, 500, body={"error": "boom", "code": "INTERNAL", "details": {"id": 1}}, times=9
    )
    with pytest.raises(ServerError) as info:
        await mint(client_for(bithuman_api.url, Sleeps(), retry=RetryPolicy(attempts=3)))
    assert (info.value.status, info.value.error, info.value.code) == (500, "boom", "INTERNAL")
    assert info.value.details == {"id": 1}
    assert len(bithuman_api.calls(MINT)) == 3


async def test_429_waits_what_retry_after_says(bithuman_api: BithumanStub) -> None:
    bithuman_api.fail(MINT, 429, headers={"Retry-After": "2"})
    sleeps = Sleeps()
    assert (await mint(client_for(bithuman_api.url, sleeps))).startswith(SCOPED_TOKEN_PREFIX)
    assert sleeps.waits == [2.0]


async def test_429_with_a_long_retry_after_fails_at_once(bithuman_api: BithumanStub) -> None:
    bithuman_api.fail(MINT, 429, headers={"Retry-After": "3600"}, times=5)
    sleeps = Sleeps()
    with pytest.raises(RateLimitError) as info:
        await mint(client_for(bithuman_api.url, sleeps))
    assert info.value.retry_after == 3600
    assert sleeps.waits == [] and len(bithuman_api.calls(MINT)) == 1


async def test_429_without_hint_backs_off_then_gives_up(bithuman_api: BithumanStub) -> None:
    bithuman_api.fail(MINT, 429, times=9)
    sleeps = Sleeps()
    with pytest.raises(RateLimitError):
        await mint(client_for(bithuman_api.url, sleeps, retry=RetryPolicy(attempts=2)))
    assert len(sleeps.waits) == 1 and len(bithuman_api.calls(MINT)) == 2


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, ValidationError),
        (401, AuthenticationError),
        (402, QuotaExceededError),
        (403, AuthenticationError),
        (404, NotFoundError),
    ],
)
async def test_client_errors_are_typed_and_not_retried(
    bithuman_api: BithumanStub, status: int, error_type: type[BithumanError]
) -> None:
    bithuman_api.fail(MINT, status, times=5)
    sleeps = Sleeps()
    with pytest.raises(error_type) as info:
        await mint(client_for(bithuman_api.url, sleeps))
    assert info.value.status == status
    assert info.value.code == f"E{status}"
    assert len(bithuman_api.calls(MINT)) == 1 and sleeps.waits == []


async def test_older_error_shape_maps_code_and_message(bithuman_api: BithumanStub) -> None:
    bithuman_api.fail(
        MINT, 404, body={"success": False, "error": "AGENT_NOT_FOUND", "message": "no agent"}
    )
    with pytest.raises(NotFoundError) as info:
        await mint(client_for(bithuman_api.url, Sleeps()))
    assert (info.value.code, info.value.error) == ("AGENT_NOT_FOUND", "no agent")


async def test_a_secret_never_appears_in_error_messages(bithuman_api: BithumanStub) -> None:
    bithuman_api.fail(MINT, 401)
    with pytest.raises(AuthenticationError) as info:
        await mint(client_for(bithuman_api.url, Sleeps()))
    assert ACCOUNT_SECRET not in str(info.value)


async def test_connection_refused_is_a_network_error_after_retries() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleeps = Sleeps()
    with pytest.raises(NetworkError):
        await mint(client_for(f"http://127.0.0.1:{port}", sleeps, retry=RetryPolicy(attempts=3)))
    assert len(sleeps.waits) == 2


async def test_a_slow_answer_times_out_as_a_network_error(bithuman_api: BithumanStub) -> None:
    bithuman_api.delays[MINT] = 5
    client = client_for(bithuman_api.url, Sleeps(), timeout=0.2, retry=RetryPolicy(attempts=1))
    with pytest.raises(NetworkError, match="Timeout"):
        await mint(client)


async def test_an_unexpected_success_body_is_a_clean_error(bithuman_api: BithumanStub) -> None:
    bithuman_api.answers[MINT] = (200, {"success": True, "data": {"no_token": 1}})
    with pytest.raises(BithumanError, match="RuntimeToken"):
        await mint(client_for(bithuman_api.url, Sleeps()))


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert _retry_after_seconds("7") == 7.0
    assert _retry_after_seconds(None) is None and _retry_after_seconds("soon") is None
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    parsed = _retry_after_seconds(when)
    assert parsed is not None and 25 <= parsed <= 31


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_is_not_followed_and_the_secret_stays_home(
    bithuman_api: BithumanStub, status: int
) -> None:
    async with BithumanStub() as elsewhere:
        bithuman_api.fail(MINT, status, headers={"Location": elsewhere.url + MINT}, times=5)
        sleeps = Sleeps()
        with pytest.raises(RedirectError) as info:
            await mint(client_for(bithuman_api.url, sleeps))
        assert elsewhere.requests == [], "the redirect target received a request"
    assert info.value.status == status
    assert "127.0.0.1" in str(info.value) and ACCOUNT_SECRET not in str(info.value)
    assert len(bithuman_api.calls(MINT)) == 1 and sleeps.waits == []


async def test_a_same_origin_redirect_is_not_followed_either(bithuman_api: BithumanStub) -> None:
    bithuman_api.fail(MINT, 308, headers={"Location": "/v2/runtime-tokens/mint"})
    with pytest.raises(RedirectError):
        await mint(client_for(bithuman_api.url, Sleeps()))
    assert [r.path for r in bithuman_api.requests] == [MINT]


@pytest.mark.parametrize(
    "url",
    [
        "http://api.bithuman.ai",
        "http://203.0.113.7:8080",
        "http://bithuman.example.localhost.evil.com",
        "ftp://api.bithuman.ai",
        "api.bithuman.ai",
        "https://",
    ],
)
def test_base_urls_the_secret_must_not_travel_to_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match=r"http"):
        BithumanClient(ACCOUNT_SECRET, base_url=url)


@pytest.mark.parametrize(
    "url",
    [
        "https://api.bithuman.ai/",
        "https://public.api.bithuman.ai",
        "http://127.0.0.1:8080",
        "http://127.8.9.10",
        "http://localhost:9000",
        "http://[::1]:9000",
    ],
)
def test_https_and_loopback_http_base_urls_are_accepted(url: str) -> None:
    assert check_base_url(url) == url.rstrip("/")
    BithumanClient(ACCOUNT_SECRET, base_url=url)


def test_plain_http_elsewhere_needs_an_explicit_opt_in() -> None:
    client = BithumanClient(
        ACCOUNT_SECRET, base_url="http://bithuman-stub.internal:8080", allow_insecure_http=True
    )
    assert client._base_url == "http://bithuman-stub.internal:8080"


def test_cli_refuses_a_plain_http_rest_url_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BITHUMAN_API_SECRET", ACCOUNT_SECRET)
    monkeypatch.setenv("BITHUMAN_REST_URL", "http://api.bithuman.ai")
    with pytest.raises(SystemExit) as info:
        cli.main(["dynamics", "A1"])
    assert info.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("configuration error: BITHUMAN_REST_URL is invalid: refusing plain")
    assert ACCOUNT_SECRET not in line
