"""API credentials and JWT checks shared by the LiveKit stand-ins.

A real LiveKit server authenticates every request with an HS256 JWT issued by the API key and
signed with the API secret. The stand-ins verify with livekit-api's own `TokenVerifier`, so a
token the real server would refuse (bad signature, wrong issuer, expired, no `exp`) is refused
here too, and they mint job tokens with livekit-api's `AccessToken`, as the server does.
"""

from __future__ import annotations

import datetime
import secrets
from dataclasses import dataclass, field

import jwt
from aiohttp import web
from livekit import api
from livekit.api.access_token import Claims
from livekit.protocol import models


class AuthError(Exception):
    """The request carries no token, or one the server would not accept."""


@dataclass(frozen=True)
class Credentials:
    api_key: str
    api_secret: str = field(repr=False)

    @classmethod
    def random(cls) -> Credentials:
        # 32+ byte secrets: PyJWT warns about shorter HMAC keys.
        return cls(api_key="APIfake" + secrets.token_hex(4), api_secret=secrets.token_urlsafe(32))

    def verify(self, token: str | None) -> Claims:
        """The token's claims, or `AuthError` saying why the server would refuse it."""
        if not token:
            raise AuthError("missing access token")
        verifier = api.TokenVerifier(self.api_key, self.api_secret)
        try:
            return verifier.verify(token)
        except (jwt.PyJWTError, ValueError) as exc:
            raise AuthError(f"invalid access token: {exc}") from None


def bearer_token(request: web.Request, *, allow_query: bool = False) -> str | None:
    """The token from `Authorization: Bearer`, or (signal clients only) `?access_token=`."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.query.get("access_token") if allow_query else None


def has_room_admin(claims: Claims, room: str) -> bool:
    """LiveKit's admin check: the `roomAdmin` grant, for exactly this room."""
    video = claims.video
    return bool(video and video.room_admin and room and video.room == room)


def mint_agent_token(
    credentials: Credentials,
    *,
    room: str,
    identity: str,
    name: str,
    metadata: str,
    attributes: dict[str, str],
    permission: models.ParticipantPermission,
    ttl: datetime.timedelta,
) -> str:
    """The room token a server hands a worker with a job assignment."""
    sources = [models.TrackSource.Name(source).lower() for source in permission.can_publish_sources]
    grants = api.VideoGrants(
        room_join=True,
        room=room,
        agent=True,
        can_publish=permission.can_publish,
        can_subscribe=permission.can_subscribe,
        can_publish_data=permission.can_publish_data,
        can_update_own_metadata=permission.can_update_metadata,
        can_publish_sources=sources or None,
        hidden=permission.hidden or None,
    )
    return (
        api.AccessToken(credentials.api_key, credentials.api_secret)
        .with_identity(identity)
        .with_name(name)
        .with_metadata(metadata)
        .with_attributes(attributes)
        .with_kind("agent")
        .with_ttl(ttl)
        .with_grants(grants)
        .to_jwt()
    )
