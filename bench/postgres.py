"""The gateway with its state on SQLite against the same gateway on PostgreSQL, in one run.

    python -m bench.postgres [--rounds 8] [--duration 2] [--pairs 2] [--db-cpu 0] [--no-write]

Issue 18, item 6. Both sides run everything on (bench.full's `aiogw`: audit, guards,
metrics, the exchange log, and limits on the bench user), under bench.gateway's loop-lag
probe. *sqlite* is `--pairs` gateways each with its own state file (WAL, synchronous
NORMAL, as shipped); *postgres* is `--pairs` gateways each with its own database on one
throwaway PostgreSQL server over loopback (bench.pgcluster: fsync, synchronous_commit
and full_page_writes on), made by `aiogw migrate`'s code. The sides are interleaved round
by round, sqlite-postgres then postgres-sqlite (bench.harness, `alternate`).

The server is pinned to the gateway's core (`--db-cpu`, CPU 0 by default): SQLite's
work runs in a thread of the gateway on that core, so PostgreSQL's does too, and the
throughput ratio is what the same core gives with either store. Its CPU is read around
every run and said per answer apart from the gateway's (it is not another job's load).

Workloads: 1 KB and 200 KB bodies under wrk (32 connections, each request a new turn of
its conversation: post.lua's marker), and the same paced (wrk pausing before each
request: bench.run's) for the loop lag. Around every run the audit's batch histogram
(`aiogw_audit_batch_write_seconds` on /metrics) is read; the batch write time is taken
from the differences. After the runs the gateways are stopped (their writers drained)
and each side's storage per record is read: the SQLite file against the PostgreSQL
audit tables (`pg_total_relation_size` of every partition of exchanges and payloads,
and blobs).

Writes the `bench.postgres` section of bench/RESULTS.md (not with --no-write).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sqlite3
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import asyncpg

from bench import harness, loads, onoff, procs, wrk
from bench.bodies import messages_body
from bench.harness import Side, Suite, Workload, fmt
from bench.pgcluster import BenchPg
from bench.targets import LOAD_CPU, PROXY_CPU, ROOT, USER_LIMITS, Gateway, Target, start_fake, start_gateway

RATE_TARGET = 0.90  # PostgreSQL ≥ 90% of SQLite's throughput
LAG_TARGET_MS = 5.0  # loop lag p99 under paced load
CONNECTIONS = 32
SIZES = {"small (1 KB)": 1_000, "large (200 KB)": 200_000}
# bench.run's paced loads: (connections, pause ms before each request).
PACED = {"small (1 KB)": (8, 20), "large (200 KB)": (4, 25)}
PACED_SUFFIX = " paced"
PASSWORD_ENV = "BENCH_PG_PASSWORD"
HISTOGRAM = "aiogw_audit_batch_write_seconds"
SIDES = ("sqlite", "postgres")


def everything_on(state: str = "") -> Gateway:
    return Gateway(user=USER_LIMITS, lag=True, state=state)


# --------------------------------------------------------------------------------------
# Around each run: the database server's CPU, and the audit batch histogram.
# --------------------------------------------------------------------------------------


def scrape(target: Target) -> dict[str, float]:
    """The batch histogram as /metrics has it now: cumulative counts by bound, and the sum."""
    with urllib.request.urlopen(f"{target.base}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(HISTOGRAM + "_bucket"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            out[bound] = float(line.rsplit(" ", 1)[1])
        elif line.startswith(HISTOGRAM + "_sum"):
            out["sum"] = float(line.rsplit(" ", 1)[1])
    return out


class Batches:
    """Each (workload, side)'s batch histogram over its measured runs."""

    def __init__(self) -> None:
        self.got: dict[tuple[str, str], dict[str, float]] = {}
        self.counting = False  # off during warm-ups

    def add(self, workload: str, side: str, before: dict[str, float], after: dict[str, float]) -> None:
        if not self.counting:
            return
        into = self.got.setdefault((workload, side), {})
        for k, v in after.items():
            into[k] = into.get(k, 0.0) + v - before.get(k, 0.0)


def quantile(h: dict[str, float], q: float) -> tuple[float, str]:
    """(an estimate in seconds, the bucket it is in) from cumulative counts, as
    Prometheus's histogram_quantile: linear within the bucket."""
    bounds = sorted((float(k), v) for k, v in h.items() if k not in ("sum", "+Inf"))
    total = h.get("+Inf", 0.0)
    if not total:
        return float("nan"), "no batches"
    rank, low, below = q * total, 0.0, 0.0
    for bound, count in bounds:
        if count >= rank:
            share = (rank - below) / (count - below) if count > below else 1.0
            return low + (bound - low) * share, f"{low * 1000:g}–{bound * 1000:g} ms"
        low, below = bound, count
    return float("inf"), f"over {low * 1000:g} ms"


def http(target: Target, body: Path, duration: float, connections: int, script: Path, db: BenchPg | None,
         batches: Batches, workload: str) -> dict[str, float]:
    """One wrk run as loads.http does it, and the database server's CPU: over the load
    (taken out of CPU 0's other load, `bg0`: it is the bench's) and per answer,
    over the load and the writer's drain."""
    window: dict[str, float] = {}
    side = target.name.split("-")[0]

    def load() -> tuple[dict[str, float], int]:
        c0, t0 = (db.cpu_seconds() if db else 0.0), time.monotonic()
        res = wrk.run(target.url, body, target.key, connections=connections, duration=duration, cpu=LOAD_CPU,
                      script=script)
        window["db"], window["s"] = (db.cpu_seconds() - c0 if db else 0.0), time.monotonic() - t0
        return {"rps": res.rps, "p50": res.p50_ms, "p99": res.p99_ms, "errors": res.errors, "answers": res.requests,
                **{f"status_{code}": n for code, n in res.statuses.items()}}, res.requests

    h0 = scrape(target)
    c0 = db.cpu_seconds() if db else 0.0
    m = loads.measured(target, load)
    m["db_us"] = (db.cpu_seconds() - c0) * 1e6 / m["answers"] if db and m["answers"] else float("nan")
    if db is not None and db.cpu == PROXY_CPU:
        m["bg0"] -= 100 * window["db"] / window["s"]
    batches.add(workload, side, h0, scrape(target))
    return m


def workloads(tmp: Path, duration: float, db: BenchPg, batches: Batches) -> tuple[Workload, ...]:
    out = []
    for name, size in SIZES.items():
        body = tmp / f"body-{size}-marked.json"
        body.write_bytes(messages_body(size, marked=True))
        conns, pause = PACED[name]
        paced = wrk.paced_script(pause, tmp)
        for label, connections, script, warmup in ((name, CONNECTIONS, wrk.SCRIPT, 1.0),
                                                    (name + PACED_SUFFIX, conns, paced, 0.0)):
            def measure(t: Target, d: float, body: Path = body, c: int = connections, s: Path = script,
                        label: str = label) -> dict[str, float]:
                return http(t, body, d, c, s, db if t.name.startswith("postgres") else None, batches, label)

            out.append(Workload(label, measure, duration, warmup))
    return tuple(out)


# --------------------------------------------------------------------------------------
# The gateways, and what they stored.
# --------------------------------------------------------------------------------------


async def _migrate(url: str, password: str) -> list[str]:
    from aiogw.store.postgres import PostgresStore

    store = PostgresStore(url, password=password)
    await store.connect()
    try:
        return await store.migrate()
    finally:
        await store.close()


def start_side(lab: harness.Lab, side: str, pairs: int, fake_pid: int, fake_port: int, db: BenchPg) -> list[Target]:
    out = []
    for i in range(pairs):
        name = f"{side}-{i}"
        state = ""
        if side == "postgres":
            database = f"gw_{i}"
            db.create_database(database)
            url = f"postgresql://aiogw@127.0.0.1:{db.port}/{database}"
            asyncio.run(_migrate(url, db.password))  # what `aiogw migrate --config` runs
            state = f'url = "{url}"\npassword = {{ env = "{PASSWORD_ENV}" }}\n'
        out.append(start_gateway(lab.servers, lab.tmp, name, fake_port, everything_on(state), fake_pid))
    return out


def stop(lab: harness.Lab, targets: list[Target]) -> None:
    """SIGTERM the gateways (by the PIDs the bench started), wait for their drain."""
    pids = {t.pid for t in targets}
    for _, proc in lab.servers.started:
        if proc.pid in pids and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for _, proc in lab.servers.started:
        if proc.pid in pids:
            proc.wait(timeout=60)


def sqlite_storage(path: Path) -> dict[str, float]:
    """Records and bytes of a stopped gateway's state file (with its -wal and -shm), and
    the audit's share by table (dbstat: each table with its indexes)."""
    conn = sqlite3.connect(path)
    try:
        records = conn.execute("SELECT count(*) FROM exchanges").fetchone()[0]
        pages = dict(conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall())
        indexes = dict(conn.execute("SELECT name, tbl_name FROM sqlite_schema WHERE type = 'index'").fetchall())
    finally:
        conn.close()
    by_table: dict[str, float] = {}
    for name, size in pages.items():
        table = indexes.get(name, name)
        by_table[table] = by_table.get(table, 0) + size
    total = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    return {"records": records, "bytes": total, "exchanges": by_table.get("exchanges", 0),
            "payloads": by_table.get("payloads", 0), "blobs": by_table.get("blobs", 0)}


async def pg_storage(url: str) -> dict[str, float]:
    """Records and bytes of a database's audit tables: every partition of exchanges and
    payloads with its indexes and TOAST (pg_total_relation_size), and blobs."""
    conn = await asyncpg.connect(url)
    try:
        records = await conn.fetchval("SELECT count(*) FROM exchanges")
        sizes = {}
        for table in ("exchanges", "payloads"):
            sizes[table] = await conn.fetchval(
                f"SELECT coalesce(sum(pg_total_relation_size(relid)), 0)::bigint FROM pg_partition_tree('{table}')")
        sizes["blobs"] = await conn.fetchval("SELECT pg_total_relation_size('blobs')")
        database = await conn.fetchval("SELECT pg_database_size(current_database())")
    finally:
        await conn.close()
    return {"records": records, "bytes": sum(sizes.values()), "database": database, **sizes}


# --------------------------------------------------------------------------------------
# The run and its report.
# --------------------------------------------------------------------------------------


def run(args: argparse.Namespace, say: Callable[[str], None] = print) -> dict:
    batches = Batches()
    with harness.Lab("aiogw-bench-pg-") as lab, BenchPg(cpu=args.db_cpu) as db:
        os.environ[PASSWORD_ENV] = db.password  # the gateways' and `aiogw keys create`'s
        settings = db.settings()
        fake_pid, fake_port = start_fake(lab.servers)
        sides = {side: start_side(lab, side, args.pairs, fake_pid, fake_port, db) for side in SIDES}
        say(f"servers up; logs in {lab.tmp}; PostgreSQL {settings['server_version']} on port {db.port}")
        work = workloads(lab.tmp, args.duration, db, batches)
        suite = Suite(tuple(Side(s, tuple(ts)) for s, ts in sides.items()), work, args.rounds, alternate=True)
        t0 = time.monotonic()
        got, steady = _run_counting(suite, batches, say)
        took = time.monotonic() - t0
        rss = {side: [procs.peak_rss_mb(t.pid) for t in ts] for side, ts in sides.items()}
        all_targets = [t for ts in sides.values() for t in ts]
        stop(lab, all_targets)
        storage = {
            "sqlite": [sqlite_storage(lab.tmp / t.name / "state.db") for t in sides["sqlite"]],
            "postgres": [asyncio.run(pg_storage(db.database_url(f"gw_{i}"))) for i in range(args.pairs)],
        }
    return {"got": got, "steady": steady, "batches": batches.got, "storage": storage, "settings": settings,
            "rss": rss, "seconds": took}


def _run_counting(suite: Suite, batches: Batches, say: Callable[[str], None]) -> tuple[harness.Results, procs.Steady]:
    """harness.run with the batch histogram counted from round 1 on: the warm-ups first,
    as a suite of their own (no rounds), then the rounds without warm-ups."""
    warm = Suite(suite.sides, suite.workloads, 0)
    harness.run(warm, say)
    batches.counting = True
    cold = tuple(Workload(w.name, w.measure, w.duration) for w in suite.workloads)
    return harness.run(Suite(suite.sides, cold, suite.rounds, alternate=True), say)


def _per_round(a: list[dict], b: list[dict], key: str) -> tuple[float, str]:
    r = harness.ratios(a, b, key)
    return harness.median_of(r), ", ".join(f"{x:.2f}" for x in r)


def report(res: dict, args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """(verdict lines, body lines)."""
    got, verdicts, body = res["got"], [], []
    rows = []
    for name in SIZES:
        sq, pg = got[(name, "sqlite")], got[(name, "postgres")]
        ratio, rounds = _per_round(pg, sq, "rps")
        sustained, _ = _per_round(pg, sq, "sustained")
        db_us = harness.median(pg, "db_us")
        rows.append([name, fmt(harness.median(sq, "rps"), 0), fmt(harness.median(pg, "rps"), 0),
                     f"{ratio:.0%} ({rounds})", f"{sustained:.0%}",
                     f"{harness.median(sq, 'cpu_us'):,.0f} → {harness.median(pg, 'cpu_us'):,.0f} + {db_us:,.0f}",
                     f"{harness.median(sq, 'drain_s'):.2f} / {harness.median(pg, 'drain_s'):.2f}",
                     f"{harness.median(sq, 'errors'):.0f} / {harness.median(pg, 'errors'):.0f}"])
        worst = min(ratio, sustained)
        verdicts.append(f"**{'PASS' if worst >= RATE_TARGET else 'MISS'}** throughput, {name}: PostgreSQL "
                        f"{ratio:.0%} of SQLite's answers/s (over the run and the writer's drain: {sustained:.0%}; "
                        f"target ≥ {RATE_TARGET:.0%}; per round {rounds}).")
    body += ["Throughput, everything on, 32 connections (medians of the rounds; *CPU* is µs per answer: the "
             "gateway's process, SQLite's thread included, and for PostgreSQL + the server's processes):", "",
             *harness.table(("workload", "SQLite /s", "PostgreSQL /s", "ratio (per round)",
                             "ratio over run + drain", "CPU µs SQLite → PostgreSQL gateway + server",
                             "writer's drain s", "errors"), rows), ""]
    lag_rows = []
    for name in SIZES:
        for label in (name + PACED_SUFFIX, name):
            cells = [label]
            for side in SIDES:
                r = got[(label, side)]
                cells.append(f"{harness.median(r, 'lag_p99'):.2f} (worst {max(x['lag_p99'] for x in r):.2f}), "
                             f"{harness.median(r, 'rps'):,.0f}/s")
            lag_rows.append(cells)
        sq, pg = got[(name + PACED_SUFFIX, "sqlite")], got[(name + PACED_SUFFIX, "postgres")]
        lag = harness.median(pg, "lag_p99")
        verdicts.append(f"**{'PASS' if lag <= LAG_TARGET_MS else 'MISS'}** loop lag p99, {name} paced: PostgreSQL "
                        f"{lag:.2f} ms, SQLite {harness.median(sq, 'lag_p99'):.2f} ms (target ≤ {LAG_TARGET_MS:g} ms).")
    body += ["Event-loop lag p99, ms (median of the rounds, and the worst round), with the answers/s; *paced* is "
             "bench.run's (wrk pausing 20 ms on 8 connections at 1 KB, 25 ms on 4 at 200 KB), the others saturated "
             "(no target there):", "",
             *harness.table(("workload", "SQLite lag p99 ms, answers/s", "PostgreSQL lag p99 ms, answers/s"),
                            lag_rows), ""]
    batch_rows = []
    for label in [w for name in SIZES for w in (name, name + PACED_SUFFIX)]:
        cells = [label]
        for side in SIDES:
            h = res["batches"].get((label, side), {})
            n = h.get("+Inf", 0.0)
            p99, bucket = quantile(h, 0.99)
            mean = h.get("sum", 0.0) / n if n else float("nan")
            cells.append(f"{n:,.0f} batches, mean {mean * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms ({bucket})")
        batch_rows.append(cells)
    body += [f"Audit batch write time (`{HISTOGRAM}` read from /metrics around every measured run: from taking "
             "a batch to its commit; p99 estimated within its bucket, as Prometheus's histogram_quantile; the "
             "buckets are 1, 2.5, 5, 10, 25, 50, 100, 250 ms...):", "",
             *harness.table(("workload", "SQLite", "PostgreSQL"), batch_rows), ""]
    for name in SIZES:
        cells = []
        for side in SIDES:
            h = res["batches"].get((name, side), {})
            cells.append(quantile(h, 0.99)[0] * 1000)
        verdicts.append(f"**INFO** audit batch write time p99, {name} saturated: SQLite {cells[0]:.1f} ms, "
                        f"PostgreSQL {cells[1]:.1f} ms (estimated within the histogram's bucket).")
    st = res["storage"]
    srows = []
    per = {}
    for side in SIDES:
        records = sum(s["records"] for s in st[side])
        total = sum(s["bytes"] for s in st[side])
        parts = {k: sum(s[k] for s in st[side]) for k in ("exchanges", "payloads", "blobs")}
        per[side] = total / records if records else float("nan")
        srows.append([side if side == "postgres" else "sqlite", f"{records:,}", f"{total / 2**20:,.1f}",
                      f"{per[side]:,.0f}",
                      " / ".join(f"{parts[k] / records:,.0f}" if records else "n/a" for k in parts)])
    body += ["Storage after the run (the gateways stopped, their writers drained; both processes of a side "
             "together). SQLite: the state file with its -wal and -shm, by table from dbstat (each with its "
             "indexes); PostgreSQL: `pg_total_relation_size` of every partition of exchanges and payloads "
             "(indexes and TOAST included) and of blobs, without the WAL:", "",
             *harness.table(("side", "records", "MiB", "bytes a record", "of it exchanges / payloads / blobs"),
                            srows), ""]
    verdicts.append(f"**INFO** storage per record: SQLite {per['sqlite']:,.0f} bytes, PostgreSQL "
                    f"{per['postgres']:,.0f} bytes ({per['postgres'] / per['sqlite']:.2f}×).")
    body += [f"Peak RSS (MiB, each process): SQLite {', '.join(f'{x:.0f}' for x in res['rss']['sqlite'])}; "
             f"PostgreSQL {', '.join(f'{x:.0f}' for x in res['rss']['postgres'])}.", ""]
    return verdicts, body


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.postgres", description=__doc__.split("\n\n")[0])
    onoff.add_run_args(p, rounds=8, duration=2.0)
    p.add_argument("--pairs", type=int, default=2, help="gateways a side, taken in turn")
    p.add_argument("--db-cpu", type=int, default=PROXY_CPU,
                   help="the core PostgreSQL is pinned to (default: the gateway's); -1: not pinned")
    args = p.parse_args(argv)
    if args.rounds < 1 or args.pairs < 1 or not args.duration > 0:
        p.error("--rounds and --pairs must be at least 1, --duration above 0 seconds")
    if args.db_cpu < 0:
        args.db_cpu = None
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True, cwd=ROOT,
                            check=False).stdout.strip()
    started = harness.now()
    load = os.getloadavg()
    with harness.interrupted():
        res = run(args)
    verdicts, body = report(res, args)
    s = res["settings"]
    steady = res["steady"]
    facts = [
        f"**date:** {started}, aiogw at {commit}; {res['seconds'] / 60:.1f} min of runs; "
        f"{onoff.count(args.pairs, 'gateway', 'gateways')} a side taken in turn, {onoff.count(args.rounds, 'round')} "
        f"of {args.duration:g} s, sqlite-postgres then postgres-sqlite; load average at the start "
        f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (2 CPUs)",
        "**gateways:** everything on (audit, guards, metrics, exchange log, limits on the bench user: bench.full's "
        "`aiogw`), under bench.gateway's loop-lag probe, pinned to CPU 0; wrk and the fake upstream (`--lean`) on CPU 1",
        "**SQLite:** each gateway its own state file in a temporary folder on ext4 (virtio disk): "
        "journal_mode=WAL, synchronous=NORMAL (aiogw's PRAGMAS), SQLite in a thread of the gateway",
        f"**PostgreSQL:** {s.get('server_version')}, a throwaway cluster (bench.pgcluster) on the same disk, "
        f"pinned to CPU {args.db_cpu if args.db_cpu is not None else '(none)'}, each gateway its own database as "
        f"the least-privilege role `aiogw` over TCP loopback with a password; fsync={s.get('fsync')}, "
        f"synchronous_commit={s.get('synchronous_commit')}, full_page_writes={s.get('full_page_writes')}, "
        f"wal_level={s.get('wal_level')}, wal_sync_method={s.get('wal_sync_method')}, "
        f"shared_buffers={s.get('shared_buffers')}, max_wal_size={s.get('max_wal_size')} (all PostgreSQL's defaults)",
        f"**other jobs:** {onoff.count(steady.retried, 'run')} measured again because another job kept a core over "
        f"{procs.DISTURBED:.0f} % busy; {steady.waited:.0f} s spent waiting for quiet",
    ]
    body = ["### Verdict", "", *(f"- {v}" for v in verdicts), "", *body]
    text = harness.section(f"SQLite against PostgreSQL (`{harness.command('bench.postgres', argv)}`)", facts, body)
    harness.write("bench.postgres", text, not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
