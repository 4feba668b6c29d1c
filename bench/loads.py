"""The loads a workload puts on a target, and what each run cost.

Each load is a subprocess on LOAD_CPU (wrk, `bench.streams`, `bench.session_mix`)
that returns its own figures and how many answers it got; `measured` runs it and adds
what it cost: the serving process's CPU per answer (all of it, and the loop thread's
apart from the others'), its loop lag when it has the probe, how long an audit writer
worked on after the load stopped (`drain_s`) and what other jobs used of each core
meanwhile (for procs.Steady). Every load returns the same keys where it can: `rps`
(answers a second), `errors`, latency in ms.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

import orjson

from bench import procs, wrk
from bench.targets import LOAD_CPU, PROXY_CPU, ROOT, Target

Load = Callable[[], tuple[dict[str, float], int]]  # → (its figures, answers)


def measured(target: Target, load: Load) -> dict[str, float]:
    """Run one load against `target` and add what it cost (see the module's doc)."""
    lag = target.lag_file is not None
    if lag:
        target.lag_window(start=True)
    fake_pid = target.fake_pid or target.pid
    server0, fake0 = procs.cpu_seconds(target.pid), procs.cpu_seconds(fake_pid)
    threads0 = procs.thread_cpu_seconds(target.pid)
    cores0, load0, t0 = procs.core_busy(), resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    figures, answers = load()
    elapsed = time.monotonic() - t0
    load1, cores1 = resource.getrusage(resource.RUSAGE_CHILDREN), procs.core_busy()
    server = procs.cpu_seconds(target.pid) - server0
    fake = procs.cpu_seconds(fake_pid) - fake0
    gen = (load1.ru_utime + load1.ru_stime) - (load0.ru_utime + load0.ru_stime)
    window = target.lag_window(start=False) if lag else None
    # An aiogw's audit writer may still be writing what the run queued: its CPU belongs
    # to the run's requests. Others (LiteLLM above all) may still be serving requests
    # the load left in flight: not counted, but the next run must not share the core.
    drain = procs.wait_idle(target.pid)
    aiogw = target.config is not None
    total = procs.cpu_seconds(target.pid) - server0 if aiogw else server
    threads1 = procs.thread_cpu_seconds(target.pid)
    proxy = 0.0 if target.pid == fake_pid else server
    per = 1e6 / answers if answers else float("nan")
    ok = figures.get("rps", 0.0) * elapsed
    out = {
        **figures,
        "cpu_us": total * per,
        "cpu_loop_us": (threads1[0] - threads0[0]) * per if aiogw else float("nan"),
        "cpu_other_us": (threads1[1] - threads0[1]) * per if aiogw else float("nan"),
        "server_cpu": 100 * server / elapsed,
        "fake_cpu": 100 * fake / elapsed,
        "drain_s": drain if target.audit else 0.0,
        # Answers over the run and the writer's drain: what the gateway sustains, audit included.
        "sustained": ok / (elapsed + drain) if target.audit else figures.get("rps", 0.0),
        # What the bench did not cause: other processes sharing the machine.
        "bg0": procs.busy_percent(cores0, cores1, f"cpu{PROXY_CPU}") - 100 * proxy / elapsed,
        "bg1": procs.busy_percent(cores0, cores1, f"cpu{LOAD_CPU}") - 100 * (fake + gen) / elapsed,
        "proxied": float(target.pid != fake_pid),
    }
    if window:
        out.update({f"lag_{k}": float("nan") if window.get(k) is None else window[k]
                    for k in ("p50", "p99", "max", "n")})
    return out


def http(target: Target, body: Path, duration: float, connections: int, script: Path = wrk.SCRIPT) -> dict[str, float]:
    """One wrk run: req/s (200s only), latency, errors by status."""
    def load() -> tuple[dict[str, float], int]:
        res = wrk.run(target.url, body, target.key, connections=connections, duration=duration, cpu=LOAD_CPU,
                      script=script)
        return {"rps": res.rps, "p50": res.p50_ms, "p99": res.p99_ms, "p999": res.p999_ms, "errors": res.errors,
                **{f"status_{code}": n for code, n in res.statuses.items()}}, res.requests

    return measured(target, load)


def streams(target: Target, duration: float, *, concurrency: int, events: int, delay: float, warmup: float,
            headers: Mapping[str, str] | None = None) -> dict[str, float]:
    """`bench.streams`: `concurrency` streams of `events` events `delay` s apart.
    `rps` is streams a second; a stream that did not come through whole (the events
    asked for plus six: a proxy dropped the x-fake-* headers) counts as an error."""
    def load() -> tuple[dict[str, float], int]:
        r = python_load("bench.streams", ["--url", target.url, "--key", target.key, f"--duration={duration}",
                                          f"--warmup={warmup}", f"--concurrency={concurrency}", f"--chunks={events}",
                                          f"--delay={delay}"], headers or {}, timeout=duration + 60)
        whole = r["events_min"] == r["events_max"] == events + 6
        # The client counts from the end of its warm-up; the CPU is read around the
        # whole run, so the answers are scaled to it.
        answers = int((r["streams"] + r["failed"]) * (duration + warmup) / duration)
        return {**r, "rps": r["streams_per_s"], "errors": r["failed"] + (0 if whole else r["streams"])}, answers

    return measured(target, load)


def session(target: Target, duration: float, seed: int, headers: Mapping[str, str] | None = None) -> dict[str, float]:
    """`bench.session_mix`: agents replaying coding sessions; `rps` is turns a second."""
    def load() -> tuple[dict[str, float], int]:
        r = python_load("bench.session_mix", ["--url", target.url, "--key", target.key, "--duration", str(duration),
                                              "--seed", str(seed)], headers or {}, timeout=600)
        return {"rps": r["rps"], "p50": r["p50"], "p99": r["p99"], "ttfb_p50": r["ttfb_p50"], "errors": r["failed"],
                "mean_body_kb": r["mean_body_kb"]}, r["turns"] + r["failed"]

    return measured(target, load)


def idle(target: Target, seconds: float) -> dict[str, float]:
    """The lag probe's floor: an aiogw with nothing to do."""
    return measured(target, lambda: (time.sleep(seconds), ({}, 0))[1])


def python_load(module: str, args: list[str], headers: Mapping[str, str], timeout: float) -> dict:
    cmd = ["taskset", "-c", str(LOAD_CPU), sys.executable, "-m", module, *args]
    for name, value in headers.items():
        cmd += ["--header", f"{name}:{value}"]
    out = subprocess.run(cmd, capture_output=True, cwd=ROOT, timeout=timeout, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{module} failed: {out.stderr.decode(errors='replace')[-2000:]}")
    return orjson.loads(out.stdout)


def spot_check(target: Target, body: bytes) -> dict:
    """One request as wrk sends it: must be a 200 carrying the fake's answer."""
    request = urllib.request.Request(target.url, data=body, method="POST", headers={
        "content-type": "application/json", "anthropic-version": "2023-06-01", "x-api-key": target.key,
        **target.headers})
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
