"""`make bench`: aiogw against a direct call and a minimal pass-through, same run.

    python -m bench.run [--quick] [--duration S] [--connections N] [--rounds N] [--no-lag]

Targets (bench.targets): direct, passthrough, aiogw-core (audit and guards off),
aiogw-audit (audit, metrics and exchange log on, guards off), aiogw (defaults: all on).

Workloads: ~1 KB and ~200 KB non-streaming Messages bodies under wrk, and SSE streams
of 50 chunks 5 ms apart under `bench.streams`, on every target; then the guards' cost
on aiogw against aiogw-audit: a ~2 MB coding-agent body under wrk, and the latency of
one request at a time for the 200 KB and 2 MB bodies. Targets are interleaved within
each round and each figure is the median of the rounds, so a drift of the machine hits
all alike. While an aiogw target is measured its event-loop lag is recorded in the
process (bench.gateway). Writes the `bench.run` section of bench/RESULTS.md (not
after --quick or fewer than 3 rounds: rough figures must not replace a full run's).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from bench import procs, report, results, wrk
from bench import streams as stream_client
from bench.bodies import messages_body
from bench.report import Row
from bench.stats import median
from bench.targets import GATEWAYS, LOAD_CPU, PROXY_CPU, ROOT, Target, start_all

WORKLOADS = {"small (1 KB)": 1_000, "large (200 KB)": 200_000}
# The guards' workloads, on the two aiogw targets that differ only by guards.
HUGE = ("huge (2 MB)", 2_000_000)
GUARD_PAIR = ("aiogw-audit", "aiogw")
LATENCY_BODIES = {"200 KB": "large (200 KB)", "2 MB": HUGE[0]}
IDLE = "idle"
AUDITED = frozenset(name for name, (audit, *_) in GATEWAYS.items() if audit)
# Paced loads for the loop lag with headroom: (connections, pause ms before each request).
PACED = {"small (1 KB)": (8, 20), "large (200 KB)": (4, 25)}


@dataclass(frozen=True, slots=True)
class Settings:
    duration: float  # seconds per wrk run
    connections: int
    huge_connections: int  # 2 MB bodies: fewer in flight, each holds ~10 MB in the gateway
    latency_duration: float  # seconds per one-connection latency run
    paced_duration: float  # seconds per paced (loop lag) run
    huge_duration: float  # seconds per 2 MB run
    rounds: int
    warmup: float  # one wrk run per target and workload before round 1, not recorded
    stream_duration: float
    stream_warmup: float
    streams: int  # concurrent streams
    lag: bool  # record the aiogw targets' event-loop lag


def parse_args(argv: list[str] | None) -> tuple[Settings, list[str]]:
    p = argparse.ArgumentParser(prog="python -m bench.run", description="aiogw load bench; writes bench/RESULTS.md")
    p.add_argument("--quick", action="store_true", help="a short smoke run (figures are rough)")
    p.add_argument("--duration", type=float, help="seconds per wrk run, whole (default 3; quick 2)")
    p.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    p.add_argument("--rounds", type=int, help="rounds of interleaved targets (default 3; quick 1)")
    p.add_argument("--streams", type=int, default=50, help="concurrent streams (default 50)")
    p.add_argument("--no-lag", action="store_true", help="do not run the loop-lag probe in the aiogw targets")
    args = p.parse_args(argv)
    quick = args.quick
    settings = Settings(
        duration=args.duration or (2.0 if quick else 3.0),
        connections=args.connections,
        huge_connections=16,
        latency_duration=1.0 if quick else 2.0,
        paced_duration=1.0 if quick else 2.0,
        huge_duration=1.0 if quick else 3.0,
        rounds=args.rounds or (1 if quick else 3),
        warmup=1.0,
        stream_duration=1.0 if quick else 3.0,
        stream_warmup=0.3 if quick else 0.5,
        streams=args.streams,
        lag=not args.no_lag,
    )
    return settings, ["python", "-m", "bench.run", *(argv if argv is not None else sys.argv[1:])]


def measure_http(target: Target, fake_pid: int, body: Path, s: Settings, duration: float,
                 connections: int | None = None, script: Path = wrk.SCRIPT) -> dict[str, float]:
    """One wrk run, plus who used the CPU meanwhile (the server, the fake, anything
    else) and, for aiogw, its loop lag over the run and how long its audit writer
    worked on after the load stopped (`drain`)."""
    lag = s.lag and target.lag_file is not None
    if lag:
        target.lag_window(start=True)
    server0, fake0 = procs.cpu_seconds(target.pid), procs.cpu_seconds(fake_pid)
    cores0, load0, t0 = procs.core_busy(), resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    res = wrk.run(target.url, body, target.key, connections=connections or s.connections, duration=duration,
                  cpu=LOAD_CPU, script=script)
    elapsed = time.monotonic() - t0
    load1, cores1 = resource.getrusage(resource.RUSAGE_CHILDREN), procs.core_busy()
    server = procs.cpu_seconds(target.pid) - server0
    fake = procs.cpu_seconds(fake_pid) - fake0
    gen = (load1.ru_utime + load1.ru_stime) - (load0.ru_utime + load0.ru_stime)
    window = target.lag_window(start=False) if lag else None
    # The audit writer may still be writing what the run queued: its CPU belongs to
    # the run's requests, and the next run must not share the core with it.
    drain = procs.wait_idle(target.pid) if target.name in AUDITED else 0.0
    total = procs.cpu_seconds(target.pid) - server0
    proxy = 0.0 if target.pid == fake_pid else server
    ok = res.rps * elapsed
    return {
        "rps": res.rps, "p50": res.p50_ms, "p99": res.p99_ms, "errors": res.errors,
        **{f"status_{code}": n for code, n in res.statuses.items()},
        "server_cpu": 100 * server / elapsed,
        "cpu_us": 1e6 * total / res.requests if res.requests else float("nan"),
        "fake_cpu": 100 * fake / elapsed,
        "drain_s": drain,
        # 200s over the run and the drain: what the gateway sustains, audit included.
        "sustained": ok / (elapsed + drain) if target.name in AUDITED else res.rps,
        # What the bench did not cause: other processes sharing the machine.
        "bg0": procs.busy_percent(cores0, cores1, f"cpu{PROXY_CPU}") - 100 * proxy / elapsed,
        "bg1": procs.busy_percent(cores0, cores1, f"cpu{LOAD_CPU}") - 100 * (fake + gen) / elapsed,
        "proxied": float(target.pid != fake_pid),
        **_lag(window),
    }


def _lag(window: dict | None) -> dict[str, float]:
    if not window:
        return {}
    nan = float("nan")
    return {f"lag_{k}": (nan if window.get(k) is None else window[k]) for k in ("p50", "p99", "max", "n")}


def measure_streams(target: Target, fake_pid: int, s: Settings) -> dict[str, float]:
    cmd = stream_client.command(target.url, target.key, LOAD_CPU, concurrency=s.streams, duration=s.stream_duration,
                          warmup=s.stream_warmup)
    lag = s.lag and target.lag_file is not None
    if lag:
        target.lag_window(start=True)
    cpu0, fake0, t0 = procs.cpu_seconds(target.pid), procs.cpu_seconds(fake_pid), time.monotonic()
    cores0, load0 = procs.core_busy(), resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=s.stream_duration + 60)
    elapsed = time.monotonic() - t0
    load1, cores1 = resource.getrusage(resource.RUSAGE_CHILDREN), procs.core_busy()
    server = procs.cpu_seconds(target.pid) - cpu0
    fake = procs.cpu_seconds(fake_pid) - fake0
    proxy = 0.0 if target.pid == fake_pid else server
    gen = (load1.ru_utime + load1.ru_stime) - (load0.ru_utime + load0.ru_stime)
    window = target.lag_window(start=False) if lag else None
    drain = procs.wait_idle(target.pid) if target.name in AUDITED else 0.0
    if out.returncode != 0:
        raise RuntimeError(f"stream client failed against {target.name}:\n{out.stderr}")
    result = orjson.loads(out.stdout)
    # Includes the client's start-up, so it reads a little low; comparable across targets.
    result["server_cpu"] = 100 * server / elapsed
    result["bg0"] = procs.busy_percent(cores0, cores1, f"cpu{PROXY_CPU}") - 100 * proxy / elapsed
    result["bg1"] = procs.busy_percent(cores0, cores1, f"cpu{LOAD_CPU}") - 100 * (fake + gen) / elapsed
    result["proxied"] = float(target.pid != fake_pid)
    result.update(_lag(window))
    result["drain_s"] = drain
    return result


def measure_idle(target: Target, seconds: float) -> dict[str, float]:
    """The probe's floor: loop lag of an aiogw with nothing to do."""
    target.lag_window(start=True)
    time.sleep(seconds)
    return _lag(target.lag_window(start=False))


def summarise(workload: str, target: str, rounds: list[dict[str, float]]) -> Row:
    keys = dict.fromkeys(k for r in rounds for k in r)
    values = {k: median([r.get(k, 0.0) for r in rounds]) for k in keys}
    # Errors are totals over the rounds: one bad round must show; so is the worst lag.
    for k in keys:
        if k in ("errors", "failed", "lag_n") or k.startswith("status_"):
            values[k] = sum(r.get(k, 0) for r in rounds)
        elif k == "lag_max":
            values[k] = max(r.get(k, 0.0) for r in rounds)
    return Row(workload, target, values, rounds)


def machine(s: Settings, command: list[str]) -> dict[str, str]:
    import sqlite3

    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown")
    rev = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True, cwd=ROOT)
    libs = ", ".join(f"{d} {_version(d)}" for d in ("aiohttp", "uvloop", "orjson", "aiosqlite", "hyperscan"))
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} CPUs, {model}, Linux {platform.release()}",
        "software": f"Python {platform.python_version()}, {libs}, SQLite {sqlite3.sqlite_version}; "
                    f"aiogw at {rev.stdout.strip() or 'unknown'} (uncommitted work included when -dirty)",
        "command": f"`make bench` (here: `{' '.join(command)}`)",
        "load generator": f"{wrk.version()} (Debian package `wrk`), 1 thread, {s.connections} connections "
                          f"({s.huge_connections} for 2 MB bodies, 1 for the latency runs), {s.duration:g} s per "
                          f"run ({s.latency_duration:g} s per latency run) after a {s.warmup:g} s warm-up; "
                          f"streams: `bench.streams` (aiohttp on uvloop), {s.streams} concurrent, "
                          f"{s.stream_duration:g} s per run",
        "upstream": "`python -m aiogw.fake_upstream --lean` (bodies over 16 KB: no text walk, CRC ids)",
        "rounds": f"{s.rounds}, targets interleaved; figures are medians of the rounds",
        "pinning": "proxy under test on CPU 0; fake upstream and load generators on CPU 1 (taskset)",
        "loop lag": "measured in each aiogw process while it is under load (`bench.gateway`)" if s.lag
                    else "not measured (`--no-lag`)",
    }


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


def audit_db(tmp: Path, name: str) -> dict[str, float] | None:
    """Rows and size of a stopped gateway's audit database (its writer has drained)."""
    import sqlite3

    path = tmp / name / "state.db"
    if not path.exists():
        return None
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT count(*) FROM exchanges").fetchone()[0]
    except sqlite3.OperationalError:
        return None  # audit off: no table
    finally:
        conn.close()
    size = sum(p.stat().st_size for p in path.parent.glob("state.db*"))
    return {"rows": rows, "mib": size / 2**20}


def _print(rnd: int, workload: str, t: Target, m: dict[str, float]) -> None:
    lag = f"  lag p99 {m['lag_p99']:6.2f} ms" if "lag_p99" in m else ""
    lag += f"  drain {m['drain_s']:.1f} s" if m.get("drain_s", 0) > 0.5 else ""
    lag += f"  other load {max(0, m['bg0']):.0f}/{max(0, m['bg1']):.0f} %" if "bg0" in m else ""
    if "rps" in m:
        print(f"round {rnd} {workload:>16} {t.name:>11}: {m['rps']:8.0f} req/s  p50 {m['p50']:7.2f} ms  "
              f"p99 {m['p99']:7.2f} ms  errors {m['errors']:.0f}{lag}", flush=True)
    else:
        print(f"round {rnd} {workload:>16} {t.name:>11}: {m['streams_per_s']:6.1f} streams/s  "
              f"TTFB p50 {m['ttfb_p50']:5.2f} ms  gap p50 {m['gap_p50']:5.2f} p99 {m['gap_p99']:5.2f} ms{lag}",
              flush=True)


def run(s: Settings, command: list[str]) -> str:
    meta = machine(s, command)  # before start: the revision is what the servers load
    with tempfile.TemporaryDirectory(prefix="aiogw-bench-") as tmp_name:
        tmp = Path(tmp_name)
        # aiogw's targets get bodies numbered per request by post.lua (a new turn each
        # time, so its caches see what they would see from agents); direct and the
        # pass-through cache nothing and get the same bytes unnumbered, which spares
        # the load core a copy of the request per request.
        plain, marked = {}, {}
        for name, size in (*WORKLOADS.items(), HUGE):
            plain[name], marked[name] = tmp / f"body-{size}.json", tmp / f"body-{size}-marked.json"
            plain[name].write_bytes(messages_body(size))
            marked[name].write_bytes(messages_body(size, marked=True))

        def body(t: Target, name: str) -> Path:
            return marked[name] if t.lag_file is not None else plain[name]

        scripts = {name: wrk.paced_script(pause, tmp) for name, (_, pause) in PACED.items()}
        servers = procs.Procs(tmp, ROOT)
        http: dict[tuple[str, str], list[dict[str, float]]] = {}
        streams: dict[str, list[dict[str, float]]] = {}
        latency: dict[tuple[str, str], list[dict[str, float]]] = {}
        paced: dict[tuple[str, str], list[dict[str, float]]] = {}
        idle: dict[str, list[dict[str, float]]] = {}
        try:
            targets, fake_pid = start_all(servers, tmp)
            gateways = [t for t in targets if t.lag_file is not None]
            pair = [t for t in targets if t.name in GUARD_PAIR]
            configs = {t.name: (tmp / t.name / "aiogw.toml").read_text() for t in gateways}
            print(f"servers up; logs in {tmp}", flush=True)
            steady = procs.Steady()
            for name in WORKLOADS:
                for t in targets:
                    measure_http(t, fake_pid, body(t, name), s, s.warmup)
            for t in pair:
                measure_http(t, fake_pid, body(t, HUGE[0]), s, s.warmup, s.huge_connections)
            for rnd in range(1, s.rounds + 1):
                for name in WORKLOADS:
                    for t in targets:
                        m = steady(measure_http, t, fake_pid, body(t, name), s, s.duration)
                        http.setdefault((name, t.name), []).append(m)
                        _print(rnd, name, t, m)
                for t in targets:
                    m = steady(measure_streams, t, fake_pid, s)
                    streams.setdefault(t.name, []).append(m)
                    _print(rnd, "streams", t, m)
                for t in pair:
                    m = steady(measure_http, t, fake_pid, body(t, HUGE[0]), s, s.huge_duration, s.huge_connections)
                    http.setdefault((HUGE[0], t.name), []).append(m)
                    _print(rnd, HUGE[0], t, m)
                for label, workload in LATENCY_BODIES.items():
                    for t in pair:
                        m = steady(measure_http, t, fake_pid, body(t, workload), s, s.latency_duration, 1)
                        latency.setdefault((label, t.name), []).append(m)
                        _print(rnd, f"{label} one by one", t, m)
                if s.lag:
                    for t in gateways:
                        idle.setdefault(t.name, []).append(measure_idle(t, 0.5))
                    for name, (conns, _) in PACED.items():
                        for t in gateways:
                            m = steady(measure_http, t, fake_pid, body(t, name), s, s.paced_duration, conns, scripts[name])
                            paced.setdefault((name, t.name), []).append(m)
                            _print(rnd, f"{name.split()[0]} paced", t, m)
            meta["other jobs"] = (f"{steady.retried} runs measured again because another job kept a core over "
                                  f"{procs.DISTURBED:.0f} % busy; {steady.waited:.0f} s spent waiting for quiet")
            rss = {t.name if t.name != "direct" else "fake upstream": procs.peak_rss_mb(t.pid) for t in targets}
        finally:
            servers.stop_all()
        audits = {t.name: audit_db(tmp, t.name) for t in targets if t.lag_file is not None}
    return report.markdown(
        meta,
        http_rows=[summarise(w, t, rounds) for (w, t), rounds in http.items()],
        stream_rows=[summarise("streams", t, rounds) for t, rounds in streams.items()],
        latency_rows=[summarise(w, t, rounds) for (w, t), rounds in latency.items()],
        paced_rows=[summarise(w, t, rounds) for (w, t), rounds in paced.items()],
        idle_rows=[summarise(IDLE, t, rounds) for t, rounds in idle.items()],
        rss=rss,
        audits={k: v for k, v in audits.items() if v is not None},
        configs=configs,
        paced=PACED,
    )


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so the `finally` that stops the servers runs


def main(argv: list[str] | None = None) -> int:
    settings, command = parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
    signal.signal(signal.SIGTERM, _terminate)
    try:
        text = run(settings, command)
    except KeyboardInterrupt:
        print("bench interrupted; servers stopped", file=sys.stderr)
        return 130
    print()
    print(text)
    if settings.rounds < 3 or "--quick" in command:
        # A smoke run's rough figures must not replace a full run's.
        print("a quick or short run: bench/RESULTS.md left as it was")
    else:
        results.write_section("bench.run", text)
        print(f"written to {results.RESULTS.relative_to(ROOT)} (section bench.run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
