"""Raw-socket fuzzing of our HTTP services: the service on a loop of its own in a thread, a
log recorder that keeps what a hostile request must never cause, and the Hypothesis pieces
every service's request strategy shares (content encodings, framings, the request's bytes)."""

from __future__ import annotations

import asyncio
import gzip
import io
import logging
import socket
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from hypothesis import strategies as st

from common.logs import formatter


class LogRecorder(logging.Handler):
    """Formats every record as the services do (JSON to a UTF-8 stream) and keeps what a
    hostile request must never cause: a traceback, an ERROR, or a line that cannot be
    written."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(formatter(json=True))
        self.stream = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
        self.bad: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or record.levelno >= logging.ERROR:
            self.bad.append(f"{record.name}: {record.getMessage()}")
        try:
            self.stream.write(self.format(record) + "\n")
        except Exception as exc:
            self.bad.append(f"unwritable log line from {record.name}: {exc!r}")


@dataclass
class Served:
    port: int
    recorder: LogRecorder
    statuses: list[int] = field(default_factory=list, repr=False)


@contextmanager
def serve_in_thread(app: web.Application, logger: str, level: int) -> Iterator[Served]:
    """`app` on 127.0.0.1 on a loop of its own, with `logger` at `level` so that its lines
    get formatted (and recorded) too."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)
    started = threading.Event()
    port: list[int] = []

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        assert site._server is not None
        port.append(site._server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        started.set()
        loop.run_forever()
        leftovers = asyncio.all_tasks(loop)  # connections aiohttp was still lingering on
        for task in leftovers:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
        loop.close()

    recorder = LogRecorder()
    root = logging.getLogger()
    ours = logging.getLogger(logger)
    old_level = ours.level
    ours.setLevel(level)
    root.addHandler(recorder)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield Served(port[0], recorder)
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        root.removeHandler(recorder)
        ours.setLevel(old_level)


def exchange(port: int, request: bytes, *, half_close: bool) -> bytes:
    """Send raw bytes, read until the server closes (every request says Connection: close).

    `half_close` ends the sending side: a client that stops short of its Content-Length."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(request)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may answer and close before reading an oversized body
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def status_of(answer: bytes) -> int:
    parts = answer.split(b"\r\n", 1)[0].split(b" ")
    assert parts[0] in (b"HTTP/1.0", b"HTTP/1.1") and parts[1].isdigit(), answer[:200]
    return int(parts[1])


def mostly(usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`usual` about four times in five, else `odd`."""
    return st.integers(0, 4).flatmap(lambda n: odd if n == 0 else usual)


hostile_text = st.text(st.characters(codec=None), max_size=40)  # lone surrogates included


def encoded(draw: st.DrawFn, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    """Sometimes a Content-Encoding header, with the body packed as named, not at all,
    truncated or with junk after it."""
    encoding = draw(
        mostly(
            st.none(),
            st.sampled_from([b"gzip", b"deflate", b"br", b"zstd", b"identity", b"gzip, x", b"?"]),
        )
    )
    if encoding is None:
        return body
    headers.append((b"Content-Encoding", encoding))
    how = draw(st.sampled_from(["as named", "not at all", "truncated", "trailing junk"]))
    if how == "not at all" or encoding not in (b"gzip", b"deflate"):
        return body
    packed = gzip.compress(body) if encoding == b"gzip" else zlib.compress(body)
    return {"as named": packed, "truncated": packed[: len(packed) // 2]}.get(how, packed + b"junk")


def framed(
    draw: st.DrawFn, method: bytes, path: bytes, headers: list[tuple[bytes, bytes]], body: bytes
) -> tuple[bytes, bool]:
    """The request's bytes with the body framed by length, chunks, a bad chunk or a length
    the client never sends; and whether the client stops sending short."""
    framing = draw(
        mostly(st.just("length"), st.sampled_from(["chunked", "bad chunk", "short length"]))
    )
    if framing == "chunked":
        headers.append((b"Transfer-Encoding", b"chunked"))
        payload = (b"%x\r\n" % len(body) + body + b"\r\n" if body else b"") + b"0\r\n\r\n"
    elif framing == "bad chunk":
        headers.append((b"Transfer-Encoding", b"chunked"))
        payload = b"zz\r\n" + body + b"\r\n0\r\n\r\n"
    elif framing == "short length":
        headers.append((b"Content-Length", b"%d" % (len(body) + 10)))
        payload = body  # the client then stops sending: the server must not hang on it
    else:
        headers.append((b"Content-Length", b"%d" % len(body)))
        payload = body
    head = method + b" " + path + b" HTTP/1.1\r\n"
    head += b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    return head + b"\r\n" + payload, framing == "short length"
