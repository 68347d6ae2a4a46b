"""The client's generation, status, dynamics and context calls against the bitHuman stub: the
documented requests and answers, the stub's strictness, and which failures are retried."""

from __future__ import annotations

import base64
import random
from typing import Any

import pytest

from bithuman_client import (
    AuthenticationError,
    BithumanClient,
    BithumanError,
    NetworkError,
    NotFoundError,
    QuotaExceededError,
    RetryPolicy,
    ServerError,
    ValidationError,
)
from devkit.bithuman_api import (
    ACCOUNT_SECRET,
    DYNAMICS_GENERATE,
    GENERATE,
    BithumanStub,
    add_context_path,
    dynamics_path,
    speak_path,
    status_path,
)
from tests.bithuman_client.clock import Sleeps


def client_for(stub: BithumanStub, sleeps: Sleeps | None = None, **kw: Any) -> BithumanClient:
    return BithumanClient(
        ACCOUNT_SECRET, base_url=stub.url, sleep=sleeps or Sleeps(), rng=random.Random(3), **kw
    )


async def test_a_generation_job_progresses_over_polls_to_ready(bithuman_api: BithumanStub) -> None:
    image = base64.b64encode(b"\x89PNG fake portrait").decode()
    async with client_for(bithuman_api) as client:
        started = await client.generate_agent(prompt="You are kind.", image=image)
        assert (started.success, started.status) == (True, "processing")
        assert started.message == "Agent generation started"
        seen = [(await client.agent_status(started.agent_id)).data.status for _ in range(5)]
    assert seen == ["processing", "generating", "completed", "ready", "ready"]
    (call,) = bithuman_api.calls(GENERATE)
    assert call.body == {"prompt": "You are kind.", "image": image}
    assert call.headers["api-secret"] == ACCOUNT_SECRET
    assert bithuman_api.generated[started.agent_id].request == call.body


async def test_status_answer_has_the_documented_fields(bithuman_api: BithumanStub) -> None:
    bithuman_api.known_agents.add("A11AAA1111")
    async with client_for(bithuman_api) as client:
        answer = await client.agent_status("A11AAA1111")
    data = answer.data
    assert (data.agent_id, data.status, data.error_message) == ("A11AAA1111", "ready", None)
    assert data.model_url and data.created_at and data.updated_at and data.finished
    dumped = answer.model_dump(mode="json", exclude_unset=True)
    assert set(dumped["data"]) == {
        "agent_id", "event_type", "status", "error_message", "created_at", "updated_at",
        "system_prompt", "image_url", "video_url", "name", "model_url",
    }  # fmt: skip


async def test_a_failed_job_carries_its_error_message(bithuman_api: BithumanStub) -> None:
    bithuman_api.job_statuses = ("processing", "failed")
    async with client_for(bithuman_api) as client:
        started = await client.generate_agent(prompt="x")
        await client.agent_status(started.agent_id)
        failed = (await client.agent_status(started.agent_id)).data
    assert failed.status == "failed" and failed.finished
    assert failed.error_message == "stub: generation failed"


async def test_unknown_agents_are_404(bithuman_api: BithumanStub) -> None:
    async with client_for(bithuman_api) as client:
        with pytest.raises(NotFoundError) as status:
            await client.agent_status("A00NOPE000")
        with pytest.raises(NotFoundError) as dynamics:
            await client.generate_dynamics("A00NOPE000")
    assert status.value.code == dynamics.value.code == "AGENT_NOT_FOUND"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"image": "not base64!"}, 400, "VALIDATION_ERROR"),
        ({"image": "ftp://example.com/a.png"}, 400, "VALIDATION_ERROR"),
        ({"video": ""}, 400, "VALIDATION_ERROR"),
        ({"audio": 42}, 400, "VALIDATION_ERROR"),
        ({"prompt": ["a"]}, 400, "VALIDATION_ERROR"),
        ({"image": base64.b64encode(b"x" * 101).decode()}, 413, "FILE_TOO_LARGE"),
        (["prompt"], 400, "VALIDATION_ERROR"),
    ],
)
async def test_the_stub_refuses_bad_generation_input(
    bithuman_api: BithumanStub, body: Any, status: int, code: str
) -> None:
    bithuman_api.file_limits["image"] = 100
    async with client_for(bithuman_api) as client:
        with pytest.raises(BithumanError) as info:
            await client.request("POST", GENERATE, payload=body, idempotent=False)
    assert (info.value.status, info.value.code) == (status, code)
    assert bithuman_api.generated == {}


async def test_media_urls_pass_and_credits_run_out(bithuman_api: BithumanStub) -> None:
    bithuman_api.credits = 300
    async with client_for(bithuman_api) as client:
        await client.generate_agent(image="https://example.com/me.jpg")
        with pytest.raises(QuotaExceededError) as info:
            await client.generate_agent(prompt="again")
    assert info.value.code == "INSUFFICIENT_BALANCE"
    assert len(bithuman_api.generated) == 1 and bithuman_api.credits == 50


async def test_dynamics_generation_then_the_catalog_becomes_ready(
    bithuman_api: BithumanStub,
) -> None:
    bithuman_api.job_statuses = ("processing", "ready")
    async with client_for(bithuman_api) as client:
        agent = (await client.generate_agent(prompt="x")).agent_id
        with pytest.raises(ValidationError) as early:
            await client.generate_dynamics(agent)
        assert (early.value.status, early.value.code) == (409, "AGENT_PROCESSING")
        await client.agent_status(agent)  # processing -> ready
        started = await client.generate_dynamics(agent, duration=3, model="speed")
        assert (started.agent_id, started.status) == (agent, "processing")
        catalogs = [await client.get_dynamics(agent) for _ in range(3)]
    assert [c.status for c in catalogs] == ["generating", "generating", "ready"]
    assert [c.has_dynamics for c in catalogs] == [False, False, True]
    assert bithuman_api.calls(DYNAMICS_GENERATE)[-1].body == {
        "agent_id": agent,
        "duration": 3,
        "model": "speed",
    }


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"agent_id": ""},
        {"agent_id": "A11AAA1111", "duration": "5"},
        {"agent_id": "A11AAA1111", "duration": True},
        {"agent_id": "A11AAA1111", "duration": 0},
        {"agent_id": "A11AAA1111", "model": "fast"},
        {"agent_id": "A11AAA1111", "image_url": "file:///etc/passwd"},
    ],
)
async def test_the_stub_refuses_bad_dynamics_input(
    bithuman_api: BithumanStub, body: dict[str, Any]
) -> None:
    bithuman_api.known_agents.add("A11AAA1111")
    async with client_for(bithuman_api) as client:
        with pytest.raises(ValidationError) as info:
            await client.request("POST", DYNAMICS_GENERATE, payload=body, idempotent=False)
    assert info.value.code == "VALIDATION_ERROR"
    assert bithuman_api.dynamics_jobs == {}


async def test_hosted_speak_and_add_context(bithuman_api: BithumanStub) -> None:
    bithuman_api.live_rooms["A12345678"] = ["room_1", "room_2"]
    async with client_for(bithuman_api) as client:
        spoken = await client.speak("A12345678", "Hello there!")
        targeted = await client.add_context(
            "A12345678", "VIP customer", room_id="room_2", idempotency_key="k-1"
        )
    assert spoken.message == "Speech triggered successfully"
    assert (spoken.data.agent_code, spoken.data.delivered_to_rooms) == ("A12345678", 2)
    assert targeted.message == "Context added successfully"
    assert (targeted.data.context_type, targeted.data.delivered_to_rooms) == ("add_context", 1)
    assert [(c.type, c.text, c.rooms) for c in bithuman_api.context_commands] == [
        ("speak", "Hello there!", ("room_1", "room_2")),
        ("add_context", "VIP customer", ("room_2",)),
    ]
    (call,) = bithuman_api.calls(add_context_path("A12345678"))
    assert call.body == {"context": "VIP customer", "type": "add_context", "room_id": "room_2"}
    assert call.headers["Idempotency-Key"] == "k-1"


async def test_hosted_context_errors_in_the_flat_shape(bithuman_api: BithumanStub) -> None:
    bithuman_api.known_agents.add("A00IDLE000")
    bithuman_api.live_rooms["A12345678"] = ["room_1"]
    async with client_for(bithuman_api) as client:
        with pytest.raises(NotFoundError) as unknown:
            await client.speak("A99UNKNOWN", "hi")
        with pytest.raises(NotFoundError) as idle:
            await client.speak("A00IDLE000", "hi")
        with pytest.raises(NotFoundError) as elsewhere:
            await client.speak("A12345678", "hi", room_id="room_9")
        with pytest.raises(ValidationError) as bad_type:
            await client.add_context("A12345678", "hi", context_type="shout")
        with pytest.raises(ValidationError) as empty:
            await client.speak("A12345678", "  ")
    assert unknown.value.code == "AGENT_NOT_FOUND"
    assert unknown.value.error == "Agent with code 'A99UNKNOWN' not found"
    assert idle.value.code == elsewhere.value.code == "NO_ACTIVE_ROOMS"
    assert bad_type.value.error == "Invalid type. Must be one of: speak, add_context"
    assert empty.value.code == "VALIDATION_ERROR"
    async with BithumanClient("wrong-secret", base_url=bithuman_api.url) as client:
        with pytest.raises(AuthenticationError) as denied:
            await client.speak("A12345678", "hi")
    assert (denied.value.code, denied.value.error) == ("UNAUTHORIZED", "Invalid api-secret")
    assert bithuman_api.context_commands == []


async def test_the_newer_nested_error_shape_is_read(bithuman_api: BithumanStub) -> None:
    body = {
        "error": {"code": "INSUFFICIENT_BALANCE", "message": "Top up", "httpStatus": 402},
        "status": "error",
        "status_code": 402,
    }
    bithuman_api.fail(GENERATE, 402, body=body)
    async with client_for(bithuman_api) as client:
        with pytest.raises(QuotaExceededError) as info:
            await client.generate_agent(prompt="x")
    assert (info.value.code, info.value.error) == ("INSUFFICIENT_BALANCE", "Top up")


@pytest.mark.parametrize("status", [500, 502, 504])
async def test_spending_calls_are_not_retried_after_a_5xx(
    bithuman_api: BithumanStub, status: int
) -> None:
    bithuman_api.fail(GENERATE, status, times=5)
    bithuman_api.fail(speak_path("A1"), status, times=5)
    sleeps = Sleeps()
    async with client_for(bithuman_api, sleeps) as client:
        with pytest.raises(ServerError):
            await client.generate_agent(prompt="x")
        with pytest.raises(ServerError):
            await client.speak("A1", "hi")
    assert len(bithuman_api.calls(GENERATE)) == len(bithuman_api.calls(speak_path("A1"))) == 1
    assert sleeps.waits == []


async def test_spending_calls_are_retried_when_nothing_was_done(
    bithuman_api: BithumanStub,
) -> None:
    bithuman_api.fail(GENERATE, 503, times=1)
    bithuman_api.fail(GENERATE, 429, headers={"Retry-After": "1"}, times=1)
    sleeps = Sleeps()
    async with client_for(bithuman_api, sleeps) as client:
        started = await client.generate_agent(prompt="x")
    assert started.agent_id in bithuman_api.generated
    assert len(bithuman_api.calls(GENERATE)) == 3 and len(sleeps.waits) == 2


async def test_a_spending_call_that_times_out_is_not_repeated(bithuman_api: BithumanStub) -> None:
    bithuman_api.delays[GENERATE] = 2
    async with client_for(bithuman_api, timeout=0.2) as client:
        with pytest.raises(NetworkError, match="may have been acted on"):
            await client.generate_agent(prompt="x")
    assert len(bithuman_api.calls(GENERATE)) == 1


async def test_status_polls_are_retried(bithuman_api: BithumanStub) -> None:
    bithuman_api.known_agents.add("A11AAA1111")
    bithuman_api.fail(status_path("A11AAA1111"), 502, times=2)
    async with client_for(bithuman_api, retry=RetryPolicy(attempts=3)) as client:
        assert (await client.agent_status("A11AAA1111")).data.status == "ready"


async def test_ids_stay_one_path_segment(bithuman_api: BithumanStub) -> None:
    async with client_for(bithuman_api) as client:
        with pytest.raises(NotFoundError):
            await client.agent_status("../dynamics/A1")
        with pytest.raises(NotFoundError):
            await client.speak("x/../../dynamics", "hi")
    paths = [r.path for r in bithuman_api.requests]
    assert paths[0] == status_path("../dynamics/A1")
    assert dynamics_path("A1") not in paths
