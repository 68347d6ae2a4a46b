"""What one token-server application holds, stored on the app under `SERVICES`."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from token_server.client_ip import ClientKeys
from token_server.metrics import Metrics
from token_server.minting import TokenMinter
from token_server.policy import GrantPolicy
from token_server.ratelimit import RateLimiter
from token_server.settings import TokenServerSettings


@dataclass
class Services:
    settings: TokenServerSettings
    metrics: Metrics
    policy: GrantPolicy
    minter: TokenMinter | None  # None until the LiveKit settings are present
    limiter: RateLimiter | None  # None when rate limiting is off
    api_key: bytes | None  # None when /token is open
    client_keys: ClientKeys  # who a request counts against


SERVICES = web.AppKey("services", Services)
