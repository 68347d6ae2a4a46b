"""The minter's tokens carry exactly the claims livekit-api's `AccessToken.to_jwt` would."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jwt.utils import base64url_decode
from livekit.api import AccessToken, RoomAgentDispatch, RoomConfiguration, VideoGrants

from tests.token_server.conftest import API_KEY, API_SECRET
from token_server.minting import Dispatch, Grant, TokenMinter, track_sources

TIMESTAMPS = ("nbf", "exp")


def reference_token(grant: Grant, sources: tuple[str, ...], ttl: timedelta) -> str:
    """The same grant built the plain livekit-api way."""
    token = (
        AccessToken(API_KEY, API_SECRET)
        .with_identity(grant.identity)
        .with_kind("standard")
        .with_ttl(ttl)
        .with_grants(
            VideoGrants(
                room_join=True,
                room=grant.room,
                can_publish=True,
                can_publish_sources=list(sources),
                can_subscribe=True,
                can_publish_data=True,
                can_update_own_metadata=False,
            )
        )
    )
    if grant.name:
        token.with_name(grant.name)
    if grant.metadata:
        token.with_metadata(grant.metadata)
    if grant.attributes:
        token.with_attributes(dict(grant.attributes))
    if grant.agents:
        dispatches = [
            RoomAgentDispatch(agent_name=a.agent_name, metadata=a.metadata) for a in grant.agents
        ]
        token.with_room_config(RoomConfiguration(agents=dispatches))
    return token.to_jwt()


def decode(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, API_SECRET, algorithms=["HS256"], issuer=API_KEY)
    return claims


text = st.text(max_size=20)
grants = st.builds(
    Grant,
    room=st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
    identity=st.from_regex(r"user-[A-Za-z0-9_-]{16}", fullmatch=True),
    name=text,
    metadata=text,
    attributes=st.dictionaries(st.text(min_size=1, max_size=8), text, max_size=3),
    agents=st.lists(
        st.builds(Dispatch, agent_name=st.text(min_size=1, max_size=10), metadata=text),
        max_size=3,
        unique_by=lambda d: d.agent_name,
    ).map(tuple),
)


@given(grant=grants, camera=st.booleans(), screen_share=st.booleans())
def test_claims_match_access_token(grant: Grant, camera: bool, screen_share: bool) -> None:
    sources = track_sources(camera=camera, screen_share=screen_share)
    ttl = timedelta(minutes=15)
    minted = decode(TokenMinter(API_KEY, API_SECRET, ttl=ttl, sources=sources).mint(grant).jwt)
    reference = decode(reference_token(grant, sources, ttl))

    assert {k: v for k, v in minted.items() if k not in TIMESTAMPS} == {
        k: v for k, v in reference.items() if k not in TIMESTAMPS
    }
    assert minted["exp"] - minted["nbf"] == reference["exp"] - reference["nbf"] == 900
    assert abs(minted["nbf"] - reference["nbf"]) <= 1


def test_timestamps_come_from_the_clock() -> None:
    minter = TokenMinter(
        API_KEY,
        API_SECRET,
        ttl=timedelta(hours=1),
        sources=("microphone",),
        clock=lambda: 1e9 + 0.7,
    )
    minted = minter.mint(Grant(room="r", identity="user-1"))

    claims = jwt.decode(minted.jwt, API_SECRET, algorithms=["HS256"], options={"verify_exp": False})
    assert (claims["nbf"], claims["exp"]) == (1_000_000_000, 1_000_003_600)
    assert minted.expires_at == claims["exp"]


def test_layouts_are_not_shared_between_tokens() -> None:
    minter = TokenMinter(API_KEY, API_SECRET, ttl=timedelta(minutes=15), sources=("microphone",))
    first = decode(minter.mint(Grant(room="a", identity="user-1", agents=(Dispatch("x"),))).jwt)
    second = decode(minter.mint(Grant(room="b", identity="user-2")).jwt)

    assert (first["video"]["room"], second["video"]["room"]) == ("a", "b")
    assert "roomConfig" not in second


@pytest.mark.parametrize("grant", [Grant(room="", identity="user-1"), Grant(room="r", identity="")])
def test_room_and_identity_are_required(grant: Grant) -> None:
    minter = TokenMinter(API_KEY, API_SECRET, ttl=timedelta(minutes=15), sources=("microphone",))
    with pytest.raises(ValueError, match="room and an identity"):
        minter.mint(grant)


def test_credentials_are_required() -> None:
    with pytest.raises(ValueError, match="key and secret"):
        TokenMinter(API_KEY, "", ttl=timedelta(minutes=15), sources=("microphone",))


@given(grant=grants)
def test_bytes_are_what_pyjwt_writes(grant: Grant) -> None:
    minter = TokenMinter(API_KEY, API_SECRET, ttl=timedelta(minutes=15), sources=("microphone",))
    token = minter.mint(grant).jwt
    claims = json.loads(base64url_decode(token.split(".")[1]))

    assert token == jwt.encode(claims, API_SECRET, algorithm="HS256")


def test_short_secrets_are_flagged() -> None:
    def minter(secret: str) -> TokenMinter:
        return TokenMinter(API_KEY, secret, ttl=timedelta(minutes=15), sources=("microphone",))

    assert minter("secret").weak_secret
    assert not minter(API_SECRET).weak_secret
