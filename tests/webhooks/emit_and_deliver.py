"""Crash-test subprocess: enqueue N chat.push events like an agent job, print their ids once
they are durable, then keep delivering in-process until killed."""

from __future__ import annotations

import asyncio
import json
import sys

from common.settings import load_settings
from webhooks.emitter import WebhookEmitter
from webhooks.settings import WebhookSettings


async def main(count: int) -> None:
    emitter = await WebhookEmitter.start(load_settings(WebhookSettings), agent_id="crash-test")
    ids = [
        emitter.chat_push(role="user", message=f"message {i}", session_id="crash")
        for i in range(count)
    ]
    await emitter.flush()
    print("IDS", json.dumps(ids), flush=True)  # logs share stdout: mark the line
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
