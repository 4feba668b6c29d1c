"""Scale-out's price: worker processes and limits in Redis against one process with them
in memory (issue 19, item 6), in one run.

    python -m bench.scale [--rounds 4] [--duration 3] [--redis-cpu 1] [--no-write]

Every gateway is bench.limits's (audit, guards, metrics and the exchange log off; limits
for every user far above the load, so each request is admitted, counted and charged)
under wrk with 1 KB Anthropic bodies; its limits in its own memory, or in a throwaway
redis-server of the bench's own (`[limits] store`, a database per gateway). wrk and the
fake upstream run on CPU 1 throughout.

First one worker a gateway, pinned to CPU 0 as in bench.limits, Redis on `--redis-cpu`
(the load's core by default: a shared Redis runs on a host of its own):
2. admission's added latency: one request at a time (wrk -c1), memory against Redis,
   as shipped (the bench's one user is busy, so leased: aiogw.limits.lease) and with
   `leases = false` (every admission a round trip: what a user sending a request now
   and then pays);
3. limits on against off with Redis: one process, the counted keys of `[limits]` in and
   out of its config by a reload (SIGHUP) before each run, `store` kept; then each
   script's own time inside Redis (its SLOWLOG) at 1, 32 and 128 connections.
Then every gateway process and Redis free on both cores (two workers pinned to one core
would only take turns), paced (the same offered load, below either side's capacity) and
saturated:
1. CPU an answer: `aiogw serve` with limits in memory against `aiogw serve --workers 2`
   with them in Redis: utime + stime from /proc of the supervisor (its reaped children
   too), its workers and redis-server; wrk's and the fake's apart, not counted;
4. one worker against two, both with Redis: what a second worker adds on a 2-core
   machine whose other core the load already takes (it cannot show 2×).

Two processes a side taken in turn, the sides interleaved A-B then B-A (bench.harness,
`alternate`); ratios per round, medians kept. Every run counts Redis's EVALSHA calls
and wrk's non-200 answers, which fail a target (ADMIT and SETTLE: two an answer when every admission
asks Redis; LEASE: one a busy user's lease each 0.1 s). Writes the `bench.scale`
section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from aiogw.limits.redis_scripts import ADMIT, LEASE, SETTLE
from bench import harness, loads, onoff, procs, wrk
from bench.bodies import messages_body
from bench.harness import Side, Suite, Workload, fmt
from bench.targets import BARE, FAKE_KEY, LIMITS, LOAD_CPU, PROXY_CPU, ROOT, Target, reload_with, start_fake
from tests.redisserver import RedisServer

CPU_TARGET = 1.15  # 2 workers + Redis: total CPU an answer ≤ 1.15 × one process's with limits in memory
LATENCY_TARGET_MS = 0.3  # Redis adds ≤ 0.3 ms to a lone request's p50
ONOFF_TARGET = 0.90  # limits on ≥ 90% of limits off, with Redis
CONNECTIONS = 32
PACED_MS = 10  # wrk's pause before each request on a connection: a load below either side's capacity
FREE = "0,1"
SATURATED = f"saturated ({CONNECTIONS} connections)"
PACED_NAME = f"paced ({CONNECTIONS} connections, {PACED_MS} ms pause)"
LONE = "one at a time (1 connection)"
COUNTED = "".join(f"{line}\n" for line in LIMITS)  # the keys a reload takes out and puts back
_TICK = os.sysconf("SC_CLK_TCK")
_RELOADED = b"reload applied"


@dataclasses.dataclass(frozen=True, slots=True)
class Gw:
    """One gateway: `target.pid` is the supervisor's with workers, else the process's."""

    target: Target
    redis: RedisServer | None  # its limits' store, None: in memory


def limits_toml(store: str | None, leases: bool = True) -> str:
    """The [limits] table last in the file (a reload appends COUNTED back at the end)."""
    return ("\n[limits]\n" + (f'store = "{store}"\n' if store else "") + ("" if leases else "leases = false\n")
            + COUNTED)


def tree(pid: int) -> list[int]:
    """A process and its descendants, alive now."""
    out = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [p for child in (task / "children").read_text().split() for p in tree(int(child))]
        except FileNotFoundError:
            continue
    return out


def stat_seconds(pid: int, reaped: bool = False) -> float:
    """utime + stime of a process (all its threads); with `reaped`, its waited-for
    children's too (a worker that died and was restarted during a run)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    ticks = sum(int(f) for f in fields[11:15 if reaped else 13])
    return ticks / _TICK


def tree_seconds(pid: int) -> tuple[float, float]:
    """(the whole tree's CPU seconds, the root's own): a supervisor and its workers."""
    total = stat_seconds(pid, reaped=True)
    for p in tree(pid)[1:]:
        try:
            total += stat_seconds(p)
        except FileNotFoundError:  # ended meanwhile: in its parent's reaped time next
            continue
    return total, stat_seconds(pid)


def evalsha(stats: str) -> tuple[int, int]:
    """(calls, µs) of EVALSHA in Redis's INFO commandstats."""
    for line in stats.splitlines():
        if line.startswith("cmdstat_evalsha:"):
            parts = dict(kv.split("=", 1) for kv in line.split(":", 1)[1].split(","))
            return int(parts["calls"]), int(parts["usec"])
    return 0, 0


def set_cpus(pids: Sequence[int], cpus: str) -> None:
    """Every thread of each process onto `cpus` (a taskset list: "1", "0,1")."""
    for pid in pids:
        subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(pid)], check=True, capture_output=True)


def start(lab: harness.Lab, name: str, fake_port: int, fake_pid: int, *, workers: int = 1,
          redis: RedisServer | None = None, db: int = 0, leases: bool = True) -> Gw:
    """A gateway on PROXY_CPU as bench.targets.start_gateway makes one, with `--workers`;
    returns once every worker listens."""
    state = lab.tmp / name
    state.mkdir()
    port = procs.free_port()
    config = state / "aiogw.toml"
    gw = dataclasses.replace(BARE, extra=limits_toml(redis.database_url(db) if redis else None, leases))
    config.write_text(gw.toml(state, port, fake_port))
    env = {**os.environ, "BENCH_ANTHROPIC_KEY": FAKE_KEY}
    made = subprocess.run([sys.executable, "-m", "aiogw", "keys", "create", "bench", "--config", str(config)],
                          capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    if made.returncode != 0:
        raise RuntimeError(f"aiogw keys create failed: {made.stderr.strip()}")
    cmd = [sys.executable, "-m", "aiogw", "serve", "--config", str(config)]
    pid = lab.servers.start(name, cmd + (["--workers", str(workers)] if workers > 1 else []), cpu=PROXY_CPU,
                            port=port, env=env)
    deadline = time.monotonic() + 20
    while workers > 1 and b"workers listen on" not in (lab.tmp / f"{name}.log").read_bytes():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name}: {workers} workers not listening after 20 s:\n{lab.servers.log_tail(name)}")
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}/llm-gateway/anthropic/v1/messages"
    return Gw(Target(name, url, made.stdout.strip(), pid, fake_pid, config), redis)


def measure(gw: Gw, body: Path, duration: float, connections: int, script: Path = wrk.SCRIPT) -> dict[str, float]:
    """One wrk run on CPU 1; answers/s (200s only), latency, and CPU µs an answer: the
    gateway's processes, Redis's, the fake's and wrk's; what the whole machine was busy
    (`machine_us`), and other jobs' share of it (`bg0`/`bg1`, for procs.Steady)."""
    redis, fake = gw.redis, gw.target.fake_pid
    calls0 = evalsha(redis.command("INFO", "commandstats").decode()) if redis else (0, 0)
    (gw0, sup0), r0, f0 = tree_seconds(gw.target.pid), stat_seconds(redis.pid) if redis else 0.0, stat_seconds(fake)
    ru0, cores0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), procs.core_busy(), time.monotonic()
    res = wrk.run(gw.target.url, body, gw.target.key, connections=connections, duration=duration, cpu=LOAD_CPU,
                  script=script)
    elapsed = time.monotonic() - t0
    ru1, cores1 = resource.getrusage(resource.RUSAGE_CHILDREN), procs.core_busy()
    gw_run, r_run, f_run = tree_seconds(gw.target.pid)[0] - gw0, (stat_seconds(redis.pid) - r0) if redis else 0.0, \
        stat_seconds(fake) - f0
    gen = ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime
    for pid in tree(gw.target.pid):  # the last settles' replies: the run's too
        procs.wait_idle(pid, timeout=5)
    (gw1, sup1), r1 = tree_seconds(gw.target.pid), stat_seconds(redis.pid) if redis else 0.0
    calls1 = evalsha(redis.command("INFO", "commandstats").decode()) if redis else (0, 0)
    per = 1e6 / res.requests if res.requests else float("nan")
    busy = sum(cores1[c][0] - cores0[c][0] for c in cores1) / _TICK
    other = 100 * (busy - gw_run - r_run - f_run - gen) / elapsed
    calls = calls1[0] - calls0[0]
    return {"rps": res.rps, "p50": res.p50_ms, "p99": res.p99_ms, "errors": res.errors, "answers": res.requests,
            **{f"status_{code}": n for code, n in res.statuses.items()},
            "gw_us": (gw1 - gw0) * per, "sup_us": (sup1 - sup0) * per,
            "workers_us": (gw1 - gw0 - sup1 + sup0) * per, "redis_us": (r1 - r0) * per,
            "cpu_us": (gw1 - gw0 + r1 - r0) * per, "fake_us": f_run * per, "wrk_us": gen * per,
            "machine_us": busy * per, "gw_cores": (gw_run + r_run) / elapsed, "load_cores": (f_run + gen) / elapsed,
            "calls": calls / res.requests if res.requests else float("nan"),
            "script_us": (calls1[1] - calls0[1]) / calls if calls else float("nan"), "bg0": other, "bg1": other}


def script_times(g: Gw, body: Path, duration: float) -> list[list[str]]:
    """ADMIT's and SETTLE's own time in Redis (its SLOWLOG, every command logged) at 1, 32
    and 128 connections: what each request costs the one Redis every instance shares."""
    redis, rows = g.redis, []
    assert redis is not None
    names = {ADMIT.sha.encode(): "ADMIT", SETTLE.sha.encode(): "SETTLE", LEASE.sha.encode(): "LEASE"}
    for conns in (1, CONNECTIONS, 4 * CONNECTIONS):
        redis.command("CONFIG", "SET", "slowlog-max-len", "1000000")
        redis.command("CONFIG", "SET", "slowlog-log-slower-than", "0")
        redis.command("SLOWLOG", "RESET")
        res = wrk.run(g.target.url, body, g.target.key, connections=conns, duration=duration, cpu=LOAD_CPU)
        entries = redis.command("SLOWLOG", "GET", "-1")
        redis.command("CONFIG", "SET", "slowlog-log-slower-than", "10000")  # Redis's defaults again
        redis.command("CONFIG", "SET", "slowlog-max-len", "128")
        took: dict[str, list[int]] = {"ADMIT": [], "SETTLE": [], "LEASE": []}
        for entry in entries:  # [id, time, µs, [command, args...], ...]
            if entry[3][0].lower() == b"evalsha" and entry[3][1] in names:
                took[names[entry[3][1]]].append(entry[2])
        rows.append([str(conns), fmt(res.rps, 0), str(res.errors),
                     *(f"{harness.median_of(t):.0f} / {statistics.fmean(t) if t else float('nan'):.1f}"
                       for t in took.values())])
    return rows


def run(args: argparse.Namespace, say: Callable[[str], None] = print) -> dict:
    d = args.duration
    out: dict = {}
    steady: list[procs.Steady] = []
    t_start = time.monotonic()
    with harness.Lab("aiogw-bench-scale-") as lab, RedisServer() as redis:
        body = lab.tmp / "body-1000.json"
        body.write_bytes(messages_body(1_000))
        paced = wrk.paced_script(PACED_MS, lab.tmp)
        dbs = iter(range(1, 64))
        fake: list[int] = []

        def http(connections: int, script: Path = wrk.SCRIPT) -> Callable[[Gw, float], dict[str, float]]:
            return lambda g, dur: measure(g, body, dur, connections, script)

        def side(label: str, workers: int, shared: bool, free: bool, leases: bool = True) -> list[Gw]:
            gws = [start(lab, f"{label}-{i}", fake[1], fake[0], workers=workers, redis=redis if shared else None,
                         db=next(dbs), leases=leases) for i in range(2)]
            for g in gws:
                if free:
                    set_cpus(tree(g.target.pid), FREE)
                loads.spot_check(g.target, body.read_bytes())  # a 200 carrying the fake's answer
            return gws

        def suite(a: tuple[str, list[Gw]], b: tuple[str, list[Gw]], *work: Workload) -> harness.Results:
            got, s = harness.run(Suite((Side(a[0], tuple(a[1])), Side(b[0], tuple(b[1]))), work, args.rounds,
                                       alternate=True), say)
            steady.append(s)
            return got

        # 2 and 3: one worker pinned to the gateway's core, Redis on --redis-cpu.
        set_cpus([redis.pid or 0], FREE if args.redis_cpu is None else str(args.redis_cpu))
        fake[:] = start_fake(lab.servers)
        memory, one = side("memory", 1, False, False), side("redis", 1, True, False)
        exact = side("exact", 1, True, False, leases=False)
        say(f"servers up; logs in {lab.tmp}; Redis on port {redis.port}")
        out["latency"] = suite(("memory", memory), ("redis", one), Workload(LONE, http(1), d, warmup=1.0))
        out["latency_exact"] = suite(("memory", memory), ("exact", exact), Workload(LONE, http(1), d, warmup=1.0))
        g = one[0]
        log = lab.tmp / f"{g.target.name}.log"

        def switch(label: str) -> None:
            before = log.read_bytes().count(_RELOADED)
            reload_with(g.target, COUNTED, label == "on", lambda: log.read_bytes().count(_RELOADED) > before,
                        f"limits {label}")

        got, s = harness.run(onoff.suite([g.target], [g.target], (Workload(
            SATURATED, lambda t, dur: measure(g, body, dur, CONNECTIONS), d, warmup=1.0),), args.rounds, switch), say)
        out["onoff"] = got
        steady.append(s)
        switch("on")
        out["scripts"] = script_times(g, body, d)
        # 1 and 4: every gateway process and Redis free on both cores.
        lab.servers.stop_all()
        set_cpus([redis.pid or 0], FREE)
        fake[:] = start_fake(lab.servers)
        memory, one, two = side("free-memory", 1, False, True), side("free-1w", 1, True, True), \
            side("free-2w", 2, True, True)
        work = (Workload(PACED_NAME, http(CONNECTIONS, paced), d, warmup=1.0),
                Workload(SATURATED, http(CONNECTIONS), d, warmup=1.0))
        out["cpu"] = suite(("memory", memory), ("redis", two), *work)
        out["workers"] = suite(("1 worker", one), ("2 workers", two), *work)
    out["retried"] = sum(s.retried for s in steady)
    out["waited"] = sum(s.waited for s in steady)
    out["seconds"] = time.monotonic() - t_start
    return out


# --------------------------------------------------------------------------------------
# The report: plain data in, markdown out (tests/test_bench_scale.py).
# --------------------------------------------------------------------------------------


def per_round(a: Sequence[dict], b: Sequence[dict], key: str, how: str = "ratio") -> tuple[float, str]:
    """a ÷ b (or a − b) round by round: the median, and each round's."""
    r = harness.ratios(a, b, key) if how == "ratio" else [x[key] - y[key] for x, y in zip(a, b, strict=True)]
    return harness.median_of(r), ", ".join(f"{x:.2f}" if how == "ratio" else f"{x:+.3f}" for x in r)


def errors(*sides: Sequence[dict]) -> int:
    return int(sum(r.get("errors", 0) for side in sides for r in side))


def _verdict(ok: bool, errs: int) -> str:
    return "**PASS**" if ok and not errs else "**MISS**"


def _m(rounds: Sequence[dict], key: str, digits: int = 0) -> str:
    return fmt(harness.median(rounds, key), digits)


def _one(got: harness.Results, side: str) -> list[dict[str, float]]:
    """A side's rounds in a suite of one workload."""
    return next(rounds for (_, s), rounds in got.items() if s == side)


def report(res: dict) -> tuple[list[str], list[str]]:
    """(verdict lines, body lines)."""
    verdicts: list[str] = []
    rows = []
    for (name, side), mem in res["cpu"].items():
        if side != "memory":
            continue
        red = res["cpu"][(name, "redis")]
        ratio, rounds = per_round(red, mem, "cpu_us")
        errs = errors(mem, red)
        rows.append([name, f"{_m(mem, 'rps')} / {_m(red, 'rps')}", _m(mem, "cpu_us"),
                     f"{_m(red, 'sup_us', 1)} + {_m(red, 'workers_us')} + {_m(red, 'redis_us')} = {_m(red, 'cpu_us')}",
                     f"**{ratio:.2f}** ({rounds})", f"{_m(mem, 'wrk_us')} / {_m(red, 'wrk_us')}",
                     f"{_m(mem, 'fake_us')} / {_m(red, 'fake_us')}", f"{_m(mem, 'machine_us')} / {_m(red, 'machine_us')}",
                     f"{_m(red, 'calls', 2)} ({_m(red, 'script_us', 1)} µs each in Redis)", str(errs)])
        verdicts.append(f"{_verdict(ratio <= CPU_TARGET, errs)} CPU an answer, {name}: 2 workers with Redis "
                        f"{ratio:.2f}× one process with limits in memory (target ≤ {CPU_TARGET:.2f}×; per round "
                        f"{rounds}; non-200 answers {errs}).")
    body = ["### 1. CPU an answer: one process with limits in memory → 2 workers with limits in Redis", "",
            "Every gateway process and Redis free on both cores; medians of the rounds; the ratio is the total's, "
            "round by round.", "",
            *harness.table(("load", "answers/s memory / Redis", "CPU µs an answer, memory (the process)",
                            "CPU µs an answer, Redis: supervisor + workers + redis-server = total", "ratio (per round)",
                            "wrk µs memory / Redis (not counted)", "fake upstream µs (not counted)",
                            "whole machine µs (both cores' busy time)", "Redis EVALSHA an answer", "non-200"), rows)]
    lat_m, lat_r = res["latency"][(LONE, "memory")], res["latency"][(LONE, "redis")]
    ex_m, ex_r = res["latency_exact"][(LONE, "memory")], res["latency_exact"][(LONE, "exact")]
    diff, rounds = per_round(lat_r, lat_m, "p50", "difference")
    ex_diff, ex_rounds = per_round(ex_r, ex_m, "p50", "difference")
    errs, ex_errs = errors(lat_m, lat_r), errors(ex_m, ex_r)
    body += ["", "### 2. One request at a time (wrk -c1): Redis's added p50", "",
             "One worker a gateway, pinned to CPU 0; Redis on the load's core (or `--redis-cpu`). *Leased*: as "
             "shipped (a user sending a thousand requests a second is busy, so admitted on its lease); *every "
             "admission asks Redis*: `leases = false`, what a user sending a request now and then pays.", "",
             *harness.table(("side", "p50 ms", "p99 ms", "answers/s", "CPU µs an answer: gateway + Redis",
                             "Redis EVALSHA an answer", "non-200"),
                            [[label, _m(r, "p50", 3), _m(r, "p99", 3), _m(r, "rps"),
                              f"{_m(r, 'gw_us')} + {_m(r, 'redis_us')}", _m(r, "calls", 2), str(errors(r))]
                             for label, r in (("memory", lat_m), ("Redis, leased", lat_r), ("memory (again)", ex_m),
                                              ("Redis, every admission asks it", ex_r))]),
             "", f"Redis − memory, p50, per round: leased {rounds} ms, median **{diff:+.3f} ms**; every admission "
             f"asking Redis {ex_rounds} ms, median **{ex_diff:+.3f} ms**. Over loopback on one machine: a Redis on "
             "another host adds its network round trip to each admission that asks it."]
    verdicts.append(f"{_verdict(diff <= LATENCY_TARGET_MS, errs)} added p50, one request at a time, leased: "
                    f"{diff:+.3f} ms with Redis (target ≤ {LATENCY_TARGET_MS} ms; per round {rounds} ms; non-200 "
                    f"answers {errs}).")
    verdicts.append(f"{_verdict(ex_diff <= LATENCY_TARGET_MS, ex_errs)} added p50, one request at a time, every "
                    f"admission asking Redis: {ex_diff:+.3f} ms (target ≤ {LATENCY_TARGET_MS} ms; per round "
                    f"{ex_rounds} ms; non-200 answers {ex_errs}).")
    off, on = _one(res["onoff"], "off"), _one(res["onoff"], "on")
    ratio, rounds = per_round(on, off, "rps")
    errs = errors(off, on)
    body += ["", "### 3. Limits off → on, in Redis: one worker, one process switched by a reload", "",
             "Pinned to CPU 0, Redis as in 2; the `store` key stays in both.", "",
             *harness.table(("load", "off /s", "on /s", "ratio (per round)",
                             "CPU µs an answer off → on: gateway + Redis", "Redis EVALSHA an answer off / on",
                             "non-200"),
                            [[SATURATED, _m(off, "rps"), _m(on, "rps"), f"**{ratio:.0%}** ({rounds})",
                              f"{_m(off, 'cpu_us')} → {_m(on, 'gw_us')} + {_m(on, 'redis_us')}",
                              f"{_m(off, 'calls', 2)} / {_m(on, 'calls', 2)}", str(errs)]]),
             "", "Each script's own time inside Redis (its SLOWLOG logging every command; µs, median / mean), one "
             "run of the same gateway, limits on, at each number of connections:", "",
             *harness.table(("connections", "answers/s", "non-200", "ADMIT µs", "SETTLE µs", "LEASE µs"),
                            res["scripts"])]
    verdicts.append(f"{_verdict(ratio >= ONOFF_TARGET, errs)} limits on in Redis: {ratio:.0%} of limits-off "
                    f"throughput (target ≥ {ONOFF_TARGET:.0%}; per round {rounds}; non-200 answers {errs}).")
    rows = []
    for (name, side), w1 in res["workers"].items():
        if side != "1 worker":
            continue
        w2 = res["workers"][(name, "2 workers")]
        ratio, rounds = per_round(w2, w1, "rps")
        cpu, _ = per_round(w2, w1, "cpu_us")
        errs = errors(w1, w2)
        rows.append([name, f"{_m(w1, 'rps')} / {_m(w2, 'rps')}", f"**{ratio:.2f}×** ({rounds})",
                     f"{_m(w1, 'cpu_us')} / {_m(w2, 'cpu_us')} ({cpu:.2f}×)",
                     f"{_m(w1, 'gw_cores', 2)} / {_m(w2, 'gw_cores', 2)}",
                     f"{_m(w1, 'load_cores', 2)} / {_m(w2, 'load_cores', 2)}", str(errs)])
        verdicts.append(f"**INFO** 2 workers against 1, both with Redis, {name}: {ratio:.2f}× the answers/s (per "
                        f"round {rounds}), {cpu:.2f}× the CPU an answer; non-200 answers {errs}.")
    body += ["", "### 4. One worker → two, both with limits in Redis", "",
             "As in 1: the gateways and Redis free on both cores, wrk and the fake on CPU 1; the same two "
             "2-worker gateways as in 1.", "",
             *harness.table(("load", "answers/s 1 worker / 2", "ratio (per round)",
                             "CPU µs an answer, gateway + Redis: 1 worker / 2", "cores busy, gateway + Redis: 1 / 2",
                             "cores busy, wrk + fake: 1 / 2", "non-200"), rows),
             "", "What it shows: whether a second worker gets more answers out of this machine, and at what CPU an "
             "answer (*paced*: the same offered load on both, so only the CPU differs). What it cannot: scaling. "
             "The machine has 2 cores and the load (wrk and the fake upstream) keeps about half of one busy, so one "
             "worker already has a core to itself and two share what is left with the load and Redis: two workers "
             "cannot show 2× here. Scaling wants the load on another machine, or more cores than workers + 1."]
    return verdicts, body


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n\n")[0])
    onoff.add_run_args(p, 4, 3.0)
    p.add_argument("--redis-cpu", type=int, default=LOAD_CPU,
                   help="the core redis-server is pinned to for 2 and 3 (default: the load's, as a Redis on a host "
                        "of its own leaves the gateway's core to it); -1: free on both")
    args = p.parse_args(argv)
    if args.rounds < 1 or not args.duration > 0:
        p.error("--rounds must be at least 1, --duration above 0 seconds")
    args.redis_cpu = None if args.redis_cpu < 0 else args.redis_cpu
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True, cwd=ROOT,
                            check=False).stdout.strip()
    started, load = harness.now(), os.getloadavg()
    with harness.interrupted():
        res = run(args)
    end = os.getloadavg()
    verdicts, body = report(res)
    version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()[2]
    facts = [
        f"**date:** {started}, aiogw at {commit}; {res['seconds'] / 60:.1f} min; {onoff.count(args.rounds, 'round')} "
        f"of {args.duration:g} s, two processes a side taken in turn (3: one, switched by reloads), the sides "
        f"interleaved A-B then B-A; load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} at the start, "
        f"{end[0]:.2f} / {end[1]:.2f} / {end[2]:.2f} at the end (2 CPUs; other engineers' jobs share the machine)",
        "**gateways:** bench.limits's (audit, guards, metrics and the exchange log off; `[limits]` far above the "
        f"load for every user: each request admitted, counted and charged), 1 KB bodies; Redis {version.strip('v=')} "
        "(`--save \"\" --appendonly no`, a database per gateway) over TCP loopback, "
        f"{'free on both cores' if args.redis_cpu is None else f'on CPU {args.redis_cpu}'} for 2 and 3, free "
        f"for 1 and 4; {wrk.version()} and the fake upstream (`--lean`) on CPU {LOAD_CPU}",
        f"**other jobs:** {onoff.count(res['retried'], 'run')} measured again because another job kept the machine "
        f"over {procs.DISTURBED:.0f} % of a core busy; {res['waited']:.0f} s spent waiting for quiet",
    ]
    body = ["### Verdict", "", *(f"- {v}" for v in verdicts), "", *body]
    text = harness.section(f"Workers and limits in Redis (`{harness.command('bench.scale', argv)}`)", facts, body)
    harness.write("bench.scale", text, not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
