"""Against real services: run with `LIVE_TESTS=1 scripts/test.sh tests/live` and the credentials
each test names in your environment or `.env`. They cost a little (OpenAI tokens, bitHuman
credits) and are skipped otherwise, so the default suite stays offline."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

import pytest
from livekit import api

from agent.session import build_agent, build_session
from agent.settings import AgentSettings
from bithuman_client import BithumanClient
from tests.subprocesses import terminate, unless_exited

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.live


def need(*names: str) -> None:
    if os.environ.get("LIVE_TESTS") != "1":
        pytest.skip("live test: set LIVE_TESTS=1 to run it")
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        pytest.skip(f"live test: needs {', '.join(missing)}")


async def test_openai_realtime_answers_a_text_turn() -> None:
    need("OPENAI_API_KEY")
    settings = AgentSettings()
    session = build_session(settings, vad_model=None)
    await session.start(build_agent(settings))
    try:
        result = await session.run(user_input="Reply with the single word: ready")
        reply = result.expect.next_event().is_message(role="assistant").event().item
        assert (reply.text_content or "").strip()
    finally:
        await session.aclose()


async def test_bithuman_mints_a_room_scoped_token() -> None:
    need("BITHUMAN_API_SECRET", "BITHUMAN_AVATAR_ID", "LIVEKIT_URL")
    settings = AgentSettings()
    assert settings.bithuman_api_secret and settings.livekit_url
    async with BithumanClient(
        settings.bithuman_api_secret.get_secret_value(), base_url=settings.bithuman_rest_url
    ) as client:
        token = await client.mint_runtime_token(
            room_name=f"live-test-{uuid.uuid4().hex[:8]}",
            livekit_url=settings.livekit_url,
            agent_code=settings.bithuman_avatar_id,
        )
    assert token.scoped_token != settings.bithuman_api_secret.get_secret_value()


async def test_worker_joins_a_room_dispatched_to_it(tmp_path: Path) -> None:
    need("OPENAI_API_KEY", "LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET")
    agent_name = f"live-test-{uuid.uuid4().hex[:8]}"
    room = f"{agent_name}-room"
    env = os.environ | {"AGENT_NAME": agent_name, "AGENT_HTTP_PORT": "0", "PYTHONPATH": str(ROOT)}
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent", "start", cwd=ROOT, env=env
    )
    lk = api.LiveKitAPI()
    try:
        await lk.room.create_room(api.CreateRoomRequest(name=room))
        await lk.agent_dispatch.create_dispatch(
            api.CreateAgentDispatchRequest(agent_name=agent_name, room=room)
        )

        async def agent_present() -> None:
            while True:
                listed = await lk.room.list_participants(api.ListParticipantsRequest(room=room))
                if any(p.kind == api.ParticipantInfo.Kind.AGENT for p in listed.participants):
                    return
                await asyncio.sleep(1)

        await unless_exited(worker, asyncio.wait_for(agent_present(), 60))
    finally:
        await lk.room.delete_room(api.DeleteRoomRequest(room=room))
        await lk.aclose()
        await terminate(worker)
