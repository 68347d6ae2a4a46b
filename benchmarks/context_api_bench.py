"""Context API latency on loopback: POST -> agent acknowledgement, and fan-out to many rooms.

Starts the real livekit-server (tools/livekit-server, built by scripts/livekit-server.sh) on
127.0.0.1, `python -m context_api` as users run it (a subprocess reading a written `.env`), and,
in a third process, lightweight agent participants standing in for full sessions: real LiveKit
participants of kind agent, one per room, that advertise the agent code and take commands with
the agent's own `ContextCommands` (proof check, dedupe, the same RPC answer) but run no
conversation (devkit/context_agents.py). The requests are sent from this process, one at a
time, each with a new message.

    python benchmarks/context_api_bench.py [--requests 200] [--rooms 10,100] [--fanout-requests 30]

Measured, each as p50 / p99 / max of the client-side time from POST to the answer, which comes
back only once every reached agent has acknowledged (PerformRpc answered):
  1. speak with room_id: one room, no discovery (ListParticipants + PerformRpc);
  2. speak without room_id, one live room: discovery (ListRooms, then per room
     ListParticipants) + PerformRpc;
  3. fan-out: speak without room_id reaching each of --rooms rooms; target p99 < 250 ms at 100.
Every answer is checked (delivered_to_rooms, every room acknowledged); a miss is counted. The
CPU time each process spent per request is printed too, and each group's idle CPU: on a small
machine the stand-ins' WebRTC stacks (about 1% of a core each, idle) weigh on the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devkit.harness import (  # noqa: E402
    OUR_VARIABLES,
    free_port,
    write_env,
)
from devkit.livekit_server import LiveKitServer, require_server, running_server  # noqa: E402

API_SECRET = "bench-context-secret-0123456789"
CODE = "ABENCH0001"
TARGET_FANOUT_P99_MS = 250
ROOMS_PER_PROCESS = 10

# the stand-in agents, in their own process (their RPC handling must not share our CPU time
# slice with the client's timing); prints "ready" once every agent advertises itself
AGENTS = """
import asyncio, sys
from common import logs
from devkit.context_agents import join_all

logs.setup(json=True, level="WARNING")  # stdout carries only our protocol lines

async def main(url, key, secret, code, rooms):
    agents = await join_all(url, key, secret, rooms, agent_code=code)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    print("said", sum(len(a.session.said) for a in agents), flush=True)
    await asyncio.gather(*(a.leave() for a in agents))

url, key, secret, code, *rooms = sys.argv[1:]
asyncio.run(main(url, key, secret, code, rooms))
"""


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(OUR_VARIABLES)}
    env["PYTHONPATH"] = str(ROOT)
    return env


class StandIns:
    """The stand-in agents, ROOMS_PER_PROCESS to a process: livekit rtc hands every FFI event
    of a process to each of its rooms, so one process holding a hundred idle rooms spends a
    whole core on that alone (measured: 104% CPU idle, 100 rooms; about a tenth of that at
    ten rooms a process), which would be the stand-ins' cost, not the API's."""

    def __init__(self, lk: LiveKitServer, rooms: list[str]) -> None:
        self.processes: list[subprocess.Popen[str]] = []
        for start in range(0, len(rooms), ROOMS_PER_PROCESS):  # one after another: no storm
            process = subprocess.Popen(
                [sys.executable, "-c", AGENTS, lk.url, lk.api_key, lk.api_secret, CODE,
                 *rooms[start : start + ROOMS_PER_PROCESS]],
                env=clean_env(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                cwd=ROOT,
            )  # fmt: skip
            self.processes.append(process)
            assert process.stdout is not None
            for line in process.stdout:  # log lines (warnings) until the protocol's "ready"
                if line.strip() == "ready":
                    break
            else:
                self.kill()
                raise SystemExit("stand-in agents did not start")

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def kill(self) -> None:
        for process in self.processes:
            process.kill()

    def stop(self) -> int:
        """How many messages the stand-ins were asked to say, in all."""
        said = 0
        for process in self.processes:
            out, _ = process.communicate("", timeout=60)
            counts = [line for line in out.splitlines() if line.startswith("said ")]
            said += int(counts[0].split()[1]) if counts else 0
        return said


def start_api(lk: LiveKitServer, folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    write_env(
        folder,
        lk.env()
        | {
            "CONTEXT_API_SECRET": API_SECRET,
            "CONTEXT_API_HOST": "127.0.0.1",
            "CONTEXT_API_PORT": str(port),
            "LOG_FORMAT": "json",
            "CONTEXT_API_LOG_LEVEL": "WARNING",  # one INFO line per command otherwise
        },
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "context_api"],
        cwd=folder,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1):
                return process, url
        except (urllib.error.URLError, OSError):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("python -m context_api did not start") from None
            time.sleep(0.1)


class Client:
    """One keep-alive HTTP connection, as a backend calling the API would hold."""

    def __init__(self, url: str) -> None:
        import http.client
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        self._connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)

    def speak(self, body: dict[str, Any]) -> tuple[float, int, dict[str, Any]]:
        data = json.dumps(body).encode()
        headers = {"api-secret": API_SECRET, "Content-Type": "application/json"}
        started = time.perf_counter()
        self._connection.request("POST", f"/v1/agent/{CODE}/speak", data, headers)
        response = self._connection.getresponse()
        answer = json.loads(response.read())
        return time.perf_counter() - started, response.status, answer


class Cpu:
    """CPU seconds (user + system) used by each group of processes, between two readings."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self._groups = {
            name: [psutil.Process(pid) for pid in pids] for name, pids in groups.items()
        }

    def read(self) -> dict[str, float]:
        return {
            name: sum(sum(process.cpu_times()[:2]) for process in processes)
            for name, processes in self._groups.items()
        }


def livekit_pid(lk: LiveKitServer) -> int:
    port = lk.url.rsplit(":", 1)[1]
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if "--config-body" in cmdline and f'"port": {port},' in cmdline:
            return int(process.pid)
    raise SystemExit("livekit-server process not found")


def run(
    client: Client, count: int, rooms: int, room_id: str | None, cpu: Cpu | None = None
) -> dict[str, Any]:
    before = cpu.read() if cpu else {}
    times: list[float] = []
    misses = 0
    per_room: list[float] = []
    for index in range(count):
        body: dict[str, Any] = {"message": f"Benchmark message number {index}."}
        if room_id is not None:
            body["room_id"] = room_id
        seconds, status, answer = client.speak(body)
        times.append(seconds)
        data = answer.get("data") or {}
        acked = [r for r in data.get("rooms", []) if r.get("acknowledged")]
        if status != 200 or data.get("delivered_to_rooms") != rooms or len(acked) != rooms:
            misses += 1
        per_room.extend(r["elapsed_ms"] / 1000 for r in data.get("rooms", []))
    after = cpu.read() if cpu else {}
    per_request = {name: (after[name] - before[name]) / count for name in after}
    return {
        "times": sorted(times),
        "misses": misses,
        "per_room": sorted(per_room),
        "cpu": per_request,
    }


def quantile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, max(0, round(q * len(values)) - 1))] * 1000


def line(label: str, values: list[float], extra: str = "") -> str:
    return (
        f"  {label:44} p50 {statistics.median(values) * 1000:7.1f}  "
        f"p99 {quantile(values, 0.99):7.1f}  max {values[-1] * 1000:7.1f} ms{extra}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200, help="per single-room case")
    parser.add_argument(
        "--rooms", default="10,100", help="fan-out sizes, comma-separated (default 10,100)"
    )
    parser.add_argument("--fanout-requests", type=int, default=30)
    args = parser.parse_args()
    sizes = sorted({int(size) for size in args.rooms.split(",")})

    version = require_server()
    run_id = secrets.token_hex(3)
    single = f"bench-{run_id}-single"
    fanouts: list[tuple[int, dict[str, Any], dict[str, float], float]] = []
    said = expected = 0
    with (
        tempfile.TemporaryDirectory(prefix="context-bench-") as workdir,
        running_server(Path(workdir)) as lk,
    ):
        api, url = start_api(lk, Path(workdir))
        groups: list[StandIns] = []
        try:
            server = livekit_pid(lk)
            groups.append(StandIns(lk, [single]))
            cpu = Cpu({"api": [api.pid], "livekit": [server], "stand-ins": groups[0].pids})
            client = Client(url)
            run(client, 10, 1, single)  # warm-up: connections, tokens, bytecode
            named = run(client, args.requests, 1, single, cpu)
            found = run(client, args.requests, 1, None, cpu)
            expected += 10 + 2 * args.requests

            joined = 1
            for size in sizes:  # more stand-ins join for each size: the fan-out reaches all
                started = time.perf_counter()
                names = [f"bench-{run_id}-{i:04d}" for i in range(joined, size)]
                if names:
                    groups.append(StandIns(lk, names))
                joined = max(joined, size)
                join_s = time.perf_counter() - started
                pids = [pid for group in groups for pid in group.pids]
                cpu = Cpu({"api": [api.pid], "livekit": [server], "stand-ins": pids})
                before, idle_started = cpu.read(), time.perf_counter()
                time.sleep(3)
                idle = {
                    name: (cpu.read()[name] - before[name]) / (time.perf_counter() - idle_started)
                    for name in before
                }
                client = Client(url)  # an idle connection is closed by the keep-alive timeout
                run(client, 3, joined, None)
                fanouts.append((joined, run(client, args.fanout_requests, joined, None, cpu),
                                idle, join_s))  # fmt: skip
                expected += joined * (3 + args.fanout_requests)
        finally:
            for group in groups:
                said += group.stop()
            api.terminate()
            api.wait(timeout=15)

    print(f"context API on loopback ({version}, {os.cpu_count()} CPUs)")
    print("POST -> answer, which comes once every reached agent acknowledged (PerformRpc)")
    print(line(f"speak, room_id given ({args.requests})", named["times"]))
    print(line(f"speak, no room_id, 1 live room ({args.requests})", found["times"]))
    for size, fanout, _, _ in fanouts:
        target = f"   target p99 < {TARGET_FANOUT_P99_MS} ms" if size >= 100 else ""
        print(line(f"fan-out to {size} rooms ({args.fanout_requests})", fanout["times"], target))
        print(line("  per room in it (list + sign + RPC)", fanout["per_room"]))
    misses = named["misses"] + found["misses"] + sum(f[1]["misses"] for f in fanouts)
    print(f"  answers missing a room or an ack: {misses}; stand-ins said {said} of {expected}")
    print("CPU per request in ms (API, livekit-server, stand-ins share the machine's cores)")
    cases = [("room_id given", named), ("no room_id, 1 room", found)]
    cases += [(f"fan-out, {size} rooms", fanout) for size, fanout, _, _ in fanouts]
    for label, case in cases:
        spent = "  ".join(f"{name} {seconds * 1000:6.1f}" for name, seconds in case["cpu"].items())
        print(f"  {label:44} {spent}")
    for size, _, idle, join_s in fanouts:
        busy = "  ".join(f"{name} {share * 100:5.1f}%" for name, share in idle.items())
        print(f"  idle with {size} stand-ins: {busy} of a core (joined in {join_s:.0f} s)")
    print(
        "stand-ins: real LiveKit agent participants running the agent's ContextCommands, "
        f"no conversation behind them, {ROOMS_PER_PROCESS} to a process"
    )


if __name__ == "__main__":
    main()
