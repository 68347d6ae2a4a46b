"""One server API call that tells a refused key from an unreachable server, before the worker
spends minutes retrying a connection that can never succeed."""

from __future__ import annotations

import asyncio

import aiohttp
from livekit import api


async def refusal(url: str, api_key: str, api_secret: str, *, within: float = 5.0) -> str | None:
    """Why the LiveKit server at `url` refuses these credentials; None when it accepts them or
    cannot be asked right now (the worker's reconnection loop handles an absent server)."""
    try:
        async with asyncio.timeout(within), api.LiveKitAPI(url, api_key, api_secret) as lkapi:
            await lkapi.room.list_rooms(api.ListRoomsRequest(names=["-"]))
    except api.TwirpError as error:
        if error.status in (401, 403):
            return f"LiveKit at {url} refused LIVEKIT_API_KEY/LIVEKIT_API_SECRET ({error.message})"
        return None
    except (aiohttp.ClientError, TimeoutError, OSError):
        return None
    return None
