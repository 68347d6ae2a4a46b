"""Our bodies verify with bitHuman's documented Node check, run by `node` itself.

That check hashes `JSON.stringify(req.body)`, so it passes only if JavaScript re-serializes
the body to the very bytes we signed; randomized payloads probe every corner of that.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.webhooks.conftest import NodeVerifier
from webhooks import payloads
from webhooks.jsjson import MAX_SAFE_INTEGER, js_dumps
from webhooks.payloads import EventIds
from webhooks.signatures import sign_headers

new_id = EventIds().next

SECRET = "node-secret-ünïcode"
text = st.text(st.characters(exclude_categories=("Cs",)), max_size=300)
long_text = st.text(st.characters(exclude_categories=("Cs",)), min_size=2000, max_size=6000)
timestamps = st.floats(min_value=0, max_value=4e9, allow_nan=False) | st.integers(0, 4_000_000_000)
node_settings = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def assert_node_accepts(node: NodeVerifier, body: bytes, secret: str = SECRET) -> None:
    headers = sign_headers(secret, "evt_node", 1_700_000_000, body)
    assert node.check(secret, body, headers) == {
        "roundtrip": True,
        "bithuman": True,
        "standard": True,
    }, body


@node_settings
@given(
    role=st.sampled_from(payloads.ROLES),
    message=text | long_text,
    session=text,
    agent=text,
    when=timestamps,
    stamp=timestamps,
)
def test_chat_push_bodies_verify_in_node(
    node: NodeVerifier,
    role: payloads.Role,
    message: str,
    session: str,
    agent: str,
    when: float,
    stamp: float,
) -> None:
    event = payloads.chat_push(
        event_id=new_id(),
        agent_id=agent,
        role=role,
        message=message,
        session_id=session,
        now=stamp,
        timestamp=when,
    )
    assert_node_accepts(node, event.body)


@node_settings
@given(room=text, count=st.integers(0, MAX_SAFE_INTEGER), session=text, stamp=timestamps)
def test_room_join_bodies_verify_in_node(
    node: NodeVerifier, room: str, count: int, session: str, stamp: float
) -> None:
    event = payloads.room_join(
        event_id=new_id(),
        agent_id="agent",
        room_name=room,
        participant_count=count,
        session_id=session,
        now=stamp,
    )
    assert_node_accepts(node, event.body)


json_objects = st.dictionaries(
    st.text(st.characters(exclude_categories=("Cs",)), max_size=8),
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
        | st.floats(allow_nan=False, allow_infinity=False)
        | text,
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
        ),
        max_leaves=25,
    ),
    max_size=8,
)


@node_settings
@given(payload=json_objects)
def test_any_js_dumps_object_verifies_in_node(
    node: NodeVerifier, payload: dict[str, object]
) -> None:
    assert_node_accepts(node, js_dumps(payload))


def test_whsec_secret_verifies_in_node(node: NodeVerifier) -> None:
    body = payloads.room_join(
        event_id=new_id(),
        agent_id="a",
        room_name="r",
        participant_count=1,
        session_id="s",
        now=1705312200.0,
    ).body
    assert body.endswith(b',"timestamp":1705312200}')
    assert_node_accepts(node, body, secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")


def test_python_json_dumps_would_fail_the_node_check(node: NodeVerifier) -> None:
    """The reason js_dumps exists: the documented envelope via json.dumps does not verify."""

    body = json.dumps(
        {"agent_id": "a", "event_type": "room.join", "timestamp": 1705312200.0}
    ).encode()
    headers = sign_headers(SECRET, "evt", 1_700_000_000, body)
    assert node.check(SECRET, body, headers)["bithuman"] is False
