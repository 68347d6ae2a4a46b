"""The web client (web/dist, built by scripts/build-web.sh) served at `/`.

Only files lying directly in the directory are served, by names of letters, digits, `-`, `_`
and at least one dot: no path can leave the directory, and `/token`, `/healthz` and `/metrics`
(no dot) keep their routes and their errors. Content-hashed assets (`app-<HASH>.js`) may be
cached for good; `index.html` is revalidated on every visit (its ETag makes that a 304), so a
rebuild shows at once. A `.gz` or `.br` copy next to a file goes to browsers that accept it
(aiohttp's `FileResponse` picks it).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from aiohttp import hdrs, web

from common.web import ApiError

INDEX = "index.html"
# esbuild's [hash]: 8 characters of A-Z and 0-9 (web/build.mjs names assets "<name>-[hash]")
_HASHED = re.compile(r"-[A-Z0-9]{8}\.")
_NAME = r"[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9]+)+"
_IMMUTABLE = "public, max-age=31536000, immutable"
_REVALIDATE = "no-cache"
# The page runs only its own script and style; media and LiveKit's signalling come from the
# LiveKit server, whose address the token server's answer names.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "media-src 'self' blob: mediastream:; connect-src 'self' ws: wss: http: https:; "
        "worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "microphone=(self), camera=()",
}


def is_built(directory: Path) -> bool:
    return (directory / INDEX).is_file()


def add_web_client(app: web.Application, directory: Path) -> None:
    """Serve `directory` at `/`; add after every other route."""

    async def page(_: web.Request) -> web.StreamResponse:
        path = directory / INDEX
        if not await asyncio.to_thread(path.is_file):
            raise ApiError(
                404,
                "WEB_CLIENT_NOT_BUILT",
                "the web client is not built: run scripts/build-web.sh",
            )
        return web.FileResponse(path, headers={hdrs.CACHE_CONTROL: _REVALIDATE, **_PAGE_HEADERS})

    async def asset(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name == INDEX:
            return await page(request)
        path = directory / name
        if not await asyncio.to_thread(path.is_file):
            raise web.HTTPNotFound()
        cache = _IMMUTABLE if _HASHED.search(name) else _REVALIDATE
        return web.FileResponse(path, headers={hdrs.CACHE_CONTROL: cache})

    app.router.add_get("/", page)
    app.router.add_get(f"/{{name:{_NAME}}}", asset)
