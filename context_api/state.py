"""What one context-API application holds, stored on the app under `SERVICES`."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from aiohttp import web

from context_api.delivery import FanOut
from context_api.metrics import Metrics
from context_api.settings import ContextApiSettings
from context_api.wire import CommandSigner


@dataclass
class Services:
    settings: ContextApiSettings
    metrics: Metrics
    secret: bytes  # CONTEXT_API_SECRET, what the api-secret header must equal
    signer: CommandSigner
    fanout: FanOut | None = None  # made at start-up, with the app's HTTP client session
    http: aiohttp.ClientSession | None = None


SERVICES = web.AppKey("context_api_services", Services)
