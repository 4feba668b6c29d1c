"""One load on one target, measured as the comparisons (bench.peers, bench.full) take it:
its own figures, the serving process's CPU per answer, and what other jobs used of
each core meanwhile (for procs.Steady); a spot check that a target relays the fake's
answer, and a warm-up until a target's throughput settles."""

from __future__ import annotations

import resource
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import orjson

from bench import procs, wrk
from bench.targets import LOAD_CPU, PROXY_CPU, Target

# Warm-up before the measured rounds, per target: runs of WARM_STEP_S until two in a row
# are within WARM_SETTLED of each other (see warm_up).
WARM_STEP_S = 2.0
WARM_SETTLED = 0.05
WARM_MAX_RUNS = 10


def spot_check(target: Target, body: bytes, headers: dict[str, str]) -> dict:
    """One request as wrk sends it: must be a 200 carrying the fake's answer."""
    request = urllib.request.Request(target.url, data=body, method="POST", headers={
        "content-type": "application/json", "anthropic-version": "2023-06-01", "x-api-key": target.key, **headers})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            data = resp.read()
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"{target.name} answered {e.code}: {e.read()[:500]!r}") from None
    answer = orjson.loads(data)
    text = (answer.get("content") or [{}])[0].get("text", "")
    if answer.get("type") != "message" or not text.startswith("The tool returned:"):
        raise RuntimeError(f"{target.name} did not relay the fake's answer: {data[:500]!r}")
    return answer


def measure(target: Target, fake_pid: int, body: Path, duration: float, connections: int,
            script: Path) -> dict[str, float]:
    """One wrk run (as bench.run's measure_http, less what only aiogw has): throughput,
    latency, errors, and what `measured` adds."""
    def load() -> tuple[dict[str, float], int]:
        res = wrk.run(target.url, body, target.key, connections=connections, duration=duration, cpu=LOAD_CPU,
                      script=script)
        return {"rps": res.rps, "p50": res.p50_ms, "p99": res.p99_ms, "p999": res.p999_ms,
                "errors": res.errors}, res.requests

    return measured(target, fake_pid, load)


def measured(target: Target, fake_pid: int, load: Callable[[], tuple[dict, int]]) -> dict[str, float]:
    """Run one load (a subprocess on LOAD_CPU; it returns its figures and how many
    answers it got) and add what it cost: the server's CPU per answer (an aiogw's audit
    writer's work after the run included), and what other jobs used of each core
    meanwhile (for procs.Steady)."""
    server0, fake0 = procs.cpu_seconds(target.pid), procs.cpu_seconds(fake_pid)
    cores0, load0, t0 = procs.core_busy(), resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    figures, answers = load()
    elapsed = time.monotonic() - t0
    load1, cores1 = resource.getrusage(resource.RUSAGE_CHILDREN), procs.core_busy()
    server = procs.cpu_seconds(target.pid) - server0
    fake = procs.cpu_seconds(fake_pid) - fake0
    gen = (load1.ru_utime + load1.ru_stime) - (load0.ru_utime + load0.ru_stime)
    # An aiogw's audit writer may still be writing what the run queued: its CPU belongs
    # to the run's requests. Others (LiteLLM above all) may still be serving requests
    # the load left in flight: not counted, but the next run must not share the core with them.
    procs.wait_idle(target.pid)
    total = procs.cpu_seconds(target.pid) - server0 if target.lag_file is not None else server
    proxy = 0.0 if target.pid == fake_pid else server
    return {
        **figures,
        "cpu_us": 1e6 * total / answers if answers else float("nan"),
        "bg0": procs.busy_percent(cores0, cores1, f"cpu{PROXY_CPU}") - 100 * proxy / elapsed,
        "bg1": procs.busy_percent(cores0, cores1, f"cpu{LOAD_CPU}") - 100 * (fake + gen) / elapsed,
        "proxied": float(target.pid != fake_pid),
    }


def warm_up(target: Target, fake_pid: int, body: Path, connections: int, script: Path) -> tuple[int, float]:
    """Load a target until its throughput settles (two runs in a row within
    WARM_SETTLED), at most WARM_MAX_RUNS runs: Portkey's Node.js needs ~10 s of load
    before its JIT has compiled the request path (399 → 664 → 725 → 745 req/s in
    successive 4 s runs), the Python targets a run or two. Returns (runs, last req/s)."""
    last = measure(target, fake_pid, body, WARM_STEP_S, connections, script)["rps"]
    for runs in range(2, WARM_MAX_RUNS + 1):
        rps = measure(target, fake_pid, body, WARM_STEP_S, connections, script)["rps"]
        if abs(rps - last) <= WARM_SETTLED * max(rps, last):
            return runs, rps
        last = rps
    return WARM_MAX_RUNS, last
