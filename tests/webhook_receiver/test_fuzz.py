"""Hostile requests against the receiver, written byte by byte to a real socket: whatever the
method, path, headers, encoding, framing, size or body, and whether or not it is signed, the
answer is never a 5xx and nothing is logged with a traceback (or fails to be logged)."""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import hmac
import io
import json
import logging
import socket
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from common.logs import formatter
from tests.conftest import settings_of
from webhook_receiver import ReceiverSettings, create_app
from webhook_receiver.__main__ import logging_router

SECRET = "fuzz-secret-0123456789"
MAX_BODY = 4096


class _Recorder(logging.Handler):
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
    recorder: _Recorder
    loop: asyncio.AbstractEventLoop
    statuses: list[int] = field(default_factory=list, repr=False)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The receiver (logging handler included) on a loop of its own in a thread."""
    store = tmp_path_factory.mktemp("fuzz") / "recv.db"
    settings_ = settings_of(
        ReceiverSettings, secret=SECRET, store_path=store, max_body=MAX_BODY, queue_size=100_000
    )
    app = create_app(settings_, logging_router(), registry=CollectorRegistry())
    loop = asyncio.new_event_loop()
    started = threading.Event()
    runner = web.AppRunner(app, access_log=None)
    port: list[int] = []

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        port.append(server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

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

    recorder = _Recorder()
    root = logging.getLogger()
    receiver_log = logging.getLogger("webhook_receiver")
    old_level = receiver_log.level
    receiver_log.setLevel(logging.INFO)  # the logging handler's lines get formatted too
    root.addHandler(recorder)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield Served(port[0], recorder, loop)
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        root.removeHandler(recorder)
        receiver_log.setLevel(old_level)


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


# -- what a hostile client sends ---------------------------------------------------------------
# Mostly well-formed, signed requests whose details go wrong (so that the deep paths run:
# parsing, dedupe, storage, handlers, logging), sometimes garbage at every level.


def mostly(usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`usual` about four times in five, else `odd`."""
    return st.integers(0, 4).flatmap(lambda n: odd if n == 0 else usual)


hostile_text = st.text(st.characters(codec=None), max_size=40)  # lone surrogates included
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | hostile_text
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=4),
    max_leaves=10,
)
envelopes = st.fixed_dictionaries(
    {
        "agent_id": mostly(st.just("A91XMB7113"), json_values),
        "event_type": mostly(
            st.sampled_from(["chat.push", "room.join"]),
            st.sampled_from(["\ud800", "", "a" * 200, "x\ny", "\x00"]) | hostile_text,
        ),
        "data": st.dictionaries(
            st.sampled_from(["key", "event", "message", "session_id", "data", "role"])
            | hostile_text,
            json_values,
            max_size=5,
        ),
        "timestamp": mostly(st.just("now"), st.sampled_from(["old", "future"]) | json_scalars),
    },
    optional={"extra": json_values},
)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(
        mostly(st.just("envelope"), st.sampled_from(["bytes", "big", "empty", "deep", "nested"]))
    )
    if kind == "bytes":
        return draw(st.binary(max_size=600))
    if kind == "big":
        return b'{"event_type":"chat.push","x":"' + b"x" * draw(st.integers(4000, 20000)) + b'"}'
    if kind == "empty":
        return b""
    if kind == "deep":
        return b"[" * draw(st.integers(1, 50000))
    if kind == "nested":  # valid JSON nested about as deep as Python's parser allows
        depth = draw(st.sampled_from(range(900, 1001, 4)))
        head = b'{"event_type":"chat.push","timestamp":%d,"data":{"x":' % int(time.time())
        return head + b"[" * depth + b"]" * depth + b"}}"
    envelope = draw(envelopes)
    stamp = envelope["timestamp"]
    now = time.time()
    if stamp in ("now", "old", "future"):
        envelope["timestamp"] = {"now": now, "old": now - 30 * 86400, "future": now + 3600}[stamp]
    text = json.dumps(envelope, ensure_ascii=draw(st.booleans()))
    return text.encode("utf-8", draw(st.sampled_from(["surrogatepass", "replace"])))


def _standard(webhook_id: bytes, stamp: bytes, body: bytes) -> bytes:
    digest = hmac.new(SECRET.encode(), webhook_id + b"." + stamp + b"." + body, hashlib.sha256)
    return b"v1," + base64.b64encode(digest.digest())


header_bytes = st.binary(max_size=60).map(lambda v: v.replace(b"\r", b" ").replace(b"\n", b" "))
tokens = st.binary(min_size=1, max_size=8).filter(lambda v: not set(v) & set(b" \r\n"))


@st.composite
def requests(draw: st.DrawFn) -> tuple[bytes, bool]:
    """Raw request bytes, and whether the client stops sending before its body is complete."""
    method = draw(
        mostly(
            st.just(b"POST"),
            st.sampled_from([b"GET", b"PUT", b"HEAD", b"OPTIONS", b"DELETE", b"BREW"]) | tokens,
        )
    )
    path = draw(
        mostly(
            st.just(b"/webhook"),
            st.sampled_from(
                [b"/webhook/", b"/healthz", b"/metrics", b"/", b"/%ff%fe", b"/webhook?x=1", b"*"]
            ),
        )
    )
    body = draw(bodies())
    # Signatures cover the decoded body, as a sender signs it before compressing.
    headers: list[tuple[bytes, bytes]] = [(b"Host", b"localhost"), (b"Connection", b"close")]
    scheme = draw(
        mostly(st.sampled_from(["both", "legacy", "standard"]), st.sampled_from(["none", "junk"]))
    )
    webhook_id = draw(
        mostly(
            st.binary(min_size=8, max_size=8).map(lambda v: b"evt_" + v.hex().encode()),
            st.sampled_from([b"evt_\xff\xfe", b"\xed\xa0\x80", b"a" * 300, b"id with space"])
            | header_bytes,
        )
    )
    stamp = draw(
        mostly(
            st.just(str(int(time.time())).encode()),
            st.sampled_from([b"0", b"-1", b"99999999999999", b"x", b"\xff", b""]),
        )
    )
    legacy = b"sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest().encode()
    if scheme in ("legacy", "both"):
        headers.append((b"X-bitHuman-Signature", legacy))
    if scheme in ("standard", "both"):
        headers += [
            (b"webhook-id", webhook_id),
            (b"webhook-timestamp", stamp),
            (b"webhook-signature", _standard(webhook_id, stamp, body)),
        ]
    if scheme == "junk":
        for name in (b"X-bitHuman-Signature", b"webhook-id", b"webhook-timestamp"):
            headers.append((name, draw(header_bytes)))
    encoding = draw(
        mostly(
            st.none(),
            st.sampled_from([b"gzip", b"deflate", b"br", b"zstd", b"identity", b"gzip, x", b"?"]),
        )
    )
    if encoding is not None:
        headers.append((b"Content-Encoding", encoding))
        how = draw(st.sampled_from(["as named", "not at all", "truncated", "trailing junk"]))
        if how != "not at all" and encoding in (b"gzip", b"deflate"):
            packed = gzip.compress(body) if encoding == b"gzip" else zlib.compress(body)
            body = {
                "as named": packed,
                "truncated": packed[: len(packed) // 2],
                "trailing junk": packed + b"junk",
            }[how]
    content_type = draw(mostly(st.just(b"application/json"), header_bytes))
    headers.append((b"Content-Type", content_type))
    if draw(mostly(st.just(False), st.just(True))):
        headers.append(
            (draw(st.sampled_from([b"Accept", b"X-Fuzz", b"Expect"])), draw(header_bytes))
        )
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


@settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(request=requests())
def test_hostile_requests_get_no_5xx_and_no_traceback(
    served: Served, request: tuple[bytes, bool]
) -> None:
    raw, stops_short = request
    answer = exchange(served.port, raw, half_close=stops_short)
    if stops_short and not answer:
        return  # the server dropped a client that went away mid-body: nothing to answer
    assert answer, raw[:300]
    parts = answer.split(b"\r\n", 1)[0].split(b" ")
    assert parts[0] in (b"HTTP/1.0", b"HTTP/1.1") and parts[1].isdigit(), answer[:200]
    status = int(parts[1])
    served.statuses.append(status)
    assert status < 500, answer[:400]
    assert served.recorder.bad == [], served.recorder.bad


def test_the_fuzzing_reached_every_outcome(served: Served) -> None:
    """Runs after the property test: its examples must have exercised accepting, dedupe,
    refusals and bad-encoding answers, or the strategy has rotted."""
    assert served.statuses, "the property test did not run first"
    assert {200, 400, 401, 404, 405, 413} <= set(served.statuses)
    assert served.recorder.bad == []
