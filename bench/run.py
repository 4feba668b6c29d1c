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
import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench import harness, loads, procs, report, wrk
from bench.bodies import messages_body
from bench.harness import Side, Suite, Workload
from bench.report import HUGE, LARGE, SMALL, Row
from bench.targets import GATEWAYS, ROOT, TARGETS, start

# The guards' workloads run on the two aiogw targets that differ only by guards.
GUARD_PAIR = frozenset(("aiogw-audit", "aiogw"))
SIZES = {SMALL: 1_000, LARGE: 200_000, HUGE: 2_000_000}
LATENCY_BODIES = {"200 KB": LARGE, "2 MB": HUGE}
ONE_BY_ONE = " one by one"
IDLE = "idle"
# Paced loads for the loop lag with headroom: (connections, pause ms before each request).
PACED = {SMALL: (8, 20), LARGE: (4, 25)}


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


def machine(s: Settings, command: list[str]) -> dict[str, str]:
    import sqlite3

    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown")
    rev = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True, cwd=ROOT)
    libs = ", ".join(f"{d} {_version(d)}" for d in ("aiohttp", "uvloop", "orjson", "aiosqlite", "hyperscan"))
    return {
        "date": harness.now(),
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


def workloads(s: Settings, tmp: Path) -> tuple[Workload, ...]:
    """bench.run's suite, in its measuring order within a round."""
    # aiogw's targets get bodies numbered per request by post.lua (a new turn each
    # time, so its caches see what they would see from agents); direct and the
    # pass-through cache nothing and get the same bytes unnumbered, which spares
    # the load core a copy of the request per request.
    bodies: dict[tuple[str, bool], Path] = {}
    for name, size in SIZES.items():
        for marked in (False, True):
            bodies[(name, marked)] = tmp / f"body-{size}{'-marked' if marked else ''}.json"
            bodies[(name, marked)].write_bytes(messages_body(size, marked=marked))

    def wrk_load(name: str, connections: int, script: Path = wrk.SCRIPT) -> harness.Measure:
        return lambda t, d: loads.http(t, bodies[(name, t.config is not None)], d, connections, script)

    gateways = frozenset(GATEWAYS)
    out = [Workload(name, wrk_load(name, s.connections), s.duration, s.warmup) for name in (SMALL, LARGE)]
    out.append(Workload("streams", lambda t, d: loads.streams(t, d, concurrency=s.streams, events=50, delay=0.005,
                                                             warmup=s.stream_warmup), s.stream_duration))
    out.append(Workload(HUGE, wrk_load(HUGE, s.huge_connections), s.huge_duration, s.warmup, GUARD_PAIR))
    out += [Workload(label + ONE_BY_ONE, wrk_load(name, 1), s.latency_duration, only=GUARD_PAIR)
            for label, name in LATENCY_BODIES.items()]
    if s.lag:
        out.append(Workload(IDLE, loads.idle, 0.5, only=gateways))
        out += [Workload(f"{name} paced", wrk_load(name, conns, wrk.paced_script(pause, tmp)), s.paced_duration,
                         only=gateways) for name, (conns, pause) in PACED.items()]
    return tuple(out)


def rows(got: harness.Results) -> dict[str, list[Row]]:
    """The figures as bench.report takes them, by table."""
    out: dict[str, list[Row]] = {"http": [], "streams": [], "latency": [], "paced": [], "idle": []}
    for (workload, target), rounds in got.items():
        if workload.endswith(ONE_BY_ONE):
            kind, workload = "latency", workload.removesuffix(ONE_BY_ONE)
        elif workload.endswith(" paced"):
            kind, workload = "paced", workload.removesuffix(" paced")
        else:
            kind = {"streams": "streams", IDLE: "idle"}.get(workload, "http")
        out[kind].append(Row(workload, target, harness.summarise(rounds), rounds))
    return out


def run(s: Settings, command: list[str]) -> str:
    meta = machine(s, command)  # before start: the revision is what the servers load
    with harness.Lab("aiogw-bench-") as lab:
        targets, _ = start(lab.servers, lab.tmp, TARGETS)
        gateways = [t for t in targets if t.config is not None]
        configs = {t.name: t.config.read_text() for t in gateways if t.config is not None}
        print(f"servers up; logs in {lab.tmp}", flush=True)
        suite = Suite(tuple(Side(t.name, (t,)) for t in targets), workloads(s, lab.tmp), s.rounds)
        got, steady = harness.run(suite)
        meta["other jobs"] = (f"{steady.retried} runs measured again because another job kept a core over "
                              f"{procs.DISTURBED:.0f} % busy; {steady.waited:.0f} s spent waiting for quiet")
        rss = {t.name if t.name != "direct" else "fake upstream": procs.peak_rss_mb(t.pid) for t in targets}
        lab.servers.stop_all()  # the audit writers drain: their databases are whole
        audits = {t.name: audit_db(lab.tmp, t.name) for t in gateways}
    by = rows(got)
    return report.markdown(
        meta, http_rows=by["http"], stream_rows=by["streams"], latency_rows=by["latency"], paced_rows=by["paced"],
        idle_rows=by["idle"], rss=rss, audits={k: v for k, v in audits.items() if v is not None}, configs=configs,
        paced=PACED,
    )


def main(argv: list[str] | None = None) -> int:
    settings, command = parse_args(argv)
    with harness.interrupted():
        text = run(settings, command)
    print()
    # A smoke run's rough figures must not replace a full run's.
    harness.write("bench.run", text, settings.rounds >= 3 and "--quick" not in command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
