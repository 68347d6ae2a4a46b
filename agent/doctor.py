"""`python -m agent doctor`: what the agent needs, checked in order, one line each.

    ✔ passed   ✘ failed (the fix follows the arrow)   - skipped (not configured, or it depends
    on a check that failed)

Checks: settings; LiveKit (one authenticated server API call); the OpenAI key (one `GET
/models`); the bitHuman secret and avatar (the avatar's generation status); each webhook URL
(one `HEAD`); PortAudio (only `console` needs it). The network checks run concurrently, each
within `--timeout` seconds; nothing starts a worker. Exit status 1 on any ✘, else 0. Secrets
are never printed: a key shows as its last four characters.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import ValidationError

from agent.dynamics.settings import DynamicsSettings
from agent.livekit_check import probe
from agent.settings import (
    BITHUMAN_HINT,
    LIVEKIT_HINT,
    OPENAI_KEY_HINT,
    AgentSettings,
    CloudAvatar,
    LocalAvatar,
)
from bithuman_client import (
    AuthenticationError,
    BithumanClient,
    BithumanError,
    NotFoundError,
    RetryPolicy,
)
from common import logs, noise
from common.logs import describe, scrub_text
from common.settings import describe_error
from webhooks.settings import WebhookSettings, _redacted

OK, FAIL, SKIP = "✔", "✘", "-"
OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_TIMEOUT = 10.0
SHOWN_FROM = 12  # secrets this long show their last four characters; shorter ones none
_SETTINGS_FIX = "edit .env (start from .env.example) and run doctor again"
# a proxy's answers when the receiver behind it is down
_GATEWAY_DOWN = (502, 503, 504)


@dataclass(frozen=True)
class Line:
    mark: str
    name: str
    text: str
    fix: str = ""
    bad_setting: bool = False  # refused credentials, as opposed to a service out of reach

    @property
    def failed(self) -> bool:
        return self.mark == FAIL

    def render(self) -> str:
        line = f"{self.mark} {self.name}: {self.text}"
        return scrub_text(f"{line} → {self.fix}" if self.fix else line)


@dataclass(frozen=True)
class Loaded:
    agent: AgentSettings
    webhooks: WebhookSettings


def masked(secret: str) -> str:
    """Enough of a secret to tell two apart, never enough to use: its last four characters."""
    return f"…{secret[-4:]}" if len(secret) >= SHOWN_FROM else "(set)"


def _stopped_with(step: Callable[[], object]) -> str | None:
    """The one line a start-up check prints before it exits (`common.settings.fail`), or None
    when it passes: the worker's own checks, so doctor says exactly what the worker would."""
    with contextlib.redirect_stderr(io.StringIO()) as said:
        try:
            step()
        except SystemExit:
            return said.getvalue().strip()
    return None


def load() -> tuple[Line, Loaded | None]:
    """The settings line, and the settings when they load."""
    name = "settings"
    try:
        agent = AgentSettings()
    except ValidationError as error:
        return Line(FAIL, name, describe_error(AgentSettings, error), _SETTINGS_FIX), None
    try:
        dynamics = DynamicsSettings()
    except ValidationError as error:
        return Line(FAIL, name, describe_error(DynamicsSettings, error), _SETTINGS_FIX), None
    try:
        webhooks = WebhookSettings()
    except ValidationError as error:
        return Line(FAIL, name, describe_error(WebhookSettings, error), _SETTINGS_FIX), None
    problem = _stopped_with(agent.check_files) or _stopped_with(dynamics.check_map)
    if problem:
        return Line(FAIL, name, problem, _SETTINGS_FIX), None
    # masked in every line; a dev value as short as `secret` would mask the English word
    values = agent.secret_values() + webhooks.secret_values()
    logs.register_secrets(value for value in values if len(value) >= SHOWN_FROM)
    source = "from .env and the environment" if Path(".env").is_file() else "from the environment"
    text = f"read {source} (avatar: {agent.avatar_mode.value})"
    return Line(OK, name, text), Loaded(agent, webhooks)


async def check_livekit(settings: AgentSettings, within: float) -> Line:
    name = "LiveKit"
    url, key, secret = (
        settings.livekit_url,
        settings.livekit_api_key,
        settings.livekit_api_secret,
    )
    if not (url or key or secret):
        text = "LIVEKIT_URL not set: `scripts/run-agent.sh dev` starts a local server"
        return Line(SKIP, name, text + "; console needs none")
    problem = _stopped_with(settings.require_livekit)
    if problem or not (url and key and secret):
        return Line(FAIL, name, problem or "incomplete", LIVEKIT_HINT)
    found = await probe(url, key, secret.get_secret_value(), within=within)
    if found.outcome == "refused":
        fix = f"set LIVEKIT_API_KEY/LIVEKIT_API_SECRET to a pair this server knows ({LIVEKIT_HINT})"
        return Line(FAIL, name, f"{url} refused key {key} ({found.detail})", fix)
    if found.outcome == "unreachable":
        fix = "start that server or fix LIVEKIT_URL (unset, `scripts/run-agent.sh dev` runs one)"
        return Line(FAIL, name, f"cannot reach {url}: {found.detail}", fix)
    text = f"{url} accepted key {key}"
    if len(secret.get_secret_value().encode()) < 32:
        text += " (LIVEKIT_API_SECRET under 32 bytes: fine for a dev server only)"
    return Line(OK, name, text)


def _openai_error(body: Any) -> tuple[str, str]:
    """(code or type, message) of OpenAI's `{error: {type, code, message, param}}`."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "", ""
    return str(error.get("code") or error.get("type") or ""), str(error.get("message") or "")


async def check_openai(settings: AgentSettings, within: float) -> Line:
    """One authenticated `GET {base}/models`: it costs nothing and proves the key and the URL."""
    name = "OpenAI"
    base = (settings.openai_base_url or OPENAI_DEFAULT_BASE_URL).rstrip("/")
    key = settings.openai_api_key.get_secret_value()
    where = f"OPENAI_API_KEY {masked(key)} at {base}"
    unreachable_fix = "check OPENAI_BASE_URL (unset = api.openai.com), the network or a proxy"
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=within)) as http,
            http.get(
                f"{base}/models",
                headers={"Authorization": f"Bearer {key}"},
                allow_redirects=False,  # the key goes only where the setting points
            ) as answer,
        ):
            status = answer.status
            try:
                body = await answer.json(content_type=None)
            except ValueError:
                body = None
    except TimeoutError:
        return Line(FAIL, name, f"no answer from {base} within {within:g} s", unreachable_fix)
    except (aiohttp.ClientError, OSError) as exc:
        return Line(FAIL, name, f"cannot reach {base}: {describe(exc)}", unreachable_fix)
    if status == 200:
        return Line(OK, name, f"{where} accepted")
    code, message = _openai_error(body)
    if status == 401:
        # the message of a 401 quotes part of the key: the code says enough
        return Line(FAIL, name, f"{where} refused (401 {code})", OPENAI_KEY_HINT, True)
    detail = f"{status} {code}: {message}" if code else str(status)
    return Line(FAIL, name, f"{base}/models answered {detail}", unreachable_fix)


async def check_bithuman(settings: AgentSettings, within: float) -> Line:
    """The avatar's generation status: the secret is checked first (401), then the avatar
    (404), then that it is ready to use."""
    name = "bitHuman"
    avatar = settings.avatar
    if not isinstance(avatar, CloudAvatar | LocalAvatar):
        return Line(SKIP, name, f"not used (avatar: {avatar.mode.value})")
    secret = avatar.api_secret
    # the avatar that renders; else the agent whose gestures a portrait or .imx performs
    if isinstance(avatar, CloudAvatar) and avatar.avatar_id:
        agent_id, variable = avatar.avatar_id, "BITHUMAN_AVATAR_ID"
    elif settings.bithuman_agent_id:
        agent_id, variable = settings.bithuman_agent_id, "BITHUMAN_AGENT_ID"
    else:
        text = (
            "BITHUMAN_API_SECRET not checked: no BITHUMAN_AVATAR_ID or BITHUMAN_AGENT_ID to look up"
        )
        return Line(SKIP, name, text)
    shown = masked(secret.get_secret_value())
    try:
        async with BithumanClient(
            secret.get_secret_value(),
            base_url=settings.bithuman_rest_url,
            timeout=within,
            retry=RetryPolicy(attempts=1),
        ) as client:
            answer = await client.agent_status(agent_id)
    except ValueError as exc:  # a base URL the secret must not be sent to
        return Line(FAIL, name, f"BITHUMAN_REST_URL: {exc}", "use bitHuman's https:// URL")
    except AuthenticationError as exc:
        why = " ".join(str(part) for part in (exc.status, exc.code) if part)
        return Line(FAIL, name, f"BITHUMAN_API_SECRET {shown} refused ({why})", BITHUMAN_HINT)
    except NotFoundError:
        fix = f"set {variable} to an agent code of your account ({BITHUMAN_HINT})"
        return Line(FAIL, name, f"secret {shown} accepted, but no avatar {agent_id}", fix)
    except BithumanError as exc:
        fix = "check BITHUMAN_REST_URL and the network"
        return Line(FAIL, name, f"{settings.bithuman_rest_url}: {exc}", fix)
    found = answer.data
    if found.status == "failed":
        why = f": {found.error_message}" if found.error_message else ""
        fix = f"generate it again, or set {variable} to another avatar"
        return Line(FAIL, name, f"avatar {agent_id} failed to generate{why}", fix)
    if found.status != "ready":
        fix = f"wait for it: python -m bithuman_client agent status {agent_id}"
        return Line(FAIL, name, f"avatar {agent_id} is not ready yet ({found.status})", fix)
    return Line(OK, name, f"secret {shown} accepted; avatar {agent_id} is ready")


async def check_webhook(url: str, within: float) -> Line:
    """Any HTTP answer but a gateway's 502-504 means a receiver listens (a HEAD to a POST
    endpoint may well be 405); nothing is delivered, so no receiver acts on a test event."""
    name, shown = "webhook", _redacted(url)
    fix = "start the receiver, or fix or remove it in WEBHOOK_URLS"
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=within)) as http,
            http.head(url, allow_redirects=False) as answer,
        ):
            status = answer.status
    except TimeoutError:
        return Line(FAIL, name, f"{shown} gave no answer within {within:g} s", fix)
    except (aiohttp.ClientError, OSError) as exc:
        return Line(FAIL, name, f"{shown} does not answer: {describe(exc)}", fix)
    if status in _GATEWAY_DOWN:
        return Line(FAIL, name, f"{shown} answered {status}: the receiver behind it is down", fix)
    return Line(OK, name, f"{shown} answers (HTTP {status} to HEAD)")


def check_portaudio() -> Line:
    """What `console` imports for the microphone and speaker (`dev`/`start` never load it)."""
    name = "PortAudio"
    try:
        import sounddevice  # noqa: F401
    except (OSError, ImportError) as exc:
        fix = (
            "console needs it (dev and start do not): apt-get install libportaudio2 "
            "(Debian/Ubuntu), brew install portaudio (macOS)"
        )
        return Line(FAIL, name, f"not found ({exc})", fix)
    return Line(OK, name, "found (console's microphone and speaker)")


async def _within(check: Awaitable[Line], name: str, within: float) -> Line:
    """A backstop around each network check: its own timeouts should answer first."""
    try:
        async with asyncio.timeout(within + 2):
            return await check
    except TimeoutError:
        return Line(FAIL, name, f"no answer within {within:g} s", "check the network")


async def run_checks(within: float) -> list[Line]:
    settings_line, loaded = load()
    lines = [settings_line]
    if loaded is None:
        skipped = "skipped: the settings did not load"
        lines += [Line(SKIP, name, skipped) for name in ("LiveKit", "OpenAI", "bitHuman")]
        lines.append(Line(SKIP, "webhooks", skipped))
    else:
        agent = loaded.agent
        checks = [
            _within(check_livekit(agent, within), "LiveKit", within),
            _within(check_openai(agent, within), "OpenAI", within),
            _within(check_bithuman(agent, within), "bitHuman", within),
        ]
        checks += [
            _within(check_webhook(url, within), "webhook", within) for url in loaded.webhooks.urls
        ]
        lines += await asyncio.gather(*checks)
        if not loaded.webhooks.enabled:
            lines.append(Line(SKIP, "webhooks", "off (WEBHOOK_URLS is empty)"))
    lines.append(check_portaudio())
    return lines


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m agent doctor",
        description="Check the settings, the services they point at, and system libraries.",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"seconds each network check may take (default {DEFAULT_TIMEOUT:g})",
    )
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    noise.quiet_short_jwt_keys()  # the LiveKit line says when a secret is short
    lines = asyncio.run(run_checks(args.timeout))
    for line in lines:
        print(line.render(), flush=True)
    failed = sum(line.failed for line in lines)
    print(f"{failed} problem{'s' if failed != 1 else ''} found" if failed else "all checks passed")
    return 1 if failed else 0
