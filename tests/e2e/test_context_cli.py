"""`python -m bithuman_client speak / add-context` as a backend's script runs it: a subprocess in
a folder whose `.env` points it at our self-hosted context API, which reaches agents started
from their own `.env` through the real LiveKit server; users are real rtc clients."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from devkit.harness import OUR_VARIABLES, agent_identity, write_env
from devkit.openai_realtime import ReplyContext, default_reply
from tests.e2e import test_context_api as api_tests
from tests.e2e.conftest import ROOT, Stack
from tests.e2e.test_context_api import API_SECRET, ContextApi, greeted, heard, system_items

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]  # their own waits add up past 120 s

context_api = api_tests.context_api  # the service fixture of the API's own tests


async def run_cli(folder: Path, *argv: str) -> tuple[int, str, str]:
    # nothing of ours comes from the environment: the CLI reads folder/.env
    env = {k: v for k, v in os.environ.items() if not k.startswith(OUR_VARIABLES)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bithuman_client", *argv, cwd=folder,
        env=env | {"PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def backend(stack: Stack, service: ContextApi, name: str, secret: str = API_SECRET) -> Path:
    """A backend's folder: its `.env` names the self-hosted API and its secret, nothing else."""
    folder = stack.folder / name
    folder.mkdir()
    write_env(folder, {"CONTEXT_API_URL": service.url, "CONTEXT_API_SECRET": secret})
    return folder


async def test_cli_speak_reaches_every_room_or_the_one_named_and_names_errors(
    stack: Stack, context_api: Callable[..., Awaitable[ContextApi]]
) -> None:
    await stack.start_agent()
    service = await context_api(CONTEXT_API_AGENT_CODES=f"{stack.agent_name},A00OTHER01")
    folder = backend(stack, service, "backend")
    (first, first_agent), (second, second_agent) = await asyncio.gather(
        greeted(stack), greeted(stack)
    )

    everyone = "The CLI says: doors close in five minutes."
    code, out, err = await run_cli(folder, "speak", stack.agent_name, everyone, "--json")
    assert (code, err) == (0, ""), err
    body = json.loads(out)
    assert body["success"] is True and body["data"]["delivered_to_rooms"] == 2
    assert {r["room_id"] for r in body["data"]["rooms"]} == {first.room.name, second.room.name}
    assert all(r["acknowledged"] and r["result"] == "accepted" for r in body["data"]["rooms"])
    for user, agent in ((first, first_agent), (second, second_agent)):
        await user.until(heard(user, agent, everyone), within=30)

    only = "Only the first room hears this."
    code, out, err = await run_cli(
        folder, "speak", stack.agent_name, only, "--room", first.room.name
    )
    assert (code, err) == (0, ""), err
    assert out.splitlines() == [
        "Speech triggered successfully: delivered to 1 room",
        f"  {first.room.name}: accepted via rpc",
    ]
    await first.until(heard(first, first_agent, only), within=30)
    await asyncio.sleep(1.0)
    assert only not in second.final_texts(second_agent)
    assert [r.input for r in stack.realtime.speech_requests] == [everyone, everyone, only]

    # each of the API's errors: exit 1 and one line naming its code
    wrong = backend(stack, service, "wrong-secret", secret="wrong-" + API_SECRET)
    cases = [
        (wrong, ["speak", stack.agent_name, "hi"], "UNAUTHORIZED"),
        (folder, ["speak", "A99UNKNOWN", "hi"], "AGENT_NOT_FOUND"),
        (folder, ["speak", "A00OTHER01", "hi"], "NO_ACTIVE_ROOMS"),
        (folder, ["speak", stack.agent_name, ""], "VALIDATION_ERROR"),
        (folder, ["add-context", stack.agent_name, "x" * 4097], "VALIDATION_ERROR"),
    ]
    for where, argv, error in cases:
        code, out, err = await run_cli(where, *argv)
        assert (code, out) == (1, ""), (argv, err)
        (line,) = err.splitlines()
        assert line.startswith(f"error: {error}: "), line
        assert API_SECRET not in line
    assert len(stack.realtime.speech_requests) == 3, "no error spoke"


async def test_cli_add_context_changes_the_next_reply(
    stack: Stack, context_api: Callable[..., Awaitable[ContextApi]]
) -> None:
    def reply(ctx: ReplyContext) -> Any:
        """Replies name the context the model holds, so a reply shows what the model had."""
        notes = system_items(stack)
        if ctx.user_text and notes:
            return f"Noted: {notes[-1]} You said: {ctx.user_text}."
        return default_reply(ctx)

    stack.realtime.script.reply_rule = reply
    stack.realtime.script.transcripts.append("who am I")
    await stack.start_agent()
    service = await context_api()
    user, agent = await greeted(stack)
    assert agent_identity(user) == agent

    fact = "The user is Grace, who reads the news by CLI."
    code, out, err = await run_cli(
        backend(stack, service, "backend"), "add-context", stack.agent_name, fact
    )
    assert (code, err) == (0, ""), err
    assert out.splitlines() == [
        "Context added successfully: delivered to 1 room",
        f"  {user.room.name}: accepted via rpc",
    ]
    assert stack.realtime.speech_requests == [], "context is silent"
    await user.open_mic()
    await user.say(1.2)
    await user.until(heard(user, agent, f"Noted: {fact} You said: who am I."), within=30)
