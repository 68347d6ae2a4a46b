"""Load `POST /token` with wrk: our server (protections off / on) next to the Flutter guide's Flask.

Every server is a separate process pinned to CPU 0; wrk runs pinned to CPU 1, so each server
gets one core. Rounds are interleaved (each round loads every server once) and the median round
is reported, which keeps a neighbour's burst of CPU use from landing on one column only.

    python benchmarks/token_server_bench.py [--duration 10] [--rounds 3] [--connections 32]

    python benchmarks/token_server_bench.py --log-level WARNING   # our servers at another level
    python benchmarks/token_server_bench.py --baseline /tmp/old   # also an older checkout's

Columns: "flask guide" is benchmarks/token_server_flask_reference.py on Flask's development
server, as the guide runs it; "gunicorn 1 sync" is the same app under gunicorn with one sync
worker (each skipped with a message when Flask / gunicorn is not installed: `pip install -e
'.[bench]'`); "off" is our server with no API key and no rate limit (anonymous access opted
into); "on" adds the API key check, an allowed CORS Origin and the rate limit (in memory; also
in Redis when redis-server is installed), set high enough never to refuse during the run. Our
servers run in production mode at the default log level (INFO) unless --log-level says otherwise.
Targets: "on" at least 4x the Flask reference's throughput; "on" within 10% of "off".
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SERVER_CPU = {0}
LOAD_CPU = "1"
API_KEY = "benchmark-api-key-0123456789"
ORIGIN = "http://localhost:8080"
BODY = json.dumps({"room": "bench-room", "participant": "Bench User"})
LIVEKIT = {
    "LIVEKIT_URL": "ws://localhost:7880",
    "LIVEKIT_API_KEY": "devkey",
    "LIVEKIT_API_SECRET": "benchmark-secret-that-is-32-bytes-long",
}
NEVER_LIMITED = {
    "TOKEN_SERVER_RATE_LIMIT_PER_MINUTE": "1000000000",
    "TOKEN_SERVER_RATE_LIMIT_BURST": "1000000000",
}


@dataclass
class Target:
    name: str
    command: list[str]
    env: dict[str, str]
    headers: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    port: int = 0
    runs: list[Run] = field(default_factory=list)
    root: Path = REPO  # the checkout whose code this server runs

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"


@dataclass(frozen=True)
class Run:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    failures: int
    requests: int
    cpu_seconds: float = 0.0  # the server process's CPU time during the run

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_seconds / self.requests * 1e6

    @property
    def capacity(self) -> float:
        """Requests per second one dedicated core would serve: 1 / CPU time per request."""
        return self.requests / self.cpu_seconds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pin_to_server_cpu() -> None:
    if hasattr(os, "sched_setaffinity") and os.cpu_count() and os.cpu_count() >= 2:  # type: ignore[operator]
        os.sched_setaffinity(0, SERVER_CPU)


def start(target: Target) -> None:
    target.port = free_port()
    env = {**os.environ, **LIVEKIT, **target.env, "PYTHONPATH": str(target.root)}
    env["TOKEN_SERVER_PORT"] = env["PORT"] = str(target.port)
    target.process = subprocess.Popen(
        target.command,
        env=env,
        cwd=tempfile.gettempdir(),  # no stray .env
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=pin_to_server_cpu,
    )


def post(target: Target) -> int:
    request = urllib.request.Request(
        target.url,
        data=BODY.encode(),
        headers={"Content-Type": "application/json", **target.headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            body = json.loads(response.read())
            return int(response.status) if body.get("token") else 0
    except urllib.error.HTTPError as error:
        return error.code


def wait_ready(target: Target, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert target.process is not None
        if target.process.poll() is not None:
            raise SystemExit(f"{target.name}: server exited with {target.process.returncode}")
        with contextlib.suppress(OSError):
            status = post(target)
            if status == 200:
                return
            raise SystemExit(f"{target.name}: POST /token answered {status}, expected 200")
        time.sleep(0.1)
    raise SystemExit(f"{target.name}: not ready after {timeout:.0f} s")


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _latency_ms(output: str, percentile: str) -> float:
    match = re.search(rf"^\s*{percentile}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
    if not match:
        raise ValueError(f"no {percentile}% latency in wrk output:\n{output}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> Run:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if not rps:
        raise ValueError(f"no throughput in wrk output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    total = re.search(r"(\d+) requests in", output)
    failures = int(non_2xx.group(1)) if non_2xx else 0
    if errors:
        failures += sum(int(n) for n in errors.groups())
    return Run(
        float(rps.group(1)),
        _latency_ms(output, "50"),
        _latency_ms(output, "99"),
        failures,
        int(total.group(1)) if total else 0,
    )


def _process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of a process and its live descendants (Linux /proc):
    gunicorn's worker is a child of its master."""
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        with contextlib.suppress(OSError):
            total += _process_cpu_seconds(current)
            pending += _children(current)
    return total


def wrk_script(headers: dict[str, str], directory: Path) -> Path:
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(BODY)}"]
    lines += [
        f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}"
        for k, v in {"Content-Type": "application/json", **headers}.items()
    ]
    path = directory / f"post-{abs(hash(tuple(headers.items())))}.lua"
    path.write_text("\n".join(lines) + "\n")
    return path


def load(target: Target, script: Path, seconds: int, connections: int) -> Run:
    command = [
        "taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
        "--latency", "-s", str(script), target.url,
    ]  # fmt: skip
    if not shutil.which("taskset"):
        command = command[3:]
    assert target.process is not None
    before = cpu_seconds(target.process.pid)
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    used = cpu_seconds(target.process.pid) - before
    return dataclasses.replace(parse_wrk(result.stdout), cpu_seconds=used)


@contextlib.contextmanager
def redis_server() -> Iterator[str | None]:
    binary = shutil.which("redis-server")
    if not binary:
        print("redis-server not installed: skipping the Redis rate-limit column")
        yield None
        return
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        preexec_fn=pin_to_server_cpu,  # its CPU time is charged to the server's core
    )
    try:
        time.sleep(0.3)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait()


def gunicorn_command() -> list[str]:
    """The Flask reference under gunicorn, one sync worker, on $PORT (read when it starts)."""
    script = (
        "import os, sys; from gunicorn.app.wsgiapp import run; "
        "sys.argv = ['gunicorn', '--workers', '1', '--worker-class', 'sync', '--bind', "
        "'127.0.0.1:' + os.environ['PORT'], '--chdir', sys.argv[1], "
        "'token_server_flask_reference:app']; run()"
    )
    return [sys.executable, "-c", script, str(REPO / "benchmarks")]


def targets(redis_url: str | None, log_level: str, baseline: Path | None = None) -> list[Target]:
    ours = [sys.executable, "-m", "token_server"]
    common = {"TOKEN_SERVER_LOG_LEVEL": log_level, "APP_ENV": "production"}
    found: list[Target] = []
    if importlib.util.find_spec("flask"):
        reference = str(REPO / "benchmarks" / "token_server_flask_reference.py")
        found.append(Target("flask guide", [sys.executable, reference], {}))
        if importlib.util.find_spec("gunicorn"):
            found.append(Target("gunicorn 1 sync", gunicorn_command(), {}))
        else:
            print("gunicorn is not installed (pip install gunicorn): skipping its column")
    else:
        print("Flask is not installed (pip install flask): skipping the Flask reference columns")
    anonymous = {"TOKEN_SERVER_RATE_LIMIT_PER_MINUTE": "0", "TOKEN_SERVER_ALLOW_ANONYMOUS": "true"}
    found.append(Target("ours, off", ours, {**common, **anonymous}))
    protected = {
        **common,
        **NEVER_LIMITED,
        "TOKEN_SERVER_API_KEY": API_KEY,
        "TOKEN_SERVER_CORS_ORIGINS": ORIGIN,
    }
    headers = {"X-API-Key": API_KEY, "Origin": ORIGIN}
    found.append(Target("ours, on", ours, protected, headers))
    if redis_url:
        shared = {**protected, "REDIS_URL": redis_url}
        found.append(Target("ours, on, redis", ours, shared, headers))
    if baseline is not None:
        found.append(Target("baseline, off", ours, {**common, **anonymous}, root=baseline))
        found.append(Target("baseline, on", ours, protected, headers, root=baseline))
    return found


@dataclass(frozen=True)
class Summary:
    """Per-metric medians over the rounds."""

    requests_per_second: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_request: float
    capacity: float
    failures: int

    @classmethod
    def of(cls, runs: list[Run]) -> Summary:
        return cls(
            statistics.median(r.requests_per_second for r in runs),
            statistics.median(r.p50_ms for r in runs),
            statistics.median(r.p99_ms for r in runs),
            statistics.median(r.cpu_us_per_request for r in runs),
            statistics.median(r.capacity for r in runs),
            sum(r.failures for r in runs),
        )


def print_cost(label: str, off: Target, on: Target) -> None:
    """What the protections cost: 1 - on/off, from the medians and paired round by round (the
    two run back to back in each round, so the pairs share the machine's load of the moment)."""
    a, b = Summary.of(off.runs), Summary.of(on.runs)
    pairs = list(zip(off.runs, on.runs, strict=True))
    core = 1 - statistics.median(y.capacity / x.capacity for x, y in pairs)
    wall = 1 - statistics.median(y.requests_per_second / x.requests_per_second for x, y in pairs)
    print(
        f"{label}: {1 - b.capacity / a.capacity:.1%} per core, "
        f"{1 - b.requests_per_second / a.requests_per_second:.1%} wall-clock; "
        f"paired per round: {core:.1%} per core, {wall:.1%} wall-clock (target <= 10%)"
    )


def report(found: list[Target]) -> None:
    summaries = {target.name: Summary.of(target.runs) for target in found}
    flask = summaries.get("flask guide")
    gunicorn = summaries.get("gunicorn 1 sync")
    off = summaries["ours, off"]
    on = summaries["ours, on"]
    print(
        f"\n{'server':<17}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'CPU us/req':>11}"
        f"{'req/s/core':>11}{'x flask':>9}{'vs off':>8}"
    )
    for name, row in summaries.items():
        versus_flask = f"{row.capacity / flask.capacity:.2f}x" if flask else "-"
        failed = f"  ({row.failures} failed)" if row.failures else ""
        print(
            f"{name:<17}{row.requests_per_second:>8.0f}{row.p50_ms:>8.2f}{row.p99_ms:>8.2f}"
            f"{row.cpu_us_per_request:>11.0f}{row.capacity:>11.0f}{versus_flask:>9}"
            f"{row.capacity / off.capacity:>8.2f}{failed}"
        )
    print("\nratios use req/s/core (1 / CPU time per request): wall-clock req/s moves with")
    print("whatever else this machine runs; CPU time per request hardly does.")
    for label, reference in (("Flask guide", flask), ("gunicorn, 1 sync worker", gunicorn)):
        if reference:
            wall = on.requests_per_second / reference.requests_per_second
            print(
                f"protected / {label}: {on.capacity / reference.capacity:.2f}x per core, "
                f"{wall:.2f}x wall-clock (target >= 4x)"
            )
    by_name = {target.name: target for target in found}
    print_cost("protections cost", by_name["ours, off"], by_name["ours, on"])
    if "baseline, off" in by_name:
        print_cost("baseline protections cost", by_name["baseline, off"], by_name["baseline, on"])
        b_on = summaries["baseline, on"]
        print(f"ours, on / baseline, on: {on.capacity / b_on.capacity:.2f}x per core")
    for target in found:
        rounds = ", ".join(f"{r.requests_per_second:.0f}/{r.capacity:.0f}" for r in target.runs)
        print(f"  rounds, {target.name} (req/s / req/s/core): {rounds}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per load run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per server")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="TOKEN_SERVER_LOG_LEVEL of our servers (default: the server's default, INFO)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout of this repository (a `git worktree` of an older commit): its "
        "server runs off and on in the same interleaved rounds, for before/after figures",
    )
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install wrk)")

    with redis_server() as redis_url, tempfile.TemporaryDirectory() as scratch:
        found = targets(redis_url, args.log_level, args.baseline)
        try:
            for target in found:
                start(target)
            for target in found:
                wait_ready(target)
            scripts = {t.name: wrk_script(t.headers, Path(scratch)) for t in found}
            for target in found:
                load(target, scripts[target.name], args.warmup, args.connections)
            for round_number in range(args.rounds):
                for target in found:
                    run = load(target, scripts[target.name], args.duration, args.connections)
                    target.runs.append(run)
                    print(
                        f"round {round_number + 1}: {target.name:<17}"
                        f"{run.requests_per_second:>8.0f} req/s"
                        f"{run.cpu_us_per_request:>8.0f} CPU us/req"
                    )
        finally:
            for target in found:
                if target.process is not None:
                    target.process.terminate()
                    target.process.wait()
        report(found)


if __name__ == "__main__":
    main()
