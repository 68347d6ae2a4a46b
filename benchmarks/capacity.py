"""Capacity: how many concurrent sessions one worker holds, through a real livekit-server.

    python benchmarks/capacity.py [--modes none,placeholder,cloud] [--users 1,5,10,15,20]
        [--duration 45] [--until-break] [--set NAME=VALUE ...] [--keep DIR]
        [--lk PATH [--lk-rooms 1,5,10] [--lk-duration 60]]

The stack, on a 2-core machine: one worker (`python -m agent start` from a written `.env`,
nothing of ours exported) pinned with the affinity of `taskset` to `--worker-core`, its job
processes with it; everything else on `--load-core`: livekit-server (tools/livekit-server, via a
`taskset` wrapper), N simulated users in their own process (benchmarks/capacity_users.py: livekit
rtc clients talking in turns with pauses and listening to the reply), the OpenAI Realtime
stand-in in its own process pacing replies in real time, the token server (in this process) and,
in `cloud` mode, bitHuman's cloud avatar stand-in in its own process: the avatar's rendering and
video encoding are NOT on the worker's core, as in production, where bitHuman's cloud does them.
`placeholder` draws and encodes the face in the worker (AVATAR_MODE=placeholder).

Per N, after every user has heard its greeting, over `--duration` seconds of turns:
- CPU: the worker's process tree (main process, forkserver, job processes; reaped ones through
  their parents' children times), % of one core; the load core's processes too, to show when the
  load generator rather than the worker is the limit;
- PSS: summed over the tree from /proc/<pid>/smaps_rollup (mean of samples); per session as
  total/N and as (total - idle worker)/N;
- turn latency: end of the user's speech -> first voiced reply frame at the user, p50/p95;
- reply audio at the user: missing (voiced 10 ms frames short of the reply's length) and gaps
  (silent frames inside a reply: late audio);
- failed sessions (no agent or greeting, agent gone) and turns without a reply.

The headline: the largest N with the worker's tree under 70% of its core, turn latency p95
within 1.5x of N=1's, and nothing failed. The worker runs with AGENT_LOAD_THRESHOLD=inf and the
server's agents.target_load raised (devkit/livekit_server.py): admission is not what is measured.
`--set` adds worker settings (before/after comparisons, e.g. --set AGENT_LOCAL_VAD=false).
Figures from a machine where other work runs are contaminated: the load averages are printed.

`--lk PATH` (LiveKit's CLI, benchmarks/build-lk.sh builds it) adds an independent check per mode:
`lk perf agent-load-test` against a fresh worker of the same settings and pinning, lk on the load
core, per room count. lk opens a room, publishes an echo track, dispatches the worker's agent
name there and echoes what the agent says back after 1 s (so the agent hears its own speech as
the user's), and it opens room i+1 only once the agent joined room i: the ramp is serial. Printed
per room count from lk's own table: agents joined, join delay (dispatch -> agent joined) p50 and
max, rooms where anything failed; and the ramp's length and the worker tree's CPU and PSS over
the `--lk-duration` seconds after the last agent joined (over the whole run if the ramp stalled:
no new job for 30 s). Then capacity.py's row and lk's side by side at the headline's N. lk
measures joining and an echo conversation's load, not turn latency nor the audio's quality.
`--keep` keeps lk's raw output (lk-<mode>-<rooms>.out).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import secrets
import signal
import stat
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from aiohttp.test_utils import TestServer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.e2e_latency_bench import percentile  # noqa: E402
from devkit.harness import OUR_VARIABLES, AgentProcess, write_env  # noqa: E402
from devkit.livekit_server import BINARY, LiveKitServer, require_server, running_server  # noqa: E402
from devkit.openai_realtime import GREETING  # noqa: E402
from token_server.app import create_app  # noqa: E402
from token_server.settings import TokenServerSettings  # noqa: E402

MS_PER_CHAR = 50  # the stand-in's speech rate: about 3 s of reply to the transcript below
TRANSCRIPT = "could you tell me a little about the weather today"
REPLY_MS = len(f"You said: {TRANSCRIPT}.") * MS_PER_CHAR  # the stand-in's default reply rule
IDLE_PROCESSES = 2
CPU_LIMIT = 70.0
LATENCY_FACTOR = 1.5
PSS_EVERY_S = 5.0
MODES = ("none", "placeholder", "cloud")
SPEECH_NOTE = "1.5 s of speech-like audio per turn after a 1-3 s pause"
LK_STALL_S = 30.0  # lk's ramp gave up on: no new job at the worker for this long
LK_ECHO_DELAY = "1s"


# --- the worker's process tree --------------------------------------------------------------------


def tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def cpu_seconds(processes: list[psutil.Process]) -> float:
    """User + system time of these processes and of their reaped children."""
    total = 0.0
    for proc in processes:
        with contextlib.suppress(psutil.Error):
            t = proc.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


def pss_mb(processes: list[psutil.Process]) -> float:
    total_kb = 0
    for proc in processes:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{proc.pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kb += int(line.split()[1])
                    break
    return total_kb / 1024


class CpuMeter:
    """CPU % of one core used by process trees between start() and stop()."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.before: dict[str, float] = {}
        self.started = 0.0

    def start(self) -> None:
        self.started = time.monotonic()
        self.before = {name: cpu_seconds(tree(pid)) for name, pid in self.pids.items()}

    def stop(self) -> dict[str, float]:
        elapsed = time.monotonic() - self.started
        return {
            name: 100 * (cpu_seconds(tree(pid)) - self.before[name]) / elapsed
            for name, pid in self.pids.items()
        }


# --- the services ---------------------------------------------------------------------------------


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


@contextlib.contextmanager
def pinned_server_binary(core: int, folder: Path) -> Iterator[None]:
    """livekit-server started through `taskset` (devkit/livekit_server.py honours
    LIVEKIT_SERVER_BIN)."""
    wrapper = folder / "livekit-server-pinned"
    real = os.environ.get("LIVEKIT_SERVER_BIN", str(BINARY))
    wrapper.write_text(f'#!/bin/sh\nexec taskset -c {core} "{real}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    previous = os.environ.get("LIVEKIT_SERVER_BIN")
    os.environ["LIVEKIT_SERVER_BIN"] = str(wrapper)
    try:
        yield
    finally:
        if previous is None:
            del os.environ["LIVEKIT_SERVER_BIN"]
        else:
            os.environ["LIVEKIT_SERVER_BIN"] = previous


@dataclass
class Helper:
    """A child process (a stand-in, the users) pinned to the load core, JSON lines on stdout."""

    process: asyncio.subprocess.Process

    @classmethod
    async def start(cls, core: int, script: str, *args: str, log: Path) -> Helper:
        env = {k: v for k, v in os.environ.items() if not k.startswith(OUR_VARIABLES)}
        with log.open("ab") as stderr:
            process = await asyncio.create_subprocess_exec(
                "taskset", "-c", str(core), sys.executable, str(ROOT / "benchmarks" / script),
                *args, env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=stderr, limit=2**24,
            )  # fmt: skip
        return cls(process)

    async def line(self, within: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        async with asyncio.timeout(within):
            raw = await self.process.stdout.readline()
        if not raw:
            raise RuntimeError(f"{self.process.pid} exited ({await self.process.wait()})")
        parsed: dict[str, Any] = json.loads(raw)
        return parsed

    def send(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text.encode())

    async def stop(self, grace: float = 0.0) -> None:
        """SIGTERM after `grace` seconds (the users leave their rooms by themselves)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await self.process.wait()
        if self.process.returncode is None:
            self.process.terminate()
        try:
            async with asyncio.timeout(30):
                await self.process.wait()
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


# --- one N ----------------------------------------------------------------------------------------


@dataclass
class Row:
    users: int
    worker_cpu: float = math.nan
    load_cpu: float = math.nan  # the load core's processes, % of one core
    pss_total: float = math.nan
    pss_idle: float = math.nan
    latencies: list[float] = field(default_factory=list)
    expected: int = 0
    voiced: int = 0
    gaps: int = 0
    no_reply: int = 0
    failed: list[str] = field(default_factory=list)
    loadavg: str = ""

    @property
    def p50(self) -> float:
        return percentile(self.latencies, 0.5) if self.latencies else math.nan

    @property
    def p95(self) -> float:
        return percentile(self.latencies, 0.95) if self.latencies else math.nan

    @property
    def missing_pct(self) -> float:
        return 100 * max(0, self.expected - self.voiced) / self.expected if self.expected else 0.0

    @property
    def gaps_pct(self) -> float:
        return 100 * self.gaps / self.expected if self.expected else 0.0

    def fits(self, baseline_p95: float) -> bool:
        return (
            self.worker_cpu < CPU_LIMIT
            and not self.failed
            and not self.no_reply
            and bool(self.latencies)
            and self.p95 <= LATENCY_FACTOR * baseline_p95
        )


@dataclass
class Stack:
    lk: LiveKitServer
    folder: Path
    load_core: int
    worker_core: int
    realtime_url: str
    bithuman: dict[str, str] | None
    helpers: dict[str, int]  # load-core pids by name, for the CPU figure


@contextlib.asynccontextmanager
async def worker(
    stack: Stack, mode: str, extra: dict[str, str]
) -> AsyncIterator[tuple[AgentProcess, str, str]]:
    """A pinned worker for `mode` and a token server dispatching it; yields (agent, token URL,
    agent name)."""
    agent_name = f"cap-{mode}-{secrets.token_hex(3)}"
    settings = {
        **stack.lk.env(),
        "OPENAI_API_KEY": "sk-capacity-bench",
        "OPENAI_BASE_URL": stack.realtime_url,
        "AGENT_NAME": agent_name,
        "LOG_FORMAT": "json",
        "AGENT_LOAD_THRESHOLD": "inf",  # measure the worker, not its admission
        "AGENT_IDLE_PROCESSES": str(IDLE_PROCESSES),
        "AGENT_HTTP_PORT": "0",
        "AGENT_DRAIN_TIMEOUT": "30",
        "AVATAR_MODE": {"none": "none", "placeholder": "placeholder", "cloud": "bithuman-cloud"}[
            mode
        ],
    }
    if mode == "cloud":
        assert stack.bithuman is not None
        settings |= {
            "BITHUMAN_API_SECRET": stack.bithuman["secret"],
            "BITHUMAN_AVATAR_ID": "A00CAPACITY1",
            "BITHUMAN_API_URL": stack.bithuman["session_request_url"],
            "BITHUMAN_REST_URL": stack.bithuman["url"],
        }
    settings |= extra
    token_values: dict[str, Any] = {
        "_env_file": None,
        **stack.lk.env(),
        "AGENT_NAME": agent_name,
        "TOKEN_SERVER_RATE_LIMIT_PER_MINUTE": 0,
    }
    token_settings = TokenServerSettings(**token_values)
    token_server = TestServer(create_app(token_settings), host="127.0.0.1")
    await token_server.start_server()
    folder = stack.folder / f"worker-{mode}-{secrets.token_hex(2)}"
    folder.mkdir()
    write_env(folder, settings)
    agent = await AgentProcess.start(folder)
    # at once, while the interpreter starts: the forkserver and job processes inherit it
    os.sched_setaffinity(agent.process.pid, {stack.worker_core})
    try:
        await agent.wait_for_log("registered worker", within=120)
        await agent.wait_for_log("process prewarmed", count=IDLE_PROCESSES, within=120)
        yield agent, str(token_server.make_url("")).rstrip("/"), agent_name
    finally:
        try:
            await agent.stop(within=60)
        except TimeoutError:
            print(f"{mode}: the worker did not stop within 60 s: killed", file=sys.stderr)
        await token_server.close()


async def settle(agent: AgentProcess, processes: int, within: float = 90) -> None:
    """Until the worker is back to its idle process count (the last jobs ended)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(within):
            while len(tree(agent.process.pid)) > processes:
                await asyncio.sleep(0.5)
    await asyncio.sleep(2)


async def measure_n(
    stack: Stack, agent: AgentProcess, token_url: str, mode: str, n: int, args: argparse.Namespace
) -> Row:
    row = Row(n)
    voice = "avatar" if mode == "cloud" else "agent"
    users = await Helper.start(
        stack.load_core, "capacity_users.py", "--token-url", token_url, "--users", str(n),
        "--voice", voice, "--reply-frames", str(REPLY_MS // 10), "--join-rate",
        str(args.join_rate), "--tag", f"{mode}{n}-{secrets.token_hex(2)}",
        log=stack.folder / "users.log",
    )  # fmt: skip
    try:
        ready = await users.line(within=n / args.join_rate + 180)
        row.failed = list(ready["failed"])
        meter = CpuMeter({"worker": agent.process.pid, **stack.helpers, "users": users.process.pid})
        meter.start()
        pss: list[float] = []
        deadline = time.monotonic() + args.duration
        while (left := deadline - time.monotonic()) > 0:
            pss.append(pss_mb(tree(agent.process.pid)))
            await asyncio.sleep(min(PSS_EVERY_S, left))
        cpu = meter.stop()
        row.loadavg = load()
        row.worker_cpu = cpu.pop("worker")
        row.load_cpu = sum(cpu.values())
        row.pss_total = sum(pss) / len(pss)
        users.send("stop\n")
        result = await users.line(within=120)
        (stack.folder / f"turns-{mode}-{n}.json").write_text(json.dumps(result, indent=1))
    finally:
        await users.stop(grace=20)
    row.failed = list(result["failed"])
    for turn in result["turns"]:
        row.expected += turn["expected"]
        if turn["latency"] is None:
            row.no_reply += 1
            continue
        row.latencies.append(turn["latency"])
        row.voiced += min(turn["voiced"], turn["expected"])
        row.gaps += turn["gaps"]
    return row


# --- output ---------------------------------------------------------------------------------------

HEADER = (
    f"{'N':>3} {'worker CPU':>10} {'CPU/sess':>8} {'PSS MB':>7} {'MB/sess':>7} {'marginal':>8}"
    f" {'p50 ms':>7} {'p95 ms':>7} {'turns':>5} {'missing':>7} {'gaps':>6} {'failed':>6}"
    f" {'load core':>9}  load avg"
)


def print_row(row: Row) -> None:
    marginal = (row.pss_total - row.pss_idle) / row.users
    print(
        f"{row.users:3d} {row.worker_cpu:9.1f}% {row.worker_cpu / row.users:7.1f}%"
        f" {row.pss_total:7.0f} {row.pss_total / row.users:7.0f} {marginal:8.0f}"
        f" {row.p50 * 1000:7.0f} {row.p95 * 1000:7.0f} {len(row.latencies):5d}"
        f" {row.missing_pct:6.1f}% {row.gaps_pct:5.1f}%"
        f" {len(row.failed) + row.no_reply:6d} {row.load_cpu:8.0f}%  {row.loadavg}",
        flush=True,
    )
    for failure in row.failed[:5]:
        print(f"      failed: {failure}")
    if row.no_reply:
        print(f"      {row.no_reply} turns got no reply within 20 s")


def headline(mode: str, rows: list[Row]) -> int | None:
    """Prints the headline; returns its N (None without a baseline)."""
    if not rows or not rows[0].latencies:
        print(f"{mode}: no baseline (N={rows[0].users if rows else '?'} failed)\n")
        return None
    base = rows[0].p95
    fitting = [r.users for r in rows if r.fits(base)]
    best = max(fitting, default=0)
    # the headline is a contiguous run: an N that fits after one that broke is luck
    for row in rows:
        if not row.fits(base):
            best = min(best, max((r.users for r in rows if r.users < row.users), default=0))
            break
    print(
        f"{mode}: max sessions per core at < {CPU_LIMIT:.0f}% CPU with turn latency p95 within"
        f" {LATENCY_FACTOR}x of N={rows[0].users} ({base * 1000:.0f} ms) and no failures:"
        f" {best}\n"
    )
    return best


# --- lk's agent load test (--lk) ------------------------------------------------------------------

ANSI = re.compile(r"\x1b\[[0-9;]*m")
GO_DURATION = re.compile(r"([0-9.]+)(ns|us|µs|ms|s|m|h)")
GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def go_seconds(text: str) -> float:
    """A Go time.Duration's String() ("850.2ms", "1.5s", "1m2.3s") in seconds."""
    return sum(float(number) * GO_UNITS[unit] for number, unit in GO_DURATION.findall(text))


@dataclass
class LkRoom:
    name: str
    joined: bool
    delay: float | None  # dispatch -> agent joined, s
    subscribed: bool  # lk got the agent's audio
    echoed: bool  # lk published its echo track

    @property
    def missing(self) -> list[str]:
        checks = {"agent": self.joined, "agent audio": self.subscribed, "echo track": self.echoed}
        return [what for what, ok in checks.items() if not ok]


def lk_table(output: str) -> list[LkRoom]:
    """The rows of lk's "Test Statistics" table (the rooms it opened)."""
    rooms = []
    for line in ANSI.sub("", output).splitlines():
        cells = [cell.strip() for cell in line.strip().strip("│").split("│")]
        if len(cells) == 7 and cells[0].isdigit():
            _, name, _, joined, delay, subscribed, echoed = cells
            delay_s = None if delay == "-" else go_seconds(delay)
            ok = [mark == "✓" for mark in (joined, subscribed, echoed)]
            rooms.append(LkRoom(name, ok[0], delay_s, ok[1], ok[2]))
    return rooms


@dataclass
class LkRow:
    rooms: int
    opened: list[LkRoom] = field(default_factory=list)
    ramp: float | None = None  # s until every agent had joined; None: the ramp stalled
    worker_cpu: float = math.nan  # after the ramp (over the whole run if it stalled)
    pss_total: float = math.nan
    left: int = 0  # "Participant disconnected" lines before lk was stopped
    error: str = ""
    took: float = 0.0
    loadavg: str = ""

    @property
    def joined(self) -> int:
        return sum(room.joined for room in self.opened)

    @property
    def delays(self) -> list[float]:
        return [room.delay for room in self.opened if room.delay is not None]

    @property
    def failed_rooms(self) -> int:
        return self.rooms - sum(not room.missing for room in self.opened)

    @property
    def failed(self) -> list[str]:
        failures = [
            f"{room.name}: no {', no '.join(room.missing)}" for room in self.opened if room.missing
        ]
        if len(self.opened) < self.rooms:
            failures.append(f"rooms never opened: {self.rooms - len(self.opened)}")
        if self.left:
            failures.append(f"{self.left} participants left before the end")
        if self.error:
            failures.append(self.error)
        return failures


async def lk_load_test(
    stack: Stack, agent: AgentProcess, agent_name: str, mode: str, n: int, args: argparse.Namespace
) -> LkRow:
    """One `lk perf agent-load-test` of n rooms, on the load core; the worker's CPU and PSS
    after its ramp. lk runs until SIGINT (then prints its table); its --duration is a backstop."""
    row = LkRow(n)
    backstop = LK_STALL_S * (n + 1) + args.lk_duration + 60
    process = await asyncio.create_subprocess_exec(
        "taskset", "-c", str(stack.load_core), str(args.lk), "perf", "agent-load-test",
        "--url", stack.lk.url, "--api-key", stack.lk.api_key, "--api-secret", stack.lk.api_secret,
        "--rooms", str(n), "--agent-name", agent_name, "--duration", f"{backstop:.0f}s",
        "--echo-speech-delay", LK_ECHO_DELAY, cwd=stack.folder, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    lines: list[str] = []
    ramped = asyncio.Event()

    async def read() -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            lines.append(raw.decode(errors="replace"))
            if "started successfully" in lines[-1]:  # every agent joined: lk's ramp is over
                ramped.set()

    reader = asyncio.create_task(read())
    pid = agent.process.pid
    meter = CpuMeter({"worker": pid})
    meter.start()
    pss: list[float] = []
    started = last_job = time.monotonic()
    jobs = len(agent.logged("received job request"))
    try:
        while not ramped.is_set() and process.returncode is None:
            pss.append(pss_mb(tree(pid)))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PSS_EVERY_S):
                    await ramped.wait()
            if (now := len(agent.logged("received job request"))) > jobs:
                jobs, last_job = now, time.monotonic()
            elif time.monotonic() - last_job > LK_STALL_S:
                break  # lk waits for an agent that is not coming
        if ramped.is_set():
            row.ramp = time.monotonic() - started
            meter.start()
            pss = []
            deadline = time.monotonic() + args.lk_duration
            while (left := deadline - time.monotonic()) > 0 and process.returncode is None:
                pss.append(pss_mb(tree(pid)))
                await asyncio.sleep(min(PSS_EVERY_S, left))
        row.worker_cpu = meter.stop()["worker"]
        row.pss_total = sum(pss) / len(pss) if pss else math.nan
        row.loadavg = load()
        row.left = sum("Participant disconnected" in line for line in lines)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)  # lk prints its table and leaves the rooms
        try:
            async with asyncio.timeout(60):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()
        await reader
        (stack.folder / f"lk-{mode}-{n}.out").write_text("".join(lines))
    row.opened = lk_table("".join(lines))
    if not row.opened:
        row.error = f"lk printed no table (exit {process.returncode}): see lk-{mode}-{n}.out"
    return row


LK_HEADER = (
    f"{'rooms':>5} {'joined':>7} {'ramp s':>6} {'join p50':>8} {'join max':>8} {'worker CPU':>10}"
    f" {'PSS MB':>7} {'failed':>6} {'took s':>6}  load avg"
)


def print_lk_row(row: LkRow) -> None:
    delays = sorted(row.delays)
    p50 = f"{percentile(delays, 0.5):7.2f}s" if delays else f"{'-':>8}"
    top = f"{delays[-1]:7.2f}s" if delays else f"{'-':>8}"
    ramp = f"{row.ramp:6.1f}" if row.ramp is not None else f"{'-':>6}"
    print(
        f"{row.rooms:5d} {f'{row.joined}/{row.rooms}':>7} {ramp} {p50} {top}"
        f" {row.worker_cpu:9.1f}% {row.pss_total:7.0f} {row.failed_rooms:6d} {row.took:6.0f}"
        f"  {row.loadavg}",
        flush=True,
    )
    if row.ramp is None:
        print("      the ramp did not finish: CPU and PSS over the whole run")
    for failure in row.failed[:5]:
        print(f"      failed: {failure}")


def side_by_side(mode: str, rows: list[Row], lk_rows: list[LkRow], best: int | None) -> None:
    """capacity.py's row and lk's at the headline's N (else the largest N both ran)."""
    ours = {row.users: row for row in rows}
    theirs = {row.rooms: row for row in lk_rows}
    common = set(ours) & set(theirs)
    if not common:
        print(f"{mode}: no N both ran (capacity.py {sorted(ours)}, lk {sorted(theirs)})\n")
        return
    n = best if best in common else max(common)
    why = (
        "the headline"
        if n == best
        else f"the largest both ran; the headline: {'none' if best is None else best}"
    )
    row, lk = ours[n], theirs[n]
    delays = sorted(lk.delays)
    join = f"join p50 {percentile(delays, 0.5):.2f} s" if delays else "no joins"
    print(
        f"{mode} at N={n} ({why}): capacity.py {n - len(row.failed)}/{n} sessions, worker CPU"
        f" {row.worker_cpu:.0f}%, PSS {row.pss_total:.0f} MB, turn p95 {row.p95 * 1000:.0f} ms"
        f" | lk {lk.joined}/{n} agents joined, {join}, worker CPU {lk.worker_cpu:.0f}%,"
        f" PSS {lk.pss_total:.0f} MB, {lk.failed_rooms} rooms failed"
        " (lk: joins and an echo conversation's load; no turn latency)\n"
    )


async def run_lk(
    stack: Stack, mode: str, args: argparse.Namespace, rows: list[Row], best: int | None
) -> None:
    print(
        f"mode {mode}: lk perf agent-load-test (echo after {LK_ECHO_DELAY}), a fresh worker,"
        f" {args.lk_duration:.0f} s measured after the ramp; load avg {load()}"
    )
    print(LK_HEADER, flush=True)
    lk_rows: list[LkRow] = []
    async with worker(stack, mode, args.extra) as (agent, _url, agent_name):
        await asyncio.sleep(3)
        idle_processes = len(tree(agent.process.pid))
        for n in args.lk_rooms:
            started = time.monotonic()
            try:
                row = await lk_load_test(stack, agent, agent_name, mode, n, args)
            except Exception as exc:
                row = LkRow(n, error=f"the run failed: {type(exc).__name__}: {exc}")
                row.loadavg = load()
            row.took = time.monotonic() - started
            lk_rows.append(row)
            print_lk_row(row)
            if row.failed and not args.past_break:
                break
            await settle(agent, idle_processes)
    side_by_side(mode, rows, lk_rows, best)


# --- main -----------------------------------------------------------------------------------------


async def run_mode(stack: Stack, mode: str, args: argparse.Namespace) -> list[Row]:
    print(f"mode {mode} ({TITLES[mode]}), {args.duration:.0f} s per N; load avg {load()}")
    print(HEADER, flush=True)
    rows: list[Row] = []
    async with worker(stack, mode, args.extra) as (agent, token_url, _name):
        await asyncio.sleep(3)
        idle_processes = len(tree(agent.process.pid))
        idle = pss_mb(tree(agent.process.pid))
        counts = list(args.users)
        while counts:
            n = counts.pop(0)
            try:
                row = await measure_n(stack, agent, token_url, mode, n, args)
            except Exception as exc:
                row = Row(n, failed=[f"the run failed: {type(exc).__name__}: {exc}"])
                row.loadavg = load()
            row.pss_idle = idle
            rows.append(row)
            print_row(row)
            broken = not row.fits(rows[0].p95) if rows[0].latencies else True
            if broken and not args.past_break:
                break
            if not counts and args.until_break and not broken:
                counts.append(n + 5)
            await settle(agent, idle_processes)
        affinity = {p.pid: p.cpu_affinity() for p in tree(agent.process.pid)}
        if any(cores != [stack.worker_core] for cores in affinity.values()):
            print(f"  warning: worker affinity not pinned: {affinity}")
    print(f"  idle worker ({idle_processes} processes): {idle:.0f} MB PSS")
    best = headline(mode, rows)
    if args.lk:
        await run_lk(stack, mode, args, rows, best)
    return rows


TITLES = {
    "none": "audio only",
    "placeholder": "placeholder face drawn and encoded in the worker",
    "cloud": "bitHuman cloud avatar stand-in OUTSIDE the worker: agent streams audio to it",
}


async def main_async(args: argparse.Namespace) -> None:
    os.sched_setaffinity(0, {args.load_core})
    with (
        tempfile.TemporaryDirectory(prefix="capacity-") as scratch,
        pinned_server_binary(args.load_core, Path(scratch)),
    ):
        folder = args.keep.resolve() if args.keep else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        with running_server(folder) as lk:
            server_pid = next(
                p.pid
                for p in psutil.Process().children(recursive=True)
                if p.name().startswith("livekit")
            )
            realtime = await Helper.start(
                args.load_core, "capacity_services.py", "realtime", "--ms-per-char",
                str(MS_PER_CHAR), "--transcript", TRANSCRIPT, log=folder / "realtime.log",
            )  # fmt: skip
            bithuman: Helper | None = None
            try:
                urls = await realtime.line(within=60)
                helpers = {"server": server_pid, "realtime": realtime.process.pid}
                bithuman_urls = None
                if "cloud" in args.modes:
                    bithuman = await Helper.start(
                        args.load_core, "capacity_services.py", "bithuman",
                        log=folder / "bithuman.log",
                    )  # fmt: skip
                    bithuman_urls = await bithuman.line(within=60)
                    helpers["bithuman"] = bithuman.process.pid
                stack = Stack(
                    lk, folder, args.load_core, args.worker_core, urls["base_url"],
                    bithuman_urls, helpers,
                )  # fmt: skip
                for mode in args.modes:
                    await run_mode(stack, mode, args)
            finally:
                await realtime.stop()
                if bithuman is not None:
                    await bithuman.stop()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modes", default="none", help=f"comma-separated: {', '.join(MODES)}")
    parser.add_argument("--users", default="1,5,10,15,20", help="N values, in order")
    parser.add_argument("--duration", type=float, default=45.0, help="seconds measured per N")
    parser.add_argument("--until-break", action="store_true", help="N += 5 past the list")
    parser.add_argument(
        "--past-break", action="store_true", help="go on with the list after a row breaks"
    )
    parser.add_argument("--join-rate", type=float, default=2.0, help="users joining per second")
    parser.add_argument("--worker-core", type=int, default=0)
    parser.add_argument("--load-core", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--keep", type=Path, help="a folder to keep the logs in")
    parser.add_argument("--lk", type=Path, help="lk (livekit-cli): also run its agent load test")
    parser.add_argument("--lk-rooms", help="lk's room counts, in order (default: --users's)")
    parser.add_argument(
        "--lk-duration", type=float, default=60.0, help="seconds measured after lk's ramp"
    )
    args = parser.parse_args(argv)
    if args.lk is not None and not (args.lk.is_file() and os.access(args.lk, os.X_OK)):
        parser.exit(2, f"{parser.prog}: no executable lk at {args.lk} (benchmarks/build-lk.sh)\n")
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    args.users = [int(n) for n in args.users.split(",") if n.strip()]
    args.lk_rooms = (
        [int(n) for n in args.lk_rooms.split(",") if n.strip()] if args.lk_rooms else args.users
    )
    if (
        not args.modes
        or set(args.modes) - set(MODES)
        or not args.users
        or min(args.users) < 1
        or not args.lk_rooms
        or min(args.lk_rooms) < 1
    ):
        parser.error(f"--modes takes {', '.join(MODES)}; --users and --lk-rooms positive integers")
    if any("=" not in item for item in args.set):
        parser.error("--set takes NAME=VALUE")
    args.extra = dict(item.split("=", 1) for item in args.set)
    return args


def main() -> None:
    args = parse_args()
    version = require_server()
    print(
        f"capacity, {version} on 127.0.0.1; {os.cpu_count()} CPUs: worker on core"
        f" {args.worker_core}, server + users + stand-ins on core {args.load_core};"
        f" load avg {load()} at start"
    )
    print(
        f"users: {SPEECH_NOTE}; replies {REPLY_MS / 1000:.2f} s of tone paced in real time,"
        f" greeting {len(GREETING) * MS_PER_CHAR / 1000:.2f} s"
        + (f"; worker settings {args.extra}" if args.extra else "")
    )
    print()
    asyncio.run(main_async(args))
    print(f"load avg {load()} at the end")


if __name__ == "__main__":
    main()
