"""Everything on this machine for `scripts/run-agent.sh dev` when no LIVEKIT_URL is set.

Starts a loopback livekit-server in dev mode, the token server (which serves the web page once
it is built) and `python -m agent dev`, prints where to open the page, and stops all three on
Ctrl-C or when any of them stops. Settings come from the environment and `./.env` as
everywhere; only OPENAI_API_KEY is needed. Without a bitHuman avatar configured the agent shows
the placeholder face, so the page has something to look at.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from dotenv import dotenv_values

ROOT = Path(__file__).resolve().parent.parent
DEV_KEY, DEV_SECRET = "devkey", "secret"  # livekit-server --dev's well-known pair, loopback only
AVATAR_SETTINGS = ("BITHUMAN_AVATAR_ID", "BITHUMAN_AVATAR_IMAGE", "BITHUMAN_MODEL_PATH")
START_TIMEOUT = 30.0
REGISTERED = b"registered worker"  # livekit's log line once the worker is on the server
REGISTER_TIMEOUT = 120.0  # a cold first start imports livekit and loads Silero
STOP_TIMEOUT = 20.0


class StackError(Exception):
    """A one-line reason the stack cannot start."""


def effective_settings(environ: Mapping[str, str], dotenv: Path) -> dict[str, str]:
    """What the services will read: `.env` under the environment, blank meaning unset."""
    merged = {k: v for k, v in dotenv_values(dotenv).items() if v is not None} | dict(environ)
    return {k: v for k, v in merged.items() if v.strip()}


def livekit_binary() -> str:
    """livekit-server on PATH, else the one scripts/livekit-server.sh builds with Go."""
    found = shutil.which("livekit-server")
    if found:
        return found
    built = subprocess.run(
        [str(ROOT / "scripts" / "livekit-server.sh")], stdout=subprocess.PIPE, check=False
    )
    if built.returncode != 0:  # the script has said why on stderr
        raise StackError(
            "no livekit-server: put one on PATH (https://docs.livekit.io/home/self-hosting/local/)"
            " or install Go 1.26+ so scripts/livekit-server.sh can build it"
        )
    return built.stdout.decode().strip()


def livekit_config(port: int) -> str:
    # loopback only: media stays on this machine and nothing listens on the network
    return (
        f"{{port: {port}, bind_addresses: [127.0.0.1], keys: {{{DEV_KEY}: {DEV_SECRET}}},"
        f" rtc: {{tcp_port: {port + 1}, udp_port: {port + 2}, node_ip: 127.0.0.1,"
        " use_external_ip: false, enable_loopback_candidate: true},"
        # the server offers jobs only below this worker load (0.7 by default), and the worker's
        # load is the machine's CPU: on a busy laptop the one local worker would get none
        " agents: {target_load: 2.0}}"
    )


def child_environments(
    settings: Mapping[str, str], livekit_port: int, *, terminal: bool = False
) -> dict[str, str]:
    """Variables the token server and the agent get on top of the inherited environment."""
    extra = {
        "LIVEKIT_URL": f"ws://127.0.0.1:{livekit_port}",
        "LIVEKIT_API_KEY": DEV_KEY,
        "LIVEKIT_API_SECRET": DEV_SECRET,
        "TOKEN_SERVER_HOST": settings.get("TOKEN_SERVER_HOST", "127.0.0.1"),
        # the only worker of this server: refusing a job for load would leave the room empty
        "AGENT_LOAD_THRESHOLD": settings.get("AGENT_LOAD_THRESHOLD", "inf"),
        # the agent's log reaches the terminal through our pipe, where `auto` would mean JSON
        "LOG_FORMAT": settings.get("LOG_FORMAT", "console" if terminal else "auto"),
    }
    if "AVATAR_MODE" not in settings and not any(name in settings for name in AVATAR_SETTINGS):
        extra["AVATAR_MODE"] = "placeholder"
    return extra


def _stopped(name: str, process: asyncio.subprocess.Process, log: Path) -> StackError:
    return StackError(f"{name} stopped while starting (exit {process.returncode}); see {log}")


async def wait_until_listening(
    port: int, process: asyncio.subprocess.Process, name: str, log: Path
) -> None:
    async with asyncio.timeout(START_TIMEOUT):
        while True:
            if process.returncode is not None:
                raise _stopped(name, process, log)
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return
            await asyncio.sleep(0.1)


async def wait_until_healthy(
    url: str, process: asyncio.subprocess.Process, name: str, log: Path
) -> None:
    async with aiohttp.ClientSession() as session, asyncio.timeout(START_TIMEOUT):
        while True:
            if process.returncode is not None:
                raise _stopped(name, process, log)
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)


async def stop(processes: list[asyncio.subprocess.Process]) -> None:
    """SIGINT (what Ctrl-C sends) to each, last started first, then SIGKILL after a grace; and
    SIGKILL to what is left of its process group (the agent's job processes, say), so nothing
    outlives the stack or holds its pipes open."""
    for process in reversed(processes):
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # its own group: start_new_session


@dataclass(frozen=True)
class Plan:
    livekit_port: int
    token_port: int
    env: dict[str, str]
    logs: Path
    agent_args: list[str]


def plan(argv: list[str]) -> Plan:
    settings = effective_settings(os.environ, Path(".env"))
    livekit_port = int(settings.get("LOCAL_LIVEKIT_PORT", "7880"))
    logs = Path("var")
    logs.mkdir(exist_ok=True)
    return Plan(
        livekit_port=livekit_port,
        token_port=int(settings.get("TOKEN_SERVER_PORT", "3000")),
        env=dict(os.environ)
        | child_environments(settings, livekit_port, terminal=sys.stderr.isatty()),
        logs=logs,
        agent_args=argv or ["dev"],
    )


class LocalStack:
    """The three processes, each in its own process group so only we decide when they stop."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self.registered = asyncio.Event()
        self._forwarding: asyncio.Task[None] | None = None

    async def _spawn(self, name: str, *command: str, log: Path | None = None) -> None:
        output: Any = log.open("ab") if log else asyncio.subprocess.PIPE
        try:
            self.processes[name] = await asyncio.create_subprocess_exec(
                *command,
                env=self.plan.env,
                stdout=output,
                stderr=output if log else asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            if log:
                output.close()

    async def _forward_agent_output(self, stream: asyncio.StreamReader) -> None:
        """The agent's log is the user's to read; its registration is our cue to say 'open'.
        Read in chunks, not lines: one long line (a traceback as JSON) must not stop it."""
        tail = b""
        while chunk := await stream.read(65536):
            sys.stderr.buffer.write(chunk)
            sys.stderr.flush()
            if REGISTERED in tail + chunk:
                self.registered.set()
            tail = chunk[-len(REGISTERED) :]

    async def start(self) -> None:
        plan = self.plan
        binary = await asyncio.to_thread(livekit_binary)
        config = livekit_config(plan.livekit_port)
        log = plan.logs / "livekit-server.log"
        await self._spawn("livekit-server", binary, "--config-body", config, log=log)
        await wait_until_listening(
            plan.livekit_port, self.processes["livekit-server"], "livekit-server", log
        )
        log = plan.logs / "token-server.log"
        await self._spawn("the token server", sys.executable, "-m", "token_server", log=log)
        await wait_until_healthy(
            f"http://127.0.0.1:{plan.token_port}/healthz",
            self.processes["the token server"],
            "the token server",
            log,
        )
        await self._spawn("the agent", sys.executable, "-m", "agent", *plan.agent_args)
        stdout = self.processes["the agent"].stdout
        assert stdout is not None  # piped above
        self._forwarding = asyncio.ensure_future(self._forward_agent_output(stdout))
        agent_ended = asyncio.ensure_future(self.processes["the agent"].wait())
        registered = asyncio.ensure_future(self.registered.wait())
        try:
            async with asyncio.timeout(REGISTER_TIMEOUT):
                await asyncio.wait([agent_ended, registered], return_when=asyncio.FIRST_COMPLETED)
        finally:
            agent_ended.cancel()
            registered.cancel()
        if not self.registered.is_set():
            raise StackError(f"the agent stopped (exit {self.processes['the agent'].returncode})")

    async def first_exit(self) -> tuple[str, int]:
        waits = {asyncio.ensure_future(p.wait()): name for name, p in self.processes.items()}
        done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for waiter in pending:
            waiter.cancel()
        finished = done.pop()
        return waits[finished], finished.result()

    async def stop(self) -> None:
        await stop(list(self.processes.values()))
        if self._forwarding:
            # the pipe closes with the agent's group; a bound in case something still holds it
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._forwarding, STOP_TIMEOUT)


async def run(plan: Plan) -> int:
    stack = LocalStack(plan)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    interrupted = asyncio.ensure_future(stopping.wait())
    try:
        starting = asyncio.ensure_future(stack.start())
        await asyncio.wait([starting, interrupted], return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            # let it unwind before stopping, so no process it was spawning is left behind
            with contextlib.suppress(asyncio.CancelledError):
                await starting
            return 0
        starting.result()
        print(
            f"open http://localhost:{plan.token_port} to talk to your agent (LiveKit on"
            f" ws://127.0.0.1:{plan.livekit_port}, key {DEV_KEY}; Ctrl-C stops everything)",
            file=sys.stderr,
            flush=True,
        )
        exited = asyncio.ensure_future(stack.first_exit())
        await asyncio.wait([exited, interrupted], return_when=asyncio.FIRST_COMPLETED)
        if not exited.done():
            exited.cancel()
            return 0
        name, status = exited.result()
        print(f"local stack: {name} stopped (exit {status})", file=sys.stderr)
        return status or 1
    except StackError as error:
        print(f"local stack: {error}", file=sys.stderr)
        return 1
    except TimeoutError:
        print("local stack: a service did not start in time (logs in var/)", file=sys.stderr)
        return 1
    finally:
        interrupted.cancel()
        await stack.stop()


def main() -> None:
    sys.exit(asyncio.run(run(plan(sys.argv[1:]))))


if __name__ == "__main__":
    main()
