"""Admission through the real LiveKit server: a worker at AGENT_MAX_SESSIONS tells LiveKit it is
full, the next room's job goes to another worker, and the session it holds goes on unharmed."""

from __future__ import annotations

import pytest

from devkit.harness import AgentProcess, User, agent_identity
from devkit.openai_realtime import GREETING
from tests.e2e.conftest import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]  # their own waits add up past 120 s

FULL = "worker is at full capacity, marking as unavailable"


async def greeted(user: User) -> str:
    await user.until(lambda: GREETING in user.final_texts(), within=60)
    speaker = agent_identity(user)
    assert speaker is not None
    return speaker


async def full_worker(stack: Stack) -> tuple[AgentProcess, User, str]:
    """A worker capped at one session, that session's user and agent identity, once the worker
    has reported itself full. The cap alone decides (the host's CPU is other tests'); no local
    VAD: the cheap session."""
    worker = await stack.start_agent(capped(stack))
    user = await stack.join()
    speaker = await greeted(user)
    await worker.wait_for_log(FULL, within=30)
    return worker, user, speaker


def capped(stack: Stack) -> dict[str, str]:
    return stack.settings(
        AGENT_MAX_SESSIONS="1", AGENT_LOAD_THRESHOLD="inf", AGENT_LOCAL_VAD="false"
    )


async def test_a_worker_at_its_session_cap_is_passed_over_and_its_session_goes_on(
    stack: Stack,
) -> None:
    first, one, speaker = await full_worker(stack)

    second = await stack.start_agent(capped(stack))
    two = await stack.join()
    await greeted(two)
    assert [r["room"] for r in first.logged("received job request")] == [one.room.name]
    assert [r["room"] for r in second.logged("received job request")] == [two.room.name]

    # the first session is not degraded by the refusal: its next turn is answered as before
    await one.open_mic()
    before = one.voiced(speaker)
    await one.say(1.0)
    await one.until(lambda: "You said: hello." in one.final_texts(speaker), within=30)
    await one.until(lambda: one.voiced(speaker) >= before + 25, within=30)

    # the session over, the first worker takes jobs again
    await one.leave()
    stack.users.remove(one)
    await first.wait_for_log("worker is below capacity, marking as available", within=60)


async def test_with_no_other_worker_the_next_room_is_refused_and_the_session_goes_on(
    stack: Stack,
) -> None:
    """What LiveKit does with a job no worker can take: it drops it ("no servers available"),
    it does not queue it. The room stays without an agent (the web page says so after its
    timeout) and the running session is untouched."""
    worker, one, speaker = await full_worker(stack)

    offset = stack.livekit.log_size()
    two = await stack.join()
    await one.open_mic()
    await one.say(1.0)
    await one.until(lambda: "You said: hello." in one.final_texts(speaker), within=30)
    await one.until(lambda: "no servers available" in stack.livekit.log_since(offset), within=30)
    assert agent_identity(two) is None
    assert [r["room"] for r in worker.logged("received job request")] == [one.room.name]
