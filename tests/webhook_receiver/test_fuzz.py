"""Hostile requests against the receiver, written byte by byte to a real socket: whatever the
method, path, headers, encoding, framing, size or body, and whether or not it is signed, the
answer is never a 5xx and nothing is logged with a traceback (or fails to be logged)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from tests.conftest import settings_of
from tests.hostile_http import (
    Served,
    encoded,
    exchange,
    framed,
    hostile_text,
    mostly,
    serve_in_thread,
    status_of,
)
from webhook_receiver import ReceiverSettings, create_app
from webhook_receiver.__main__ import logging_router

SECRET = "fuzz-secret-0123456789"
MAX_BODY = 4096


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The receiver (logging handler included) on a loop of its own in a thread."""
    store = tmp_path_factory.mktemp("fuzz") / "recv.db"
    settings_ = settings_of(
        ReceiverSettings, secret=SECRET, store_path=store, max_body=MAX_BODY, queue_size=100_000
    )
    app = create_app(settings_, logging_router(), registry=CollectorRegistry())
    # the logging handler's lines get formatted too
    with serve_in_thread(app, "webhook_receiver", logging.INFO) as served:
        yield served


# -- what a hostile client sends ---------------------------------------------------------------
# Mostly well-formed, signed requests whose details go wrong (so that the deep paths run:
# parsing, dedupe, storage, handlers, logging), sometimes garbage at every level.


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
    body = encoded(draw, headers, body)
    content_type = draw(mostly(st.just(b"application/json"), header_bytes))
    headers.append((b"Content-Type", content_type))
    if draw(mostly(st.just(False), st.just(True))):
        headers.append(
            (draw(st.sampled_from([b"Accept", b"X-Fuzz", b"Expect"])), draw(header_bytes))
        )
    return framed(draw, method, path, headers, body)


@settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(request=requests())
# an oversized body, whatever the generated examples: the outcome check below needs a 413
@example(
    request=(
        b"POST /webhook HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        % (MAX_BODY + 1)
        + b"x" * (MAX_BODY + 1),
        False,
    )
)
def test_hostile_requests_get_no_5xx_and_no_traceback(
    served: Served, request: tuple[bytes, bool]
) -> None:
    raw, stops_short = request
    answer = exchange(served.port, raw, half_close=stops_short)
    if stops_short and not answer:
        return  # the server dropped a client that went away mid-body: nothing to answer
    assert answer, raw[:300]
    status = status_of(answer)
    served.statuses.append(status)
    assert status < 500, answer[:400]
    assert served.recorder.bad == [], served.recorder.bad


def test_the_fuzzing_reached_every_outcome(served: Served) -> None:
    """Runs after the property test: its examples must have exercised accepting, dedupe,
    refusals and bad-encoding answers, or the strategy has rotted."""
    assert served.statuses, "the property test did not run first"
    assert {200, 400, 401, 404, 405, 413} <= set(served.statuses)
    assert served.recorder.bad == []
