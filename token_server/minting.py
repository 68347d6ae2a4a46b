"""Signing LiveKit access tokens with the smallest grant a conversation with the avatar needs.

The grant is set field by field because livekit-api's `VideoGrants` defaults publish, subscribe
and publish-data to true: join one room, publish the microphone (camera and screen share only
when configured), subscribe, publish data (text chat and RPC travel on it), nothing else.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from jwt.algorithms import HMACAlgorithm
from jwt.utils import base64url_encode
from livekit.api import AccessToken, RoomAgentDispatch, RoomConfiguration, VideoGrants

from token_server.settings import TokenServerSettings

# PyJWT's header for HS256 (compact, sorted keys): the same for every token.
_HS256_HEADER = base64url_encode(b'{"alg":"HS256","typ":"JWT"}')
# Dispatches carrying client metadata are laid out per token once this many are kept.
_MAX_ROOM_CONFIGS = 256


@dataclass(frozen=True)
class Dispatch:
    agent_name: str
    metadata: str = ""


@dataclass(frozen=True)
class Grant:
    """Who joins which room, as what, with which agents dispatched to it."""

    room: str
    identity: str
    name: str = ""
    metadata: str = ""
    attributes: Mapping[str, str] = field(default_factory=dict)
    agents: tuple[Dispatch, ...] = ()


@dataclass(frozen=True)
class MintedToken:
    jwt: str
    expires_at: int  # the token's `exp`, Unix seconds


def track_sources(*, camera: bool, screen_share: bool) -> tuple[str, ...]:
    sources = ["microphone"]
    if camera:
        sources.append("camera")
    if screen_share:
        sources += ["screen_share", "screen_share_audio"]
    return tuple(sources)


class TokenMinter:
    """Signs tokens whose claims livekit-api lays out.

    `AccessToken.to_jwt` rebuilds every claim through `dataclasses.asdict` (a deep copy of each
    grant) and PyJWT re-inspects the key on each call: together most of a token request's CPU
    time. So `AccessToken`, `VideoGrants` and `RoomConfiguration` lay the claims out once, PyJWT
    checks the key once, and each token only fills in who, where and when before PyJWT's HS256
    signs it. tests/token_server/test_minting.py holds the result equal to `to_jwt`'s claims
    and to `jwt.encode`'s bytes.
    """

    def __init__(
        self,
        api_key: str,
        api_secret: str,
        *,
        ttl: timedelta,
        sources: tuple[str, ...],
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not api_key or not api_secret:
            raise ValueError("a LiveKit API key and secret are required")
        self._api_key = api_key
        self._api_secret = api_secret
        self._hs256 = HMACAlgorithm(HMACAlgorithm.SHA256)
        self._signing_key = self._hs256.prepare_key(api_secret)
        self.weak_secret = self._hs256.check_key_length(self._signing_key) is not None
        self._ttl = int(ttl.total_seconds())
        self._clock = clock
        # The room is left empty here (and so left out); each token names its own.
        video = VideoGrants(
            room_join=True,
            can_publish=True,
            can_publish_sources=list(sources),
            can_subscribe=True,
            can_publish_data=True,
            can_update_own_metadata=False,
        )
        self._layout = self._access_token().with_kind("standard").with_grants(video).claims.asdict()
        self._room_configs: dict[tuple[Dispatch, ...], dict[str, Any]] = {}

    @classmethod
    def from_settings(cls, settings: TokenServerSettings) -> TokenMinter:
        return cls(
            settings.livekit_api_key,
            settings.livekit_api_secret.get_secret_value(),
            ttl=timedelta(seconds=settings.token_ttl_seconds),
            sources=track_sources(
                camera=settings.allow_camera, screen_share=settings.allow_screen_share
            ),
        )

    def _access_token(self) -> AccessToken:
        return AccessToken(self._api_key, self._api_secret)

    def _room_config(self, agents: tuple[Dispatch, ...]) -> dict[str, Any]:
        # Few distinct dispatches exist (allow-listed names), so their layout is kept.
        layout = self._room_configs.get(agents)
        if layout is None:
            config = RoomConfiguration(
                agents=[
                    RoomAgentDispatch(agent_name=a.agent_name, metadata=a.metadata) for a in agents
                ]
            )
            layout = self._access_token().with_room_config(config).claims.asdict()["roomConfig"]
            if len(self._room_configs) < _MAX_ROOM_CONFIGS:
                self._room_configs[agents] = layout
        return layout

    def mint(self, grant: Grant) -> MintedToken:
        if not grant.room or not grant.identity:
            raise ValueError("a token needs a room and an identity")
        now = int(self._clock())
        claims = dict(self._layout)
        claims["video"] = {**self._layout["video"], "room": grant.room}
        if grant.name:
            claims["name"] = grant.name
        if grant.metadata:
            claims["metadata"] = grant.metadata
        if grant.attributes:
            claims["attributes"] = dict(grant.attributes)
        if grant.agents:
            claims["roomConfig"] = self._room_config(grant.agents)
        expires_at = now + self._ttl
        claims.update(sub=grant.identity, iss=self._api_key, nbf=now, exp=expires_at)
        return MintedToken(self._sign(claims), expires_at)

    def _sign(self, claims: dict[str, Any]) -> str:
        """HS256 compact serialization, as `jwt.encode` writes it."""
        payload = base64url_encode(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = _HS256_HEADER + b"." + payload
        signature = base64url_encode(self._hs256.sign(signing_input, self._signing_key))
        return (signing_input + b"." + signature).decode()
