"""Agent worker figures: prewarm time, job-process memory, and job entry to listening.

Runs the real `python -m agent start`, from a written `.env` with nothing of ours exported,
against a real livekit-server on 127.0.0.1 (tools/livekit-server, built by
scripts/livekit-server.sh) to measure the prewarm and the resident memory of an idle job process,
next to a process that imports everything eagerly (all three plugins, the bitHuman SDK, Silero
loaded). Then, in a fresh process, runs sessions against the OpenAI Realtime stand-in to measure
the time from job entry (session built) to the agent listening, and the memory of a process
holding one live session.

    python benchmarks/agent_bench.py [--sessions 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devkit.harness import OUR_VARIABLES, write_env  # noqa: E402
from devkit.livekit_server import LiveKitServer, require_server, running_server  # noqa: E402

MB = 1024 * 1024
TARGET_IDLE_MB = 220
REGISTER_TIMEOUT_S = 120

EAGER = """
import psutil
from livekit.agents import AgentServer
from livekit.plugins import bithuman, openai, silero
from bithuman import AsyncBithuman
vad = silero.VAD.load()
print(psutil.Process().memory_info().rss)
"""

SESSIONS = """
import asyncio, json, statistics, sys, time
import psutil
from livekit.agents import AgentSession
from livekit.plugins import silero
from agent.session import build_agent, build_session
from agent.settings import AgentSettings
from devkit.openai_realtime import FakeRealtimeServer

async def one(server, settings, vad, number):
    t0 = time.perf_counter()
    session = build_session(settings, vad_model=vad)
    listening = asyncio.Event()
    session.on("agent_state_changed", lambda ev: ev.new_state == "listening" and listening.set())
    await session.start(build_agent(settings))
    await listening.wait()
    heard = time.perf_counter() - t0
    await server.wait_for_sent("session.updated", count=number)
    return heard, time.perf_counter() - t0, session

async def main(n):
    vad = silero.VAD.load()
    async with FakeRealtimeServer() as server:
        settings = AgentSettings(_env_file=None, openai_api_key="sk-bench",
                                 openai_base_url=server.base_url)
        times, ready = [], []
        for i in range(n):
            heard, connected, session = await one(server, settings, vad, i + 1)
            times.append(heard); ready.append(connected)
            await session.aclose(); await session.llm.aclose()
        _, _, live = await one(server, settings, vad, n + 1)
        await live.run(user_input="hello there")
        rss = psutil.Process().memory_info().rss
        await live.aclose(); await live.llm.aclose()
    print(json.dumps({"times": times, "ready": ready, "live_rss": rss}))

asyncio.run(main(int(sys.argv[1])))
"""


def run_python(code: str, *args: str) -> str:
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.strip().splitlines()[-1]


def log_records(log: Path) -> list[dict[str, Any]]:
    records = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return records


def first(records: list[dict[str, Any]], message: str) -> dict[str, Any] | None:
    return next((r for r in records if r.get("message") == message), None)


def idle_worker(lk: LiveKitServer, preload_local_inference: bool) -> dict[str, float]:
    """Start the real worker, wait for its warm job process, read its memory and prewarm."""
    with tempfile.TemporaryDirectory(prefix="agent-bench-") as folder:
        write_env(
            Path(folder),
            lk.env()
            | {
                "OPENAI_API_KEY": "sk-bench",
                "AGENT_NAME": "agent-bench",
                "LOG_FORMAT": "json",
                "AGENT_IDLE_PROCESSES": "1",
                "AGENT_HTTP_PORT": "0",
                "AGENT_LOAD_THRESHOLD": "inf",
            },
        )
        # livekit reads this one from the environment only (the agent defaults it to 0)
        env = {k: v for k, v in os.environ.items() if not k.startswith(OUR_VARIABLES)}
        env["LIVEKIT_AGENTS_PRELOAD_LOCAL_INFERENCE"] = "1" if preload_local_inference else "0"
        log = Path(folder) / "agent.log"
        with log.open("wb") as out:
            started = time.time()
            proc = subprocess.Popen(
                [sys.executable, "-m", "agent", "start"], cwd=folder, env=env, stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            deadline = time.monotonic() + REGISTER_TIMEOUT_S
            while True:  # registered, and the idle job process prewarmed
                records = log_records(log)
                registered = first(records, "registered worker")
                if registered and first(records, "process initialized"):
                    break
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = log.read_text(errors="replace")[-3000:]
                    raise SystemExit(f"the worker did not register and prewarm in time:\n{tail}")
                time.sleep(0.05)
            registered_at = datetime.fromisoformat(registered["timestamp"]).timestamp()
            time.sleep(2)  # let the idle process settle after its prewarm
            job_procs = [
                p for p in psutil.Process(proc.pid).children(recursive=True)
                if p.ppid() != proc.pid  # the job processes are the forkserver's children
            ]  # fmt: skip
            idle = [p.memory_info().rss for p in job_procs]
            unique = [p.memory_full_info().uss for p in job_procs]
            main_rss = psutil.Process(proc.pid).memory_info().rss
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        records = log_records(log)
    prewarmed = first(records, "process prewarmed")
    initialized = first(records, "process initialized")
    return {
        "registered_s": registered_at - started,
        "idle_job_mb": max(idle) / MB if idle else float("nan"),
        "idle_job_uss_mb": max(unique) / MB if unique else float("nan"),
        "main_mb": main_rss / MB,
        "prewarm_s": prewarmed["elapsed_s"] if prewarmed else float("nan"),
        "init_s": initialized["elapsed_time"] if initialized else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=20)
    args = parser.parse_args()

    version = require_server()
    with (
        tempfile.TemporaryDirectory(prefix="livekit-") as workdir,
        running_server(Path(workdir)) as lk,
    ):
        worker = idle_worker(lk, preload_local_inference=False)
        livekit_default = idle_worker(lk, preload_local_inference=True)
    eager_mb = int(run_python(EAGER)) / MB
    sessions = json.loads(run_python(SESSIONS, str(args.sessions)))
    times = sorted(sessions["times"])

    print(f"agent worker (python -m agent start against {version})")
    print(f"  worker registered after start   {worker['registered_s']:7.2f} s")
    print(f"  prewarm (ours, in job process)  {worker['prewarm_s']:7.2f} s")
    print(f"  job process initialization      {worker['init_s']:7.2f} s  (livekit: spawn+prewarm)")
    print(f"  worker main process RSS         {worker['main_mb']:7.0f} MB")
    print()
    idle = worker["idle_job_mb"]
    default = livekit_default["idle_job_mb"]
    print(f"{'resident memory (RSS)':40} {'MB':>6} {'vs ours':>8}")
    print(f"{'idle job process, ours':40} {idle:6.0f} {1:8.2f}   target < {TARGET_IDLE_MB} MB")
    print(f"{'  of which unique to it (USS)':40} {worker['idle_job_uss_mb']:6.0f}")
    print(f"{'idle job process, livekit preload on':40} {default:6.0f} {default / idle:8.2f}")
    print(f"{'all plugins + SDK + Silero, eager':40} {eager_mb:6.0f} {eager_mb / idle:8.2f}")
    live = sessions["live_rss"] / MB
    print(f"{'process holding one live session':40} {live:6.0f} {live / idle:8.2f}")
    print()
    ready = sorted(sessions["ready"])
    print(f"job entry -> ready, {len(times)} sessions on the realtime stand-in (target < 1000 ms)")
    for label, values in (("agent listening", times), ("realtime session updated", ready)):
        mid = statistics.median(values) * 1000
        high = values[max(0, round(0.95 * len(values)) - 1)] * 1000
        print(
            f"  {label:26} p50 {mid:7.1f} ms   p95 {high:7.1f} ms   max {values[-1] * 1000:7.1f} ms"
        )


if __name__ == "__main__":
    main()
