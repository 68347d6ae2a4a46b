"""An avatar's gesture catalog, fetched through bithuman_client and cached per process.

Every session of a worker process asks for the same avatar's catalog, so answers are kept for
a TTL. Failures are not cached: the next session tries again.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from bithuman_client import DynamicsCatalog

Fetch = Callable[[str], Awaitable[DynamicsCatalog]]


class CatalogCache:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: dict[tuple[str, str], tuple[float, DynamicsCatalog]] = {}

    async def get(
        self, agent_id: str, fetch: Fetch, *, ttl: float, scope: str = ""
    ) -> DynamicsCatalog:
        """The cached catalog of `agent_id` if younger than `ttl`, else a fresh one from
        `fetch` (whose errors propagate). `scope` separates API base URLs."""
        key = (scope, agent_id)
        now = self._clock()
        cached = self._entries.get(key)
        if cached is not None and now - cached[0] < ttl:
            return cached[1]
        catalog = await fetch(agent_id)
        self._entries[key] = (self._clock(), catalog)
        return catalog


PROCESS_CACHE = CatalogCache()
