"""`aiogw audit list`, a conversation and a day's prune on 10 M records in PostgreSQL.

    python -m bench.postgres_queries [--records 10000000] [--days 30] [--workers 2] [--no-write]

Issue 18, item 6. A throwaway PostgreSQL server (bench.pgcluster) gets the schema from
`aiogw migrate`'s code, then `--records` generated exchanges over `--days` whole UTC days
(as bench.audit_queries does for SQLite: a few hundred users with Zipf-like activity,
working hours and quiet weekends, three providers and their models, realistic outcomes,
rare guard findings; agent sessions of up to ~300 turns in three hours), each with its payload
row, and content blobs (one for every five records) last seen across the days.

The load (bench.pg_audit_data): a day a table, filled by COPY, indexed, then attached as
its partition; during the load only, the server runs with wal_level=minimal
(`pgcluster.BULK`). Then VACUUM (ANALYZE), what autovacuum would have done to days written
over a month, and the server is restarted with PostgreSQL's defaults (fsync on) for
everything timed.

Timed through the store (`PostgresStore`, as the CLI calls it): `list_rows` with each
`audit list` filter and the CLI's limit (50, plus one to tell whether more match), on a
fresh connection (the first call, as each command is a new process) and again warm;
`conversations_of` then `conversation` (`aiogw audit conversation`); and `prune` of the
oldest day. Each slow query's plan is read with EXPLAIN (ANALYZE, BUFFERS).

Writes the `bench.postgres_queries` section of bench/RESULTS.md (not with --no-write).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import time

import asyncpg
import orjson

from aiogw.audit import ids
from aiogw.store import parts as store_parts
from aiogw.store.base import Filters
from aiogw.store.postgres import PostgresStore, audit_read, partitions
from aiogw.store.postgres import prune as prune_mod
from bench import harness
from bench.pg_audit_data import DATABASE, DAY, World, generate
from bench.pgcluster import BULK, DURABLE, BenchPg
from bench.targets import ROOT

LIST_TARGET_MS, CONVERSATION_TARGET_MS, PRUNE_TARGET_S = 100.0, 200.0, 1.0
CLI_LIMIT = 50

# --------------------------------------------------------------------------------------
# The timings
# --------------------------------------------------------------------------------------


async def _sizes(conn: asyncpg.Connection) -> dict[str, int]:
    out = {}
    for table in partitions.TABLES:
        out[table] = await conn.fetchval(
            f"SELECT sum(pg_total_relation_size(relid))::bigint FROM pg_partition_tree('{table}')")
        out[table + " indexes"] = await conn.fetchval(
            f"SELECT sum(pg_indexes_size(relid))::bigint FROM pg_partition_tree('{table}')")
    out["blobs"] = await conn.fetchval("SELECT pg_total_relation_size('blobs')")
    out["database"] = await conn.fetchval("SELECT pg_database_size(current_database())")
    return out


async def _picks(conn: asyncpg.Connection, day: int) -> dict[str, object]:
    """Filter values as an operator would type them, read from one day (the newest weekday)."""
    part = partitions.name("exchanges", day)
    users = [r[0] for r in await conn.fetch(f'SELECT "user", count(*) c FROM {part} GROUP BY 1 ORDER BY c DESC')]
    sessions = await conn.fetch(f'SELECT conversation, "user", count(*) c FROM {part} GROUP BY 1, 2 ORDER BY c DESC')
    typical = min(sessions, key=lambda r: abs(r["c"] - 200))
    biggest = sessions[0]
    rare_user = await conn.fetchval('SELECT "user" FROM exchanges GROUP BY 1 ORDER BY count(*) LIMIT 1')
    return {"user": users[20], "rare_user": rare_user, "typical": (typical["conversation"], typical["user"],
                                                                   typical["c"]),
            "biggest": (biggest["conversation"], biggest["user"], biggest["c"]), "sessions": len(sessions)}


def cases(p: dict, end: float) -> list[tuple[str, str, Filters]]:
    """(label, the `aiogw audit list` flags, filters)."""
    F = Filters
    user, rare, conv = p["user"], p["rare_user"], p["typical"][0]
    return [
        ("no filter", "", F()),
        ("user (21st busiest)", f"--user {user}", F(user=user)),
        ("user (the least active)", f"--user {rare}", F(user=rare)),
        ("user, none such", "--user nobody", F(user="nobody")),
        ("route (10%)", "--route google", F(route="google")),
        ("model exact (5%)", "--model claude-opus-4-1-20250805", F(model="claude-opus-4-1-20250805")),
        ("model exact, none such", "--model gpt-4o", F(model="gpt-4o")),
        ("model glob (65%)", "--model 'claude-*'", F(model="claude-*")),
        ("model glob (10%)", "--model 'gemini-*'", F(model="gemini-*")),
        ("model glob (2.5%)", "--model 'text-embedding-*'", F(model="text-embedding-*")),
        ("model glob, matching nothing", "--model 'gpt-4o*'", F(model="gpt-4o*")),
        ("model glob, no prefix, matching nothing", "--model '*-preview'", F(model="*-preview")),
        ("route and model, jointly empty", "--route anthropic --model gpt-5", F(route="anthropic", model="gpt-5")),
        ("status 429", "--status 429", F(status=429)),
        ("status 401 (rare)", "--status 401", F(status=401)),
        ("outcome upstream_error", "--outcome upstream_error", F(outcome="upstream_error")),
        ("outcome refused (rare)", "--outcome refused", F(outcome="refused")),
        ("findings", "--findings", F(findings=True)),
        ("conversation", f"--conversation {conv}", F(conversation=conv)),
        ("since 1 day", "--since 1d", F(since=end - DAY)),
        ("since 3 days until 2 days", "--since 3d --until 2d", F(since=end - 3 * DAY, until=end - 2 * DAY)),
        ("user and since 7 days", f"--user {user} --since 7d", F(user=user, since=end - 7 * DAY)),
        ("model glob and status 429", "--model 'claude-*' --status 429", F(model="claude-*", status=429)),
        ("outcome refused, since 7 days", "--outcome refused --since 7d", F(outcome="refused", since=end - 7 * DAY)),
    ]


def _plan_summary(plan: dict) -> dict[str, object]:
    """The nodes of an EXPLAIN (ANALYZE, FORMAT JSON) plan, in brief: which indexes
    (partition prefix dropped), how many partitions, rows read and filtered out."""
    kinds: dict[str, int] = {}
    removed = read = 0

    def walk(node: dict) -> None:
        nonlocal removed, read
        kind = node["Node Type"]
        if "Index Name" in node:
            index = node["Index Name"]
            index = "_".join(index.split("_")[2:]) if index.split("_")[1].isdigit() else index
            kind = f"{kind}{' Backward' if node.get('Scan Direction') == 'Backward' else ''} on *_{index}"
        if kind.endswith(("Scan", "Append", "Sort")) or " on " in kind:
            kinds[kind] = kinds.get(kind, 0) + 1
        removed += node.get("Rows Removed by Filter", 0) * node.get("Actual Loops", 1)
        if node["Node Type"] in ("Index Scan", "Seq Scan", "Bitmap Heap Scan", "Index Only Scan"):
            read += node.get("Actual Rows", 0) * node.get("Actual Loops", 1)
        for child in node.get("Plans", []):
            walk(child)

    walk(plan["Plan"])
    nodes = ", ".join(f"{k} ×{n}" if n > 1 else k for k, n in kinds.items())
    buffers = plan["Plan"].get("Shared Hit Blocks", 0) + plan["Plan"].get("Shared Read Blocks", 0)
    return {"nodes": nodes, "removed": removed, "read": read, "buffers": buffers,
            "ms": plan.get("Execution Time", float("nan")), "planning_ms": plan.get("Planning Time", float("nan"))}


async def _explain(url: str, f: Filters) -> dict[str, object]:
    arg = audit_read.Args()
    clauses = audit_read.where(f, arg)
    sql = (f"SELECT {audit_read._LIST} FROM exchanges{audit_read._sql_where(clauses)} ORDER BY id DESC "
           f"LIMIT {arg(CLI_LIMIT + 1)}")
    conn = await asyncpg.connect(url)
    try:
        raw = await conn.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}", *arg.values)
    finally:
        await conn.close()
    return _plan_summary(orjson.loads(raw)[0])


async def _store(url: str, password: str) -> tuple[PostgresStore, float]:
    store = PostgresStore(url, password=password)
    t = time.perf_counter()
    await store.open()
    return store, time.perf_counter() - t


async def time_lists(url: str, password: str, plan_url: str, p: dict, end: float,
                     repeats: int = 5) -> list[dict]:
    out = []
    for label, flags, f in cases(p, end):
        store, opened = await _store(url, password)  # a fresh connection, as each command opens
        times, rows = [], 0
        try:
            for _ in range(repeats):
                t = time.perf_counter()
                rows = len(await store.list_rows(f, CLI_LIMIT + 1))
                times.append(time.perf_counter() - t)
        finally:
            await store.close()
        plan = await _explain(plan_url, f)
        out.append({"label": label, "flags": flags, "rows": min(rows, CLI_LIMIT), "more": rows > CLI_LIMIT,
                    "first": times[0], "warm": statistics.median(times[1:]), "open": opened, "plan": plan})
    return out


async def time_conversations(url: str, password: str, p: dict, repeats: int = 3) -> list[dict]:
    out = []
    for label, (conv, user, count) in (("the session nearest 200 turns", p["typical"]),
                                       ("the busiest session", p["biggest"])):
        times, n = [], 0
        for _ in range(repeats):
            store, _ = await _store(url, password)
            try:
                t = time.perf_counter()
                found = await store.conversations_of(conv)  # what `aiogw audit conversation ID` runs
                for c, u in found:
                    n = len(await store.conversation(c, u))
                times.append(time.perf_counter() - t)
            finally:
                await store.close()
        out.append({"label": label, "id": conv, "user": user, "rows": n, "expected": count, "first": times[0],
                    "warm": statistics.median(times[1:])})
    return out


async def time_prune(url: str, password: str, first_day: int) -> dict:
    """`prune` of the oldest day, timed whole (the target); then the next day the same
    three steps `prune.prune` takes, timed apart: the day's partitions dropped, the edge
    trimmed, the unused content collected."""
    store, _ = await _store(url, password)
    try:
        before = (first_day + 1) * DAY
        expected = await store.prunable(before)
        t = time.perf_counter()
        gone = await store.prune(before)
        seconds = time.perf_counter() - t
        after = (first_day + 2) * DAY
        bound, cutoff = ids.bound(after), store_parts.blob_cutoff(after)
        steps = {}
        async with store._pool_().acquire() as conn:
            t = time.perf_counter()
            steps["drop"] = await partitions.drop_before(conn, bound)
            steps["drop_s"] = time.perf_counter() - t
            t = time.perf_counter()
            steps["trim"] = await prune_mod._trim(conn, bound, prune_mod.BATCH)
            steps["trim_s"] = time.perf_counter() - t
            t = time.perf_counter()
            steps["collect"] = await prune_mod._collect(conn, cutoff, prune_mod.BATCH)
            steps["collect_s"] = time.perf_counter() - t
    finally:
        await store.close()
    return {"expected": expected, "gone": gone, "seconds": seconds, **steps}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.postgres_queries", description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=10_000_000)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--workers", type=int, default=2, help="processes generating and loading days")
    p.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md as it is")
    args = p.parse_args(argv)
    if args.records < args.days or args.days < 2 or args.workers < 1:
        p.error("--days at least 2, --records at least one a day, --workers at least 1")
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True, cwd=ROOT,
                            check=False).stdout.strip()
    started = harness.now()
    load = os.getloadavg()
    t_all = time.perf_counter()
    with harness.interrupted(), BenchPg(settings=BULK) as pg:
        pg.create_database(DATABASE)
        url = pg.database_url(DATABASE)
        plain = f"postgresql://aiogw@127.0.0.1:{pg.port}/{DATABASE}"
        store = PostgresStore(plain, password=pg.password)

        async def migrate() -> None:
            await store.connect()
            try:
                await store.migrate()
            finally:
                await store.close()

        asyncio.run(migrate())
        gen = generate(pg, url, args.records, args.days, args.workers, args.records // 5, print)
        pg.restart(DURABLE)
        settings = pg.settings()
        end = gen["today"] * DAY

        async def measure() -> dict:
            conn = await asyncpg.connect(url)
            try:
                sizes = await _sizes(conn)
                weekday = max(d for d in range(gen["first_day"], gen["today"]) if World.day_weight(d) == 1.0)
                picks = await _picks(conn, weekday)
                total = await conn.fetchval("SELECT count(*) FROM exchanges")
            finally:
                await conn.close()
            print(f"{total:,} records; picks {picks}", flush=True)
            lists = await time_lists(plain, pg.password, url, picks, end)
            for r in lists:
                print(f"{r['label']:>32}: first {r['first'] * 1000:7.1f} ms, warm {r['warm'] * 1000:7.1f} ms, "
                      f"{r['rows']} rows; {r['plan']['nodes']}", flush=True)
            convs = await time_conversations(plain, pg.password, picks)
            print(convs, flush=True)
            prune = await time_prune(plain, pg.password, gen["first_day"])
            print(prune, flush=True)
            return {"sizes": sizes, "picks": picks, "total": total, "lists": lists, "convs": convs, "prune": prune}

        got = asyncio.run(measure())
    took = time.perf_counter() - t_all
    text = report(args, gen, got, settings, started, commit, took, load)
    harness.write("bench.postgres_queries", text, not args.no_write)
    return 0


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}"


def report(args: argparse.Namespace, gen: dict, got: dict, s: dict, started: str, commit: str, took: float,
           load: tuple[float, float, float]) -> str:
    sizes, lists, convs, prune = got["sizes"], got["lists"], got["convs"], got["prune"]
    gib = 2**30
    facts = [
        f"**date:** {started}, aiogw at {commit}; {took / 60:.1f} min in all; load average at the start "
        f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (2 CPUs)",
        f"**data:** {got['total']:,} exchanges (each with its payload row) over {args.days} whole UTC days "
        f"(weekends at 0.3 of a weekday), {args.records // 5:,} content blobs; {len(gen['world'].users)} users, "
        f"Zipf-like; {got['picks']['sessions']:,} sessions on the newest day, the busiest "
        f"{got['picks']['biggest'][2]} turns",
        f"**load:** {gen['load_s'] / 60:.1f} min with {args.workers} worker processes (their generating "
        f"{gen['generating_s']:.0f} s, COPY {gen['copying_s']:.0f} s, index builds {gen['indexing_s']:.0f} s, summed "
        f"over the workers), attach {gen['attach_s']:.1f} s, VACUUM (ANALYZE) {gen['vacuum_s']:.0f} s; the server "
        "with wal_level=minimal for the load only",
        f"**sizes:** database {sizes['database'] / gib:.2f} GiB: exchanges {sizes['exchanges'] / gib:.2f} GiB (of it "
        f"indexes {sizes['exchanges indexes'] / gib:.2f}), payloads {sizes['payloads'] / gib:.2f} GiB, blobs "
        f"{sizes['blobs'] / gib:.2f} GiB; {sizes['exchanges'] / got['total']:,.0f} bytes an exchange row with its "
        "indexes",
        f"**server while timed:** PostgreSQL {s['server_version']}, restarted after the load (shared buffers cold, "
        f"the OS page cache as the load left it, 24 GB of RAM), fsync={s['fsync']}, synchronous_commit="
        f"{s['synchronous_commit']}, full_page_writes={s['full_page_writes']}, wal_level={s['wal_level']}, "
        f"shared_buffers={s['shared_buffers']}, work_mem={s['work_mem']}, random_page_cost={s['random_page_cost']}, "
        f"jit={s['jit']} (PostgreSQL's defaults); not pinned; queries over TCP loopback as the role `aiogw`",
        "**timed:** through `PostgresStore`, each case on a fresh connection (as each `aiogw audit list` opens): "
        f"`list_rows(filters, {CLI_LIMIT + 1})` (the CLI's limit, plus one to tell whether more match), the first "
        "call and the median of four more; the plan from EXPLAIN (ANALYZE, BUFFERS) of the same query after",
    ]
    worst = max(lists, key=lambda r: r["first"])
    verdicts = [
        f"**{'PASS' if worst['first'] * 1000 < LIST_TARGET_MS else 'MISS'}** `audit list`, each filter: slowest "
        f"first call {_ms(worst['first'])} ms ({worst['label']}; target < {LIST_TARGET_MS:g} ms)",
    ]
    slow_conv = max(convs, key=lambda r: r["first"])
    verdicts.append(f"**{'PASS' if slow_conv['first'] * 1000 < CONVERSATION_TARGET_MS else 'MISS'}** a conversation: "
                    f"slowest {_ms(slow_conv['first'])} ms ({slow_conv['label']}, {slow_conv['rows']} exchanges; "
                    f"target < {CONVERSATION_TARGET_MS:g} ms)")
    exchanges, blobs = prune["gone"]
    verdicts.append(f"**{'PASS' if prune['seconds'] < PRUNE_TARGET_S else 'MISS'}** a day pruned: `prune` of the "
                    f"oldest day {prune['seconds']:.2f} s ({exchanges:,} exchanges, {blobs:,} unused blobs collected; "
                    f"target < {PRUNE_TARGET_S:g} s). The next day's, step by step: its two partitions dropped "
                    f"{_ms(prune['drop_s'])} ms ({prune['drop'][0]:,} exchanges), the edge trimmed "
                    f"{_ms(prune['trim_s'])} ms ({prune['trim']:,}), {prune['collect']:,} unused blobs collected "
                    f"{_ms(prune['collect_s'])} ms")
    rows = [[r["label"], f"`{r['flags']}`" if r["flags"] else "", f"{r['rows']}{'+' if r['more'] else ''}",
             _ms(r["first"]), _ms(r["warm"]), f"{r['plan']['planning_ms']:.1f} / {r['plan']['ms']:.1f}",
             r["plan"]["nodes"], f"{r['plan']['read']:,} / {r['plan']['removed']:,}"] for r in lists]
    crow = [[r["label"], f"{r['rows']:,}", _ms(r["first"]), _ms(r["warm"])] for r in convs]
    body = [
        "### Verdict", "", *(f"- {v}" for v in verdicts), "",
        f"`audit list` (`list_rows`, limit {CLI_LIMIT} + 1; ms):", "",
        *harness.table(("filter", "flags", "rows", "first call", "warm (median of 4)",
                        "EXPLAIN ANALYZE planning / execution", "plan (index per partition)",
                        "rows read / filtered out"), rows), "",
        "`aiogw audit conversation ID` (`conversations_of` then `conversation`, a fresh connection each time; ms):", "",
        *harness.table(("conversation", "exchanges", "first", "median of 2 more"), crow), "",
    ]
    return harness.section(f"Audit queries on PostgreSQL (`{harness.command('bench.postgres_queries', argv=None)}`)",
                           facts, body)


if __name__ == "__main__":
    raise SystemExit(main())
