"""One async client for bitHuman's REST APIs.

Every call goes through `request`: `api-secret` header, per-call timeout, and retries with
exponential backoff and jitter on 429 (honouring Retry-After), 5xx and network errors. Failures
surface as the typed errors of `bithuman_client.errors`, carrying the API's `error`, `code` and
`details`. The clock (`sleep`) and the jitter source are injectable so tests run instantly.

The account secret goes only where the base URL points: redirects are never followed (a 3xx is
a `RedirectError`, since following one would hand the `api-secret` header to another host), and
the base URL must be `https://`, or `http://` to a loopback host (a local stub); any other plain
`http://` URL needs `allow_insecure_http=True`.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from ipaddress import ip_address
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote, urlsplit

import aiohttp
import pydantic

from bithuman_client.errors import (
    BithumanError,
    NetworkError,
    RateLimitError,
    RedirectError,
    ServerError,
    error_for_status,
)
from bithuman_client.models import (
    AgentStatusAnswer,
    ContextAnswer,
    DynamicsCatalog,
    JobStarted,
    RuntimeToken,
)
from common.logs import get_logger

DEFAULT_BASE_URL = "https://api.bithuman.ai"
# An upload's deadline grows with its size: the call timeout plus this much time per byte
# (about 256 KiB/s, a slow uplink), so a 100 MB video is not cut off after 10 s.
UPLOAD_SECONDS_PER_BYTE = 1 / (256 * 1024)

log = get_logger("bithuman_client")


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(url: str, *, allow_insecure_http: bool = False) -> str:
    """`url` without a trailing slash, or ValueError when the secret must not be sent there:
    not http(s), no host, or plain http to a host other than this machine's loopback (unless
    `allow_insecure_http`)."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
    except ValueError:
        raise ValueError(f"not a URL: {url[:100]!r}") from None
    if parts.scheme not in ("https", "http") or not host:
        raise ValueError(f"expected an https:// URL, got {url[:100]!r}")
    if parts.scheme == "http" and not (allow_insecure_http or _is_loopback(host.lower())):
        raise ValueError(
            f"refusing plain http:// for {host}: the API secret would travel unencrypted "
            "(use https://; http:// is accepted for loopback hosts only)"
        )
    return url.strip().rstrip("/")


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts a call gets and how long to wait between them."""

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    # A Retry-After longer than this is not waited for: the call fails with RateLimitError.
    max_retry_after: float = 30.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Delay before retry number `attempt` (0-based): equal jitter on a doubling cap."""
        cap = min(self.max_delay, self.base_delay * (2**attempt))
        return float(cap / 2 + rng.uniform(0, cap / 2))


def _retry_after_seconds(value: str | None) -> float | None:
    """Retry-After is either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_fields(body: Any) -> tuple[str | None, str | None, Any]:
    """(error, code, details) from each of bitHuman's error shapes:
    `{error: text, code, details}` (generation, dynamics), `{success: false, error: CODE,
    message, data?}` (context API, ours too) and `{error: {code, message, httpStatus}, ...}`
    (newer docs)."""
    if not isinstance(body, dict):
        return None, None, None
    error = body.get("error")
    code = body.get("code")
    details = body.get("details", body.get("data"))
    if isinstance(error, dict):
        code = error.get("code", code)
        error = error.get("message")
    elif code is None and isinstance(error, str) and error.isupper():
        code = error
        error = body.get("message", error)
    elif error is None:
        error = body.get("message")
    return (
        str(error) if error is not None else None,
        str(code) if code is not None else None,
        details,
    )


M = TypeVar("M", bound=pydantic.BaseModel)


def _parse(model: type[M], body: Any) -> M:
    """Validate a success body (bare, or wrapped in `data`) as `model`."""
    data = body.get("data", body) if isinstance(body, dict) else body
    return _validate(model, data)


def _validate(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        message = f"unexpected bitHuman API response for {model.__name__}: {where}: {first['msg']}"
        raise BithumanError(message) from exc


def _segment(value: str) -> str:
    """One path segment: an id the caller gave can never reach another route."""
    return quote(value, safe="")


class BithumanClient:
    """Async client; use as `async with BithumanClient(secret) as client:`."""

    def __init__(
        self,
        api_secret: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        allow_insecure_http: bool = False,
    ) -> None:
        if not api_secret:
            raise ValueError("a bitHuman API secret is required")
        self._secret = api_secret
        self._base_url = check_base_url(base_url, allow_insecure_http=allow_insecure_http)
        self._timeout_s = timeout
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._retry = retry or RetryPolicy()
        self._session: aiohttp.ClientSession | None = None
        self._sleep = sleep
        self._rng = rng or random.Random()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        payload: Any = None,
        idempotent: bool = True,
        deadline: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """Call `path` and return its decoded JSON body, retrying what is worth retrying.

        Every call is retried on 429, 503 and connections that never opened: the request was
        not acted on. A call that is not `idempotent` (it spends credits or speaks) is not
        retried after a timeout, a dropped connection or another 5xx, where it may have been.
        """
        url = f"{self._base_url}{path}"
        sent = {"api-secret": self._secret, "Accept": "application/json", **(headers or {})}
        limit = self._timeout if deadline is None else aiohttp.ClientTimeout(total=deadline)
        last: BithumanError | None = None
        for attempt in range(self._retry.attempts):
            delay: float | None = None
            try:
                async with self._http().request(
                    method,
                    url,
                    json=payload,
                    headers=sent,
                    timeout=limit,
                    allow_redirects=False,  # a redirect would carry the secret elsewhere
                ) as resp:
                    body = await self._body(resp)
                    if 300 <= resp.status < 400:
                        raise self._redirect_error(resp)
                    if resp.status < 400:
                        return body
                    last = self._status_error(resp, body)
                    if isinstance(last, RateLimitError):
                        hint = last.retry_after
                        if hint is not None and hint > self._retry.max_retry_after:
                            raise last
                        delay = hint
                    elif not isinstance(last, ServerError) or (
                        resp.status != 503 and not idempotent
                    ):
                        raise last
            except (TimeoutError, aiohttp.ClientError) as exc:
                last = NetworkError(f"{method} {path}: {type(exc).__name__}: {exc}".rstrip(": "))
                if not idempotent and not isinstance(exc, aiohttp.ClientConnectorError):
                    unsure = f"{last} (not retried: it may have been acted on)"
                    raise NetworkError(unsure) from None
            if attempt + 1 < self._retry.attempts:
                wait = delay if delay is not None else self._retry.backoff(attempt, self._rng)
                log.info(
                    "bithuman api retry",
                    path=path,
                    attempt=attempt + 1,
                    wait_s=round(wait, 3),
                    reason=type(last).__name__,
                    status=last.status,
                )
                await self._sleep(wait)
        assert last is not None
        raise last

    @staticmethod
    async def _body(resp: aiohttp.ClientResponse) -> Any:
        text = await resp.text()
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError:
            return text

    @staticmethod
    def _redirect_error(resp: aiohttp.ClientResponse) -> RedirectError:
        location = resp.headers.get("Location", "")
        try:
            target = urlsplit(location).hostname or ""
        except ValueError:
            target = ""
        message = (
            f"bitHuman API {resp.method} {resp.url.path} answered {resp.status} "
            f"(a redirect{f' to {target}' if target else ''}); redirects are not followed: "
            "check BITHUMAN_REST_URL"
        )
        return RedirectError(message, status=resp.status)

    @staticmethod
    def _status_error(resp: aiohttp.ClientResponse, body: Any) -> BithumanError:
        error, code, details = _error_fields(body)
        cls = error_for_status(resp.status)
        message = f"bitHuman API {resp.method} {resp.url.path} answered {resp.status}"
        if error:
            message += f": {error}"
        fields: dict[str, Any] = {
            "status": resp.status,
            "error": error,
            "code": code,
            "details": details,
        }
        if cls is RateLimitError:
            retry_after = _retry_after_seconds(resp.headers.get("Retry-After"))
            return RateLimitError(message, retry_after=retry_after, **fields)
        return cls(message, **fields)

    # -- endpoints -------------------------------------------------------------------------

    async def mint_runtime_token(
        self, *, room_name: str, livekit_url: str, agent_code: str | None = None
    ) -> RuntimeToken:
        """A one-hour token scoped to this room, to hand the avatar instead of the secret."""
        payload: dict[str, Any] = {
            "scope": "livekit-cloud",
            "room_name": room_name,
            "livekit_url": livekit_url,
        }
        if agent_code:
            payload["agent_code"] = agent_code
        body = await self.request("POST", "/v1/runtime-tokens/mint", payload=payload)
        return _parse(RuntimeToken, body)

    async def get_dynamics(self, agent_id: str) -> DynamicsCatalog:
        """The gesture catalog of an avatar (`has_dynamics` is False when it has none)."""
        body = await self.request("GET", f"/v1/dynamics/{_segment(agent_id)}")
        return _parse(DynamicsCatalog, body)

    async def speak(
        self,
        agent_code: str,
        message: str,
        *,
        room_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> ContextAnswer:
        """Make the agent say `message` now, in `room_id` or in every room it is live in."""
        payload: dict[str, Any] = {"message": message}
        return await self._context(agent_code, "speak", payload, room_id, idempotency_key)

    async def add_context(
        self,
        agent_code: str,
        context: str,
        *,
        context_type: str = "add_context",
        room_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> ContextAnswer:
        """Give the agent silent knowledge (`context_type` "speak" is the unified form of
        `speak`)."""
        payload: dict[str, Any] = {"context": context, "type": context_type}
        return await self._context(agent_code, "add-context", payload, room_id, idempotency_key)

    async def _context(
        self,
        agent_code: str,
        route: str,
        payload: dict[str, Any],
        room_id: str | None,
        idempotency_key: str | None,
    ) -> ContextAnswer:
        if room_id is not None:
            payload["room_id"] = room_id
        # our self-hosted API dedupes a command by this key; bitHuman's ignores unknown headers
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        body = await self.request(
            "POST",
            f"/v1/agent/{_segment(agent_code)}/{route}",
            payload=payload,
            idempotent=False,
            headers=headers,
        )
        return _validate(ContextAnswer, body)

    async def generate_agent(
        self,
        *,
        prompt: str | None = None,
        image: str | None = None,
        video: str | None = None,
        audio: str | None = None,
    ) -> JobStarted:
        """Start generating an agent (costs credits). `image`, `video` and `audio` are URLs or
        base64 data (see `bithuman_client.media`). Not retried once it may have been acted on."""
        fields = {"prompt": prompt, "image": image, "video": video, "audio": audio}
        payload = {k: v for k, v in fields.items() if v is not None}
        size = sum(len(value) for value in payload.values())
        body = await self.request(
            "POST",
            "/v1/agent/generate",
            payload=payload,
            idempotent=False,
            deadline=self._timeout_s + size * UPLOAD_SECONDS_PER_BYTE,
        )
        return _validate(JobStarted, body)

    async def agent_status(self, agent_id: str) -> AgentStatusAnswer:
        """Where an agent's generation is: `data.status` processing ... ready | failed."""
        body = await self.request("GET", f"/v1/agent/status/{_segment(agent_id)}")
        return _validate(AgentStatusAnswer, body)

    async def generate_dynamics(
        self,
        agent_id: str,
        *,
        image_url: str | None = None,
        duration: float | None = None,
        model: str | None = None,
    ) -> JobStarted:
        """Start generating an agent's gestures (costs credits); `get_dynamics` shows them."""
        fields = {"image_url": image_url, "duration": duration, "model": model}
        payload = {"agent_id": agent_id} | {k: v for k, v in fields.items() if v is not None}
        body = await self.request(
            "POST", "/v1/dynamics/generate", payload=payload, idempotent=False
        )
        return _validate(JobStarted, body)
