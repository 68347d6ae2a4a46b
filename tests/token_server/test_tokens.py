"""POST /token: what the minted token carries, for both request shapes."""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from livekit.api import TokenVerifier

from tests.token_server.conftest import API_KEY, API_SECRET, LIVEKIT_URL, make_settings
from token_server import create_app

AVATAR_IDENTITY = "bithuman-avatar-agent"


def verify(token: str) -> Any:
    return TokenVerifier(API_KEY, API_SECRET).verify(token)


def raw_claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, API_SECRET, algorithms=["HS256"], issuer=API_KEY)
    return claims


async def post_token(client: Any, body: Any = None, **kw: Any) -> tuple[int, dict[str, Any]]:
    response = await client.post("/token", json=body if body is not None else {}, **kw)
    return response.status, await response.json()


async def test_standard_request_gets_a_minimal_verified_grant(serve: Any) -> None:
    client = await serve(create_app(make_settings()))
    status, body = await post_token(client, {"room_name": "lobby-1", "participant_name": "Ada"})

    assert status == 200
    assert body["server_url"] == LIVEKIT_URL
    assert body["participant_token"] == body["token"]
    assert body["room_name"] == "lobby-1"
    assert body["participant_name"] == "Ada"
    claims = verify(body["participant_token"])
    assert claims.identity == body["participant_identity"]
    assert claims.name == "Ada"
    assert claims.kind == "standard"
    # Exactly these grants, nothing else (VideoGrants' defaults would grant more).
    assert raw_claims(body["token"])["video"] == {
        "roomJoin": True,
        "room": "lobby-1",
        "canPublish": True,
        "canPublishSources": ["microphone"],
        "canSubscribe": True,
        "canPublishData": True,
        "canUpdateOwnMetadata": False,
    }
    assert claims.room_config is None


async def test_flutter_guide_request_shape(serve: Any) -> None:
    client = await serve(create_app(make_settings()))
    status, body = await post_token(
        client, {"room": "flutter-avatar-room", "participant": "Flutter User"}
    )

    assert status == 200
    claims = verify(body["token"])
    assert claims.video.room == "flutter-avatar-room"
    assert claims.name == "Flutter User"
    assert body["server_url"] == LIVEKIT_URL


async def test_ttl_defaults_to_fifteen_minutes_and_is_reported(serve: Any) -> None:
    client = await serve(create_app(make_settings()))
    _, body = await post_token(client)

    claims = raw_claims(body["token"])
    assert claims["exp"] - claims["nbf"] == 15 * 60
    assert body["expires_at"] == claims["exp"]


async def test_ttl_is_configurable(serve: Any) -> None:
    client = await serve(create_app(make_settings(token_ttl_seconds=3600)))
    _, body = await post_token(client)

    claims = raw_claims(body["token"])
    assert claims["exp"] - claims["nbf"] == 3600


def test_ttl_cannot_exceed_an_hour() -> None:
    with pytest.raises(ValueError, match="less than or equal to 3600"):
        make_settings(token_ttl_seconds=3601)


@pytest.mark.parametrize(
    "body",
    [
        {"participant_identity": AVATAR_IDENTITY},
        {"participant": AVATAR_IDENTITY},
        {"participant_name": AVATAR_IDENTITY, "participant_identity": AVATAR_IDENTITY},
        {"identity": AVATAR_IDENTITY, "sub": AVATAR_IDENTITY},
    ],
)
async def test_client_cannot_choose_its_identity(serve: Any, body: dict[str, str]) -> None:
    client = await serve(create_app(make_settings()))
    status, answer = await post_token(client, {"room_name": "shared", **body})

    assert status == 200
    identity = verify(answer["token"]).identity
    assert identity != AVATAR_IDENTITY
    assert identity == answer["participant_identity"]
    assert identity.startswith("user-")


async def test_identities_are_unique(serve: Any) -> None:
    client = await serve(create_app(make_settings()))
    identities = set()
    for _ in range(20):
        _, body = await post_token(client, {"room_name": "same"})
        identities.add(body["participant_identity"])
    assert len(identities) == 20


@pytest.mark.parametrize("room", [None, "", "has space", "x" * 65, "ünïcode", "../etc"])
async def test_invalid_or_missing_room_gets_an_unguessable_one(
    serve: Any, room: str | None
) -> None:
    client = await serve(create_app(make_settings()))
    _, first = await post_token(client, {"room_name": room})
    _, second = await post_token(client, {"room_name": room})

    assert first["room_name"] != room
    assert first["room_name"] != second["room_name"]
    assert first["room_name"].startswith("room-")
    assert len(first["room_name"]) >= 5 + 22  # 128 random bits, base64url
    assert verify(first["token"]).video.room == first["room_name"]


async def test_client_room_names_can_be_turned_off(serve: Any) -> None:
    client = await serve(create_app(make_settings(allow_client_room_names=False)))
    _, body = await post_token(client, {"room_name": "chosen"})

    assert body["room_name"] != "chosen"


async def test_camera_and_screen_share_only_when_allowed(serve: Any) -> None:
    client = await serve(create_app(make_settings(allow_camera=True, allow_screen_share=True)))
    _, body = await post_token(client)

    assert verify(body["token"]).video.can_publish_sources == [
        "microphone",
        "camera",
        "screen_share",
        "screen_share_audio",
    ]


async def test_agent_name_dispatches_the_agent(serve: Any) -> None:
    client = await serve(create_app(make_settings(agent_name="bithuman-avatar")))
    _, body = await post_token(client)

    config = verify(body["token"]).room_config
    assert [(a.agent_name, a.metadata) for a in config.agents] == [("bithuman-avatar", "")]
    assert raw_claims(body["token"])["roomConfig"] == {"agents": [{"agentName": "bithuman-avatar"}]}


@pytest.mark.parametrize("spelling", ["agent_name", "agentName"])
async def test_client_room_config_may_name_allow_listed_agents(serve: Any, spelling: str) -> None:
    app = create_app(make_settings(agent_name="main", allowed_agents=["support"]))
    client = await serve(app)
    _, body = await post_token(
        client, {"room_config": {"agents": [{spelling: "support", "metadata": '{"lang":"de"}'}]}}
    )

    config = verify(body["token"]).room_config
    assert [(a.agent_name, a.metadata) for a in config.agents] == [("support", '{"lang":"de"}')]


async def test_livekit_js_sdk_request_is_accepted(serve: Any) -> None:
    # What livekit-client's TokenSource.endpoint posts for every option it knows.
    sdk_body = {
        "room_name": "room-name",
        "participant_name": "participant name",
        "participant_identity": "participant identity",
        "participant_metadata": '{"example": "metadata here"}',
        "participant_attributes": {},
        "room_config": {
            "agents": [{"agent_name": "main", "metadata": '{"example": "agent metadata"}'}]
        },
    }
    client = await serve(create_app(make_settings(agent_name="main")))
    status, body = await post_token(client, sdk_body)

    assert status == 200
    claims = verify(body["participant_token"])
    assert claims.identity != "participant identity"
    assert claims.name == "participant name"
    assert claims.metadata == '{"example": "metadata here"}'
    assert claims.room_config is not None
    assert claims.room_config.agents[0].metadata == '{"example": "agent metadata"}'


async def test_agent_name_itself_is_allow_listed(serve: Any) -> None:
    client = await serve(create_app(make_settings(agent_name="main")))
    status, body = await post_token(client, {"room_config": {"agents": [{"agent_name": "main"}]}})

    assert status == 200
    assert [a.agent_name for a in verify(body["token"]).room_config.agents] == ["main"]


@pytest.mark.parametrize("agents", [["intruder"], ["main", "intruder"]])
async def test_other_agents_are_refused(serve: Any, agents: list[str]) -> None:
    client = await serve(create_app(make_settings(agent_name="main")))
    status, body = await post_token(
        client, {"room_config": {"agents": [{"agent_name": name} for name in agents]}}
    )

    assert status == 400
    assert body["code"] == "AGENT_NOT_ALLOWED"
    assert body["details"] == {"agents": ["intruder"]}


async def test_no_agent_can_be_named_without_configuration(serve: Any) -> None:
    client = await serve(create_app(make_settings()))
    status, body = await post_token(client, {"room_config": {"agents": [{"agent_name": "x"}]}})

    assert (status, body["code"]) == (400, "AGENT_NOT_ALLOWED")


@pytest.mark.parametrize(
    "room_config",
    [
        {"max_participants": 100},
        {"empty_timeout": 86400},
        {"egress": {"room": {"room_name": "x"}}},
        {"metadata": "room metadata"},
        {"agents": [{"agent_name": "main", "deployment": "other"}]},
        {"agents": [{"agent_name": "main", "attributes": {"a": "b"}}]},
    ],
)
async def test_any_other_room_setting_is_refused(serve: Any, room_config: dict[str, Any]) -> None:
    client = await serve(create_app(make_settings(agent_name="main")))
    status, body = await post_token(client, {"room_config": room_config})

    assert status == 400
    assert body["code"] == "ROOM_CONFIG_NOT_ALLOWED"


async def test_duplicate_dispatch_is_refused(serve: Any) -> None:
    client = await serve(create_app(make_settings(agent_name="main")))
    status, body = await post_token(
        client, {"room_config": {"agents": [{"agent_name": "main"}, {"agentName": "main"}]}}
    )

    assert (status, body["code"]) == (400, "VALIDATION_ERROR")


async def test_participant_metadata_and_attributes_are_carried(serve: Any) -> None:
    client = await serve(create_app(make_settings()))
    _, body = await post_token(
        client,
        {"participant_metadata": '{"plan":"free"}', "participant_attributes": {"lang": "fr"}},
    )

    claims = verify(body["token"])
    assert claims.metadata == '{"plan":"free"}'
    assert claims.attributes == {"lang": "fr"}


async def test_reserved_attribute_keys_are_refused(serve: Any) -> None:
    client = await serve(create_app(make_settings()))
    status, body = await post_token(
        client, {"participant_attributes": {"lk.agent.state": "speaking"}}
    )

    assert (status, body["code"]) == (400, "VALIDATION_ERROR")
    assert body["details"][0]["field"] == "participant_attributes.lk.agent.state.[key]"


async def test_without_livekit_settings_token_is_503_and_health_says_why(serve: Any) -> None:
    settings = make_settings(livekit_api_secret="", livekit_url="")
    client = await serve(create_app(settings))

    status, body = await post_token(client)
    assert status == 503
    assert body["code"] == "LIVEKIT_NOT_CONFIGURED"
    assert body["details"] == {"missing": ["LIVEKIT_URL", "LIVEKIT_API_SECRET"]}

    health = await client.get("/healthz")
    assert health.status == 200
    assert await health.json() == {
        "status": "ok",
        "livekit_configured": False,
        "livekit_missing": ["LIVEKIT_URL", "LIVEKIT_API_SECRET"],
        "rate_limit": "memory",
    }


async def test_health_when_configured(serve: Any) -> None:
    client = await serve(create_app(make_settings(rate_limit_per_minute=0)))
    health = await (await client.get("/healthz")).json()

    assert health["livekit_configured"] is True
    assert health["rate_limit"] == "off"


async def test_metrics_count_requests_and_mint_latency(serve: Any) -> None:
    client = await serve(create_app(make_settings()))
    await post_token(client)
    await post_token(client)
    await post_token(client, [])
    await client.get("/no-such-page")

    text = await (await client.get("/metrics")).text()
    assert 'token_server_requests_total{method="POST",route="/token",status="200"} 2.0' in text
    assert 'token_server_requests_total{method="POST",route="/token",status="400"} 1.0' in text
    assert 'token_server_requests_total{method="GET",route="unmatched",status="404"} 1.0' in text
    assert "token_server_mint_seconds_count 2.0" in text


async def test_each_app_has_its_own_metrics(serve: Any) -> None:
    first = await serve(create_app(make_settings()))
    second = await serve(create_app(make_settings()))
    await post_token(first)

    text = await (await second.get("/metrics")).text()
    assert 'route="/token"' not in text


@pytest.fixture
async def open_client(serve: Any) -> Any:
    return await serve(create_app(make_settings(rate_limit_per_minute=0)))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.text(st.characters(blacklist_categories=["Cc", "Cs"]), min_size=1, max_size=128),
    field=st.sampled_from(["participant_name", "participant", "participant_identity"]),
)
async def test_any_display_name_is_carried_but_never_becomes_the_identity(
    open_client: Any, name: str, field: str
) -> None:
    status, body = await post_token(open_client, {field: name})

    assert status == 200
    claims = verify(body["token"])
    assert claims.name == name == body["participant_name"]
    assert claims.identity != name
