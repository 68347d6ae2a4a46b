"""The web client at `/`: its files from the configured directory and nothing else, with cache
headers that fit each file, JSON errors as everywhere else, and the page's origin under CORS."""

from __future__ import annotations

import asyncio
import gzip
import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.token_server.conftest import make_settings
from tests.token_server.test_cli import LIVEKIT_ENV, _start, _stop, run
from token_server.app import create_app
from token_server.settings import DEFAULT_WEB_DIR

PAGE = b"<!doctype html><title>page</title><script src='app-ABCD1234.js'></script>"
SCRIPT = b"console.log('the bundle');" * 40


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A built web client, with a secret beside it and a folder inside it."""
    web = tmp_path / "dist"
    web.mkdir()
    (web / "index.html").write_bytes(PAGE)
    (web / "app-ABCD1234.js").write_bytes(SCRIPT)
    (web / "app-ABCD1234.js.gz").write_bytes(gzip.compress(SCRIPT))
    (web / "notes.txt").write_text("not hashed")
    (web / ".hidden.txt").write_text("dotfile")
    (web / "sub").mkdir()
    (web / "sub" / "inner.js").write_text("inner")
    (tmp_path / "secret.txt").write_text("SECRET-OUTSIDE")
    return web


async def test_the_page_is_served_at_the_root_and_revalidated(serve: Any, site: Path) -> None:
    client = await serve(create_app(make_settings(web_dir=site)))

    response = await client.get("/")
    assert response.status == 200
    assert await response.read() == PAGE
    assert response.content_type == "text/html"
    assert response.headers["Cache-Control"] == "no-cache"
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    again = await client.get("/", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status == 304
    assert (await client.get("/index.html")).headers["Cache-Control"] == "no-cache"


async def test_hashed_assets_are_cached_for_good_and_sent_compressed(
    serve: Any, site: Path
) -> None:
    client = await serve(create_app(make_settings(web_dir=site)))

    response = await client.get("/app-ABCD1234.js", headers={"Accept-Encoding": "gzip"})
    assert response.status == 200
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert "javascript" in response.content_type
    assert await response.read() == SCRIPT  # the client inflated the .gz copy
    plain = await client.get("/notes.txt")
    assert plain.headers["Cache-Control"] == "no-cache"


@pytest.mark.parametrize(
    "path",
    [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/%2e%2e%2fsecret.txt",
        "/app-ABCD1234.js/../../secret.txt",
        "/sub/inner.js",
        "/sub%2finner.js",
        "/.hidden.txt",
        "/%2Ehidden.txt",
        "/missing.js",
        "/index.html/",
        "//etc/passwd",
        "/..\\secret.txt",
    ],
)
async def test_nothing_but_the_directory_s_own_files_is_served(
    serve: Any, site: Path, path: str
) -> None:
    """Sent byte for byte (an HTTP client library would tidy the path up first)."""
    client = await serve(create_app(make_settings(web_dir=site)))
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    answer = await reader.read()
    writer.close()

    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 404 "), (path, head)
    assert json.loads(body)["code"] == "NOT_FOUND"
    assert b"Cache-Control: no-store" in head
    assert b"SECRET" not in answer and b"inner" not in answer and b"dotfile" not in answer


async def test_the_other_routes_and_their_errors_stay(serve: Any, site: Path) -> None:
    client = await serve(create_app(make_settings(web_dir=site)))

    assert (await client.get("/healthz")).status == 200
    wrong_method = await client.get("/token")
    assert wrong_method.status == 405
    assert (await wrong_method.json())["code"] == "METHOD_NOT_ALLOWED"
    missing = await client.get("/no-such-page")
    assert (missing.status, (await missing.json())["code"]) == (404, "NOT_FOUND")
    posted = await client.post("/")
    assert (posted.status, (await posted.json())["code"]) == (405, "METHOD_NOT_ALLOWED")
    token = await client.post("/token", json={})
    assert token.status == 200
    assert token.headers["Cache-Control"] == "no-store"


async def test_off_means_no_page(serve: Any, site: Path) -> None:
    client = await serve(create_app(make_settings(web_client=False, web_dir=site)))

    for path in ("/", "/index.html", "/app-ABCD1234.js"):
        response = await client.get(path)
        assert (response.status, (await response.json())["code"]) == (404, "NOT_FOUND")


async def test_an_unbuilt_client_says_how_to_build_it(serve: Any, tmp_path: Path) -> None:
    client = await serve(create_app(make_settings(web_dir=tmp_path)))

    response = await client.get("/")

    assert response.status == 404
    body = await response.json()
    assert body["code"] == "WEB_CLIENT_NOT_BUILT"
    assert "scripts/build-web.sh" in body["error"]


def test_the_default_directory_is_the_checkout_s_build() -> None:
    settings = make_settings()
    assert settings.web_root() == DEFAULT_WEB_DIR
    assert Path(__file__).resolve().parents[2] / "web" / "dist" == DEFAULT_WEB_DIR


async def test_the_page_s_origin_is_checked_like_any_other(serve: Any, site: Path) -> None:
    """In production the page's own origin must be listed too: a request whose Origin names
    the Host it was sent to proves nothing (DNS rebinding points another site's name at us)."""
    rebound = "http://evil.example:3000"
    closed = await serve(
        create_app(make_settings(app_env="production", allow_anonymous=True, web_dir=site))
    )
    refused = await closed.post(
        "/token", json={}, headers={"Origin": rebound, "Host": "evil.example:3000"}
    )
    assert refused.status == 403

    page = "https://avatar.example.com"
    listed = await serve(
        create_app(
            make_settings(
                app_env="production", allow_anonymous=True, web_dir=site, cors_origins=[page]
            )
        )
    )
    assert (await listed.post("/token", json={}, headers={"Origin": page})).status == 200


def test_a_web_dir_that_does_not_exist_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = run("mint", "--room", "r", TOKEN_SERVER_WEB_DIR=str(tmp_path / "nope"), **LIVEKIT_ENV)

    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "TOKEN_SERVER_WEB_DIR is invalid" in line


def test_python_m_token_server_serves_the_page(site: Path) -> None:
    process, port = _start(TOKEN_SERVER_WEB_DIR=str(site))
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            assert response.status == 200
            assert response.read() == PAGE
    finally:
        output = _stop(process)
    assert str(site) in output


def test_an_unbuilt_default_is_a_warning_at_start(tmp_path: Path) -> None:
    process, _ = _start(TOKEN_SERVER_WEB_DIR=str(tmp_path))
    output = _stop(process)
    assert "the web client is not built" in output
    assert "scripts/build-web.sh" in output
