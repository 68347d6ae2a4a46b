"""Agent worker figures: prewarm time, job-process memory, and job entry to listening.

Runs the real `python -m agent start` against the LiveKit stand-in (tests/fakes) to measure
the prewarm and the resident memory of an idle job process, next to a process that imports
everything eagerly (all three plugins, the bitHuman SDK, Silero loaded). Then, in a fresh
process, runs sessions against the OpenAI Realtime stand-in to measure the time from job entry
(session built) to the agent listening, and the memory of a process holding one live session.

    python benchmarks/agent_bench.py [--sessions 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.livekit_server import FakeLiveKitServer  # noqa: E402

MB = 1024 * 1024
TARGET_IDLE_MB = 220

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
from tests.fakes.openai_realtime import FakeRealtimeServer

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


async def idle_worker(preload_local_inference: bool) -> dict[str, float]:
    """Start the real worker, wait for its warm job process, read its memory and prewarm."""
    async with FakeLiveKitServer() as lk:
        log = Path(tempfile.mkstemp(suffix=".log")[1])
        env = os.environ | lk.env() | {
            "PYTHONPATH": str(ROOT), "OPENAI_API_KEY": "sk-bench", "AGENT_IDLE_PROCESSES": "1",
            "AGENT_HTTP_PORT": "0", "AGENT_LOAD_THRESHOLD": "1",
            "LIVEKIT_AGENTS_PRELOAD_LOCAL_INFERENCE": "1" if preload_local_inference else "0",
        }  # fmt: skip
        with log.open("wb") as out:
            started = time.perf_counter()
            proc = subprocess.Popen(
                [sys.executable, "-m", "agent", "start"], cwd=ROOT, env=env, stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            await asyncio.wait_for(lk.dispatcher.wait_for_worker(""), 120)
            registered = time.perf_counter() - started
            await asyncio.sleep(2)  # let the idle process settle after its prewarm
            job_procs = [
                p for p in psutil.Process(proc.pid).children(recursive=True)
                if p.ppid() != proc.pid  # the job processes are the forkserver's children
            ]  # fmt: skip
            idle = [p.memory_info().rss for p in job_procs]
            unique = [p.memory_full_info().uss for p in job_procs]
            main_rss = psutil.Process(proc.pid).memory_info().rss
        finally:
            proc.terminate()
            proc.wait(30)
        prewarm = init = None
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                event = json.loads(line)
                if event.get("message") == "process prewarmed":
                    prewarm = event["elapsed_s"]
                if event.get("message") == "process initialized":
                    init = event["elapsed_time"]
        log.unlink()
    return {
        "registered_s": registered,
        "idle_job_mb": max(idle) / MB if idle else float("nan"),
        "idle_job_uss_mb": max(unique) / MB if unique else float("nan"),
        "main_mb": main_rss / MB,
        "prewarm_s": prewarm if prewarm is not None else float("nan"),
        "init_s": init if init is not None else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=20)
    args = parser.parse_args()

    worker = asyncio.run(idle_worker(preload_local_inference=False))
    livekit_default = asyncio.run(idle_worker(preload_local_inference=True))
    eager_mb = int(run_python(EAGER)) / MB
    sessions = json.loads(run_python(SESSIONS, str(args.sessions)))
    times = sorted(sessions["times"])

    print("agent worker (python -m agent start against the LiveKit stand-in)")
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
