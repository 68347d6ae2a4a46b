"""One server API call that tells a refused key from an unreachable server, before the worker
spends minutes retrying a connection that can never succeed."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

import aiohttp
from livekit import api

from common.logs import describe


@dataclass(frozen=True)
class Probe:
    """What the server at a URL said to one authenticated call."""

    outcome: Literal["accepted", "refused", "unreachable"]
    detail: str = ""


async def probe(url: str, api_key: str, api_secret: str, *, within: float = 5.0) -> Probe:
    """Ask the LiveKit server at `url` for a room list with these credentials."""
    try:
        async with asyncio.timeout(within), api.LiveKitAPI(url, api_key, api_secret) as lkapi:
            await lkapi.room.list_rooms(api.ListRoomsRequest(names=["-"]))
    except api.TwirpError as error:
        if error.status in (401, 403):
            return Probe("refused", error.message)
        return Probe("unreachable", f"answered {error.status} {error.code}: {error.message}")
    except TimeoutError:
        return Probe("unreachable", f"no answer within {within:g} s")
    except (aiohttp.ClientError, OSError) as exc:
        return Probe("unreachable", describe(exc))
    return Probe("accepted")


async def refusal(url: str, api_key: str, api_secret: str, *, within: float = 5.0) -> str | None:
    """Why the LiveKit server at `url` refuses these credentials; None when it accepts them or
    cannot be asked right now (the worker's reconnection loop handles an absent server)."""
    found = await probe(url, api_key, api_secret, within=within)
    if found.outcome == "refused":
        return f"LiveKit at {url} refused LIVEKIT_API_KEY/LIVEKIT_API_SECRET ({found.detail})"
    return None
