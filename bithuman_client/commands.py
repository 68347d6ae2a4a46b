"""What each CLI command does and prints. The answer goes to stdout (one JSON object with
`--json`: the API's answer as received); errors, progress and hints go to stderr."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from pydantic import BaseModel

from bithuman_client import exits
from bithuman_client.client import BithumanClient
from bithuman_client.errors import BithumanError, NetworkError
from bithuman_client.media import Kind, Media, MediaError, resolve
from bithuman_client.models import AgentStatus, AgentStatusAnswer, ContextAnswer, DynamicsCatalog
from bithuman_client.waiting import Backoff, Progress, WaitTimeout, format_elapsed, wait_for

if TYPE_CHECKING:
    from bithuman_client.cli import CliSettings

PROG = "python -m bithuman_client"
MAX_LINE = 500

Action = Callable[[BithumanClient], Awaitable[int]]


@dataclass(frozen=True)
class Target:
    """An API to call: its base URL and the secret it takes."""

    base_url: str
    secret: str


@dataclass(frozen=True)
class Prepared:
    target: Target
    action: Action


def check_command(agent_id: str) -> str:
    return f"{PROG} agent status {agent_id} --wait"


def render_dynamics(agent_id: str, catalog: DynamicsCatalog, out: TextIO) -> None:
    if not catalog.has_dynamics:
        print(f"{agent_id}: no dynamics (status: {catalog.status or 'unknown'})", file=out)
        return
    names = catalog.gesture_names
    print(f"{agent_id}: dynamics {catalog.status or 'available'}, {len(names)} gestures", file=out)
    for name in names:
        print(f"  {name}", file=out)


def render_context(answer: ContextAnswer, out: TextIO) -> None:
    data = answer.data
    rooms = "room" if data.delivered_to_rooms == 1 else "rooms"
    print(f"{answer.message or 'Done'}: delivered to {data.delivered_to_rooms} {rooms}", file=out)
    for room in data.rooms:
        result = room.get("result", "delivered")
        print(f"  {room.get('room_id')}: {result} via {room.get('via', '?')}", file=out)
    for label, entries in (("skipped", data.rooms_skipped), ("failed", data.rooms_failed)):
        for room in entries:
            print(f"  {room.get('room_id')}: {label}: {room.get('reason', '')}", file=out)


def render_status(agent_id: str, status: AgentStatus, out: TextIO) -> None:
    print(f"{status.agent_id or agent_id}: {status.status}", file=out)
    for name in ("name", "error_message", "model_url", "updated_at"):
        value = getattr(status, name)
        if value:
            print(f"  {name}: {value}", file=out)


class Run:
    """One CLI invocation: its arguments, where it prints, and what it is waiting for (so an
    interrupt can say how to pick the job up again)."""

    def __init__(
        self, args: argparse.Namespace, out: TextIO, err: TextIO, *, secrets: list[str]
    ) -> None:
        self.args = args
        self.out = out
        self.err = err
        self._secrets = secrets
        self.pending: str | None = None  # the agent id whose generation is being waited for
        self.last_answer: dict[str, Any] | None = None

    # -- output ----------------------------------------------------------------------------

    def one_line(self, text: str) -> str:
        line = " ".join(text.split())
        for secret in self._secrets:
            line = line.replace(secret, "[redacted]")
        return line if len(line) <= MAX_LINE else line[: MAX_LINE - 3] + "..."

    def answer(self, model: BaseModel) -> None:
        """Remember the API's answer; with --json, print it as received."""
        self.last_answer = model.model_dump(mode="json", exclude_unset=True)
        if self.args.json:
            self.print_json(self.last_answer)

    def print_json(self, body: Any) -> None:
        print(json.dumps(body, ensure_ascii=False), file=self.out, flush=True)

    def error(self, code: str, message: str, status: int | None = None) -> None:
        print(self.one_line(f"error: {code}: {message}"), file=self.err, flush=True)
        if self.args.json:
            body = {"success": False, "error": code, "status": status, "message": message}
            self.print_json(body | {"message": self.one_line(message)})

    def api_error(self, exc: BithumanError) -> int:
        if exc.code:
            code = exc.code
        elif isinstance(exc, NetworkError):
            code = "UNREACHABLE"
        else:
            code = f"HTTP_{exc.status}" if exc.status else "BAD_RESPONSE"
        message = str(exc)
        if self.pending:
            message += f"; the job keeps running: check it with {check_command(self.pending)}"
        self.error(code, message, exc.status)
        return exits.UNREACHABLE if isinstance(exc, NetworkError) else exits.API_ERROR

    def interrupted(self) -> int:
        if self.pending:
            print(
                f"interrupted: agent {self.pending} is still being generated; "
                f"check it with: {check_command(self.pending)}",
                file=self.err,
                flush=True,
            )
            if self.args.json and self.last_answer is not None:
                self.print_json(self.last_answer)
        else:
            print("interrupted", file=self.err, flush=True)
        return exits.INTERRUPTED

    # -- commands --------------------------------------------------------------------------

    def prepare(self, settings: CliSettings) -> Prepared:
        """Checks settings and arguments (files read, stdin read) before anything is sent."""
        args = self.args
        match args.command:
            case "speak":
                return Prepared(settings.context(), self._speak(_text(args.message)))
            case "add-context":
                return Prepared(settings.context(), self._add_context(_text(args.context)))
            case "agent" if args.action == "generate":
                return Prepared(settings.hosted(), self._generate(_media(args)))
            case "agent":
                return Prepared(settings.hosted(), self._status(args.agent_id))
            case "dynamics":
                return Prepared(settings.hosted(), self._dynamics)
            case _:
                return Prepared(settings.hosted(), self._generate_dynamics)

    def _speak(self, message: str) -> Action:
        async def speak(client: BithumanClient) -> int:
            args = self.args
            answer = await client.speak(
                args.agent_code, message, room_id=args.room, idempotency_key=args.idempotency_key
            )
            return self._delivered(answer)

        return speak

    def _add_context(self, context: str) -> Action:
        async def add_context(client: BithumanClient) -> int:
            args = self.args
            answer = await client.add_context(
                args.agent_code,
                context,
                context_type=args.context_type,
                room_id=args.room,
                idempotency_key=args.idempotency_key,
            )
            return self._delivered(answer)

        return add_context

    def _delivered(self, answer: ContextAnswer) -> int:
        self.answer(answer)
        if not self.args.json:
            render_context(answer, self.out)
        return exits.OK

    def _generate(self, media: dict[Kind, Media]) -> Action:
        async def generate(client: BithumanClient) -> int:
            fields = {kind: item.value for kind, item in media.items()}
            started = await client.generate_agent(prompt=self.args.prompt, **fields)
            if not self.args.wait:
                self.answer(started)
                if not self.args.json:
                    print(
                        f"agent {started.agent_id}: {started.status or 'started'}"
                        f" ({started.message or 'generation started'})\n"
                        f"check it with: {check_command(started.agent_id)}",
                        file=self.out,
                    )
                return exits.OK
            self.last_answer = started.model_dump(mode="json", exclude_unset=True)
            return await self._wait(client, started.agent_id)

        return generate

    def _status(self, agent_id: str) -> Action:
        async def status(client: BithumanClient) -> int:
            if self.args.wait:
                return await self._wait(client, agent_id)
            return self._show_status(agent_id, await client.agent_status(agent_id))

        return status

    def _show_status(self, agent_id: str, answer: AgentStatusAnswer) -> int:
        self.answer(answer)
        if not self.args.json:
            render_status(agent_id, answer.data, self.out)
        return exits.JOB_FAILED if answer.data.status == "failed" else exits.OK

    async def _wait(self, client: BithumanClient, agent_id: str) -> int:
        self.pending = agent_id
        progress = Progress(self.err, f"agent {agent_id}")

        async def poll() -> AgentStatusAnswer:
            answer = await client.agent_status(agent_id)
            self.last_answer = answer.model_dump(mode="json", exclude_unset=True)
            return answer

        try:
            final = await wait_for(
                poll,
                lambda answer: answer.data.status,
                lambda answer: answer.data.finished,
                progress,
                backoff=Backoff(first=self.args.poll_interval),
                deadline=self.args.wait_timeout,
            )
        except WaitTimeout as exc:
            self.error(
                "WAIT_TIMEOUT",
                f"gave up waiting after {format_elapsed(progress.elapsed)} ({exc}); the job keeps "
                f"running: check it with {check_command(agent_id)}",
            )
            return exits.WAIT_TIMEOUT
        self.pending = None
        return self._show_status(agent_id, final)

    async def _dynamics(self, client: BithumanClient) -> int:
        agent_id = self.args.agent_id
        catalog = await client.get_dynamics(agent_id)
        if self.args.json:
            body = {
                "agent_id": agent_id,
                "has_dynamics": catalog.has_dynamics,
                "status": catalog.status,
                "gestures": catalog.gesture_names,
            }
            self.print_json(body)
        else:
            render_dynamics(agent_id, catalog, self.out)
        return exits.OK

    async def _generate_dynamics(self, client: BithumanClient) -> int:
        args = self.args
        started = await client.generate_dynamics(
            args.agent_id, image_url=args.image_url, duration=args.duration, model=args.model
        )
        self.answer(started)
        if not args.json:
            print(
                f"dynamics for {started.agent_id}: {started.status or 'started'}"
                f" ({started.message or 'generation started'})\n"
                f"check them with: {PROG} dynamics {started.agent_id}",
                file=self.out,
            )
        return exits.OK


def _text(value: str) -> str:
    """A message argument; `-` reads it from stdin (without the final line break)."""
    return sys.stdin.read().removesuffix("\n") if value == "-" else value


def _media(args: argparse.Namespace) -> dict[Kind, Media]:
    kinds: tuple[Kind, ...] = ("image", "video", "audio")
    given = {kind: getattr(args, kind) for kind in kinds if getattr(args, kind) is not None}
    if args.prompt is None and not given:
        raise MediaError("agent generate: give --prompt, --image, --video or --audio")
    return {kind: resolve(kind, value) for kind, value in given.items()}


async def run_command(run: Run, prepared: Prepared) -> int:
    target = prepared.target
    async with BithumanClient(
        target.secret, base_url=target.base_url, timeout=run.args.timeout
    ) as client:
        try:
            return await prepared.action(client)
        except BithumanError as exc:
            return run.api_error(exc)
