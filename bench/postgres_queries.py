"""`aiogw audit list`, a conversation and a day's prune on 10 M records in PostgreSQL.

    python -m bench.postgres_queries [--records 10000000] [--days 30] [--workers 2] [--no-write]

Issue 18, item 6. A throwaway PostgreSQL server (bench.pgcluster) gets the schema from
`aiogw migrate`'s code, then `--records` generated exchanges over `--days` whole UTC days
(as bench.audit_queries does for SQLite: a few hundred users with Zipf-like activity,
working hours and quiet weekends, three providers and their models, realistic outcomes,
rare guard findings; agent sessions of up to ~300 turns in three hours), each with its payload
row, and content blobs (one for every five records) last seen across the days.

The load: each day is made as a table of its own, filled by COPY, given the parent's
indexes (read from the catalog, so any index the schema gains is there too), then
attached as that day's partition, which finds the indexes made and checks nothing (a
CHECK constraint proves the range; dropped after). During the load only, the server runs
with wal_level=minimal (`pgcluster.BULK`: a table filled in the transaction that made it
skips the WAL). Then VACUUM (ANALYZE), what autovacuum would have done to days written
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
import hashlib
import multiprocessing
import os
import random
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator

import asyncpg
import orjson

from aiogw.audit import ids
from aiogw.audit.record import COLUMNS, pack, squeeze
from aiogw.store import parts as store_parts
from aiogw.store.base import Filters
from aiogw.store.postgres import PostgresStore, audit_read, partitions
from aiogw.store.postgres import prune as prune_mod
from bench import audit_queries as sq
from bench import harness
from bench.pgcluster import BULK, DURABLE, BenchPg
from bench.targets import ROOT

DAY = 86_400
LIST_TARGET_MS, CONVERSATION_TARGET_MS, PRUNE_TARGET_S = 100.0, 200.0, 1.0
CLI_LIMIT = 50
CHUNK = 50_000  # rows generated and copied at a time: a worker holds ~50 MB of them
SESSION_S = 3 * 3600  # a session's stretch: one user's turns in it share a conversation id
SESSION_TURNS = 300  # turns of a session in the busiest stretch, about (agent sessions of 50-400 turns)
DATABASE = "audit"
HOURS = (0.15, 0.1, 0.1, 0.1, 0.15, 0.3, 0.6, 1.0, 1.6, 2.0, 2.0, 1.8, 1.4, 1.8, 2.0, 2.0, 1.8, 1.4, 1.0,
         0.8, 0.6, 0.5, 0.3, 0.2)
# The columns as this bench fills them; a change in aiogw.audit.record fails here, loudly.
EXPECTED = ("id", "started", "duration_ms", "ttfb_ms", "user", "key_id", "route", "dialect", "endpoint", "model",
            "stream", "status", "outcome", "reason", "input_tokens", "output_tokens", "cache_write_tokens",
            "cache_read_tokens", "reasoning_tokens", "findings", "request_id", "client", "user_agent",
            "conversation", "request_bytes", "response_bytes", "method", "path", "cost_usd", "priced")
assert COLUMNS == EXPECTED, "aiogw.audit.record.COLUMNS changed: bench.postgres_queries' day_rows must follow it"


# --------------------------------------------------------------------------------------
# The data
# --------------------------------------------------------------------------------------


class World:
    """Users, their keys and sessions' share, the route/model mix, the outcomes: the same in
    every worker (one seed)."""

    def __init__(self, records: int, days: int, first_day: int) -> None:
        rng = random.Random(3)
        self.users = sq._users(rng)  # (name, key ids, weight)
        total = sum(w for *_, w in self.users)
        day_w = [self.day_weight(first_day + d) for d in range(days)]
        per_weekday = records / sum(day_w)
        peak = max(HOURS) / sum(HOURS)
        # Sessions a user runs at once in their busiest stretch, so that none passes ~300 turns.
        self.slots = [max(1, round(w / total * per_weekday * peak * SESSION_S / 3600 / SESSION_TURNS))
                      for *_, w in self.users]
        self.user_cw = _cumulative(w for *_, w in self.users)
        self.combos = []  # (route, dialect, model, endpoint, streams)
        weights = []
        for route, dialect, rw, models in sq._ROUTES:
            mt = sum(m[1] for m in models)
            for model, mw, endpoint, streams in models:
                self.combos.append((route, dialect, model, endpoint, streams,
                                    sq._PATHS[endpoint].format(model=model)))
                weights.append(rw * mw / mt)
        self.combo_cw = _cumulative(weights)
        self.outcomes = sq._OUTCOMES
        self.outcome_cw = _cumulative(w for *_, w in sq._OUTCOMES)
        self.hour_cw = _cumulative(HOURS)
        self.day_w = day_w
        self.counts = _split(records, day_w)

    @staticmethod
    def day_weight(day: int) -> float:
        return 0.3 if time.gmtime(day * DAY).tm_wday >= 5 else 1.0


def _cumulative(weights: object) -> list[float]:
    out, total = [], 0.0
    for w in weights:  # type: ignore[attr-defined]
        total += w
        out.append(total)
    return out


def _split(n: int, weights: list[float]) -> list[int]:
    """n shared by weight, in whole numbers that add up to n."""
    total = sum(weights)
    counts = [int(n * w / total) for w in weights]
    for i in range(n - sum(counts)):
        counts[i % len(counts)] += 1
    return counts


def day_rows(world: World, day: int, n: int, seed: int) -> Iterator[tuple[list[tuple], list[tuple]]]:
    """A day's exchanges and payload rows, in id order, CHUNK at a time."""
    rng = random.Random(seed)
    rand, lognorm, choices = rng.random, rng.lognormvariate, rng.choices
    start = day * DAY
    hours = choices(range(24), cum_weights=world.hour_cw, k=n)
    times = sorted(start + h * 3600 + rand() * 3600 for h in hours)
    metas = {s: pack({"max_tokens": 32000, "stream": s}) for s in (True, False)}
    answer = squeeze(b'{"complete":true,"stop_reason":"end_turn","message":{"role":"assistant"}}')
    finding = orjson.dumps([{"id": "pii.email", "action": "log"}])
    conversations: dict[tuple, str] = {}
    users, slots = world.users, world.slots
    for at in range(0, n, CHUNK):
        m = min(CHUNK, n - at)
        who = choices(range(len(users)), cum_weights=world.user_cw, k=m)
        what = choices(world.combos, cum_weights=world.combo_cw, k=m)
        how = choices(world.outcomes, cum_weights=world.outcome_cw, k=m)
        rows, payloads = [], []
        for i in range(m):
            started = times[at + i]
            u = who[i]
            name, keys, _ = users[u]
            route, dialect, model, endpoint, streams, path = what[i]
            outcome, status, reason, _ = how[i]
            findings = 1 if reason == "guard" else (1 + int(rand() * 3) if rand() < 0.004 else 0)
            ok = status == 200
            inp = int(lognorm(10.3, 1.0)) if ok else 0
            out = int(lognorm(6.0, 1.1)) if ok else 0
            duration = lognorm(8.5, 1.0) if outcome != "refused" else 0.3 + rand() * 2.7
            key = (u, int(started // SESSION_S), int(rand() * slots[u]))
            conversation = conversations.get(key)
            if conversation is None:
                conversation = conversations[key] = "s-" + hashlib.blake2b(repr(key).encode(),
                                                                          digest_size=8).hexdigest()
            ident = ids.new_id(started)
            rows.append((
                ident, started, round(duration, 3), round(min(duration, lognorm(6.5, 0.7)), 3), name,
                keys[int(rand() * len(keys))], route, dialect, endpoint, model, int(streams), status, outcome, reason,
                inp, out, int(inp * rand() * 0.1), int(inp * rand() * 4), 0, findings,
                f"req_{rng.getrandbits(96):024x}", f"10.20.{int(rand() * 16)}.{2 + int(rand() * 253)}",
                sq._AGENTS[int(rand() * len(sq._AGENTS))], conversation, int(lognorm(11.5, 1.0)),
                int(lognorm(8, 1)), "POST", path, round((inp * 3.0 + out * 15.0) / 1e6, 8), 1,
            ))
            payloads.append((ident, metas[streams], rng.randbytes(16), rng.randbytes(16),
                             rng.randbytes(16 * (2 + int(rand() * 5))), None, answer, None,
                             finding if findings else None))
        yield rows, payloads


# --------------------------------------------------------------------------------------
# The load: a day a table, filled, indexed, then attached.
# --------------------------------------------------------------------------------------


async def _index_statements(conn: asyncpg.Connection, table: str, part: str) -> list[str]:
    """The parent's indexes as statements for a table that will become its partition."""
    out = []
    for name, definition in await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = $1",
            table):
        if name == f"{table}_pkey":
            out.append(f"ALTER TABLE {part} ADD PRIMARY KEY (id)")
        else:
            out.append(f"CREATE INDEX ON {part} USING {definition.split(' USING ', 1)[1]}")
    return out


async def _load_day(url: str, world: World, day: int, n: int, seed: int) -> dict[str, float]:
    conn = await asyncpg.connect(url)
    t0 = time.perf_counter()
    generating = copying = 0.0
    try:
        async with conn.transaction():
            parts = {table: partitions.name(table, day) for table in partitions.TABLES}
            low, high = partitions.bounds(day)
            for table, part in parts.items():
                await conn.execute(f"CREATE TABLE {part} (LIKE {table} INCLUDING DEFAULTS INCLUDING STORAGE)")
            rows_at = time.perf_counter()
            for rows, payloads in day_rows(world, day, n, seed):
                generating += time.perf_counter() - rows_at
                c = time.perf_counter()
                await conn.copy_records_to_table(parts["exchanges"], records=rows, columns=COLUMNS)
                await conn.copy_records_to_table(parts["payloads"], records=payloads)
                copying += time.perf_counter() - c
                rows_at = time.perf_counter()
            i = time.perf_counter()
            for table, part in parts.items():
                for statement in await _index_statements(conn, table, part):
                    await conn.execute(statement)
                await conn.execute(f"ALTER TABLE {part} ADD CONSTRAINT {part}_range CHECK "
                                   f"(id IS NOT NULL AND id >= '{low}' AND id < '{high}')")
            indexing = time.perf_counter() - i
    finally:
        await conn.close()
    return {"day": day, "rows": n, "seconds": time.perf_counter() - t0, "generating": generating,
            "copying": copying, "indexing": indexing}


async def _load_blobs(url: str, n: int, first: float, last: float, seed: int) -> dict[str, float]:
    """Content parts: compressed messages of 80-900 bytes, last seen across the days, in
    the order of their last use (as a running gateway leaves them: a part last used on a
    day was written that day, inserted or updated). Loaded with the table's indexes
    dropped and made again after (same names)."""
    rng = random.Random(seed)
    seen = sorted(first + rng.random() * (last - first) for _ in range(n))
    conn = await asyncpg.connect(url)
    t0 = time.perf_counter()
    try:
        async with conn.transaction():
            indexes = await conn.fetch("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'blobs'")
            await conn.execute("TRUNCATE blobs")  # in this transaction: the COPY skips the WAL
            await conn.execute("ALTER TABLE blobs DROP CONSTRAINT blobs_pkey")
            for name, _ in indexes:
                if name != "blobs_pkey":
                    await conn.execute(f"DROP INDEX {name}")
            for at in range(0, n, CHUNK):
                rows = []
                for i in range(at, min(at + CHUNK, n)):
                    size = 80 + int(rng.random() * 820)
                    rows.append((rng.randbytes(16), b"\x01" + rng.randbytes(size), size * 4, seen[i]))
                await conn.copy_records_to_table("blobs", records=rows, columns=("hash", "data", "size", "last_seen"))
            await conn.execute("ALTER TABLE blobs ADD PRIMARY KEY (hash)")
            for name, definition in indexes:
                if name != "blobs_pkey":
                    await conn.execute(definition)
    finally:
        await conn.close()
    return {"blobs": n, "seconds": time.perf_counter() - t0}


def _task(job: tuple) -> dict[str, float]:
    kind, *args = job
    if kind == "blobs":
        return asyncio.run(_load_blobs(*args))
    return asyncio.run(_load_day(*args))


async def _attach(url: str, days: list[int]) -> float:
    """Every loaded day attached as a partition, in order; its range check dropped."""
    conn = await asyncpg.connect(url)
    t0 = time.perf_counter()
    try:
        for day in days:
            low, high = partitions.bounds(day)
            for table in partitions.TABLES:
                part = partitions.name(table, day)
                await conn.execute(f"ALTER TABLE {table} ATTACH PARTITION {part} FOR VALUES FROM ('{low}') TO ('{high}')")
                await conn.execute(f"ALTER TABLE {part} DROP CONSTRAINT {part}_range")
    finally:
        await conn.close()
    return time.perf_counter() - t0


def generate(pg: BenchPg, url: str, records: int, days: int, workers: int, blobs: int,
             say: Callable[[str], None]) -> dict:
    today = int(time.time() // DAY)
    first_day = today - days  # whole days, the newest ending at today's midnight (UTC)
    world = World(records, days, first_day)
    jobs: list[tuple] = [("blobs", url, blobs, first_day * DAY, today * DAY, 11)]
    jobs += [("day", url, world, first_day + d, world.counts[d], 1000 + d) for d in range(days)]
    t0 = time.perf_counter()
    done = []
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        for r in pool.imap_unordered(_task, jobs):
            done.append(r)
            if "day" in r:
                say(f"day {time.strftime('%Y-%m-%d', time.gmtime(r['day'] * DAY))}: {r['rows']:,} rows in "
                    f"{r['seconds']:.1f} s (generating {r['generating']:.1f}, COPY {r['copying']:.1f}, indexes "
                    f"{r['indexing']:.1f}); {time.perf_counter() - t0:.0f} s so far")
            else:
                say(f"blobs: {r['blobs']:,} in {r['seconds']:.1f} s")
    attach = asyncio.run(_attach(url, [first_day + d for d in range(days)]))
    loaded = time.perf_counter() - t0
    say(f"loaded in {loaded:.0f} s (attach {attach:.1f} s); VACUUM (ANALYZE)...")
    t = time.perf_counter()
    pg.sql("VACUUM (ANALYZE)", database=DATABASE)
    vacuum = time.perf_counter() - t
    say(f"VACUUM (ANALYZE) {vacuum:.0f} s")
    day_stats = [r for r in done if "day" in r]
    return {"first_day": first_day, "today": today, "world": world, "load_s": loaded, "attach_s": attach,
            "vacuum_s": vacuum, "generating_s": sum(r["generating"] for r in day_stats),
            "copying_s": sum(r["copying"] for r in day_stats), "indexing_s": sum(r["indexing"] for r in day_stats)}


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


# A glob resolved to the model names it matches first (a skip scan over the (model, id)
# indexes: one probe a distinct model and partition), then `model = ANY(names)`: what
# audit_read.where could do for a glob no index serves. Timed beside the store's query.
RESOLVE = """WITH RECURSIVE m(model) AS (
    SELECT min(model) FROM exchanges
    UNION ALL
    SELECT (SELECT min(model) FROM exchanges WHERE model > m.model) FROM m WHERE m.model IS NOT NULL
) SELECT coalesce(array_agg(model), '{}') FROM m WHERE model ~ $1"""


async def time_resolved_glob(url: str, glob: str, repeats: int = 3) -> dict:
    times, names, rows = [], [], 0
    for _ in range(repeats):
        conn = await asyncpg.connect(url)
        try:
            t = time.perf_counter()
            names = await conn.fetchval(RESOLVE, audit_read.glob_regex(glob))
            found = await conn.fetch(f"SELECT {audit_read._LIST} FROM exchanges WHERE model = ANY($1::text[]) "
                                     f"ORDER BY id DESC LIMIT {CLI_LIMIT + 1}", names)
            times.append(time.perf_counter() - t)
            rows = len(found)
        finally:
            await conn.close()
    return {"glob": glob, "names": list(names), "rows": rows, "first": times[0],
            "warm": statistics.median(times[1:])}


async def _timed_sql(url: str, sql: str, *values: object, repeats: int = 3) -> dict:
    """A statement on a fresh connection each time: the first and the warm time, its rows,
    and its plan (EXPLAIN ANALYZE) after."""
    times, rows = [], 0
    for _ in range(repeats):
        conn = await asyncpg.connect(url)
        try:
            t = time.perf_counter()
            rows = len(await conn.fetch(sql, *values))
            times.append(time.perf_counter() - t)
            if len(times) == repeats:
                plan = orjson.loads(await conn.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}", *values))
        finally:
            await conn.close()
    return {"rows": rows, "first": times[0], "warm": statistics.median(times[1:]), "plan": _plan_summary(plan[0])}


async def time_fixes(url: str, plain: str, password: str) -> dict:
    """The jointly-empty route and model filter (each common, together matching nothing),
    and what might serve it: extended statistics (MCV) on (route, model) in every
    partition, so the planner knows the pair is rare; then (the statistics dropped) an
    index on (route, model, id). (Asking `ORDER BY model DESC, id DESC` does not steer the
    planner to the (model, id) index: with model one value it drops that key.) Run last,
    on the days left after the prune."""
    f = Filters(route="anthropic", model="gpt-5")
    out: dict[str, object] = {}
    arg = audit_read.Args()
    where = audit_read._sql_where(audit_read.where(f, arg))
    base = f"SELECT {audit_read._LIST} FROM exchanges{where}"
    out["before"] = await _timed_sql(url, f"{base} ORDER BY id DESC LIMIT {CLI_LIMIT + 1}", *arg.values)
    conn = await asyncpg.connect(url)
    try:
        parts = [r[0] for r in await conn.fetch(
            "SELECT relid::regclass::text FROM pg_partition_tree('exchanges') WHERE isleaf")]
        t = time.perf_counter()
        for part in parts:
            await conn.execute(f"CREATE STATISTICS {part}_route_model (mcv) ON route, model FROM {part}")
            await conn.execute(f"ANALYZE {part}")
        out["stats_s"] = time.perf_counter() - t
        out["partitions"] = len(parts)
    finally:
        await conn.close()
    out["stats"] = await _timed_sql(url, f"{base} ORDER BY id DESC LIMIT {CLI_LIMIT + 1}", *arg.values)
    conn = await asyncpg.connect(url)
    try:
        for part in parts:
            await conn.execute(f"DROP STATISTICS {part}_route_model")
        t = time.perf_counter()
        await conn.execute('CREATE INDEX exchanges_route_model ON exchanges (route, model, id)')  # every partition
        out["index_s"] = time.perf_counter() - t
        await conn.execute("ANALYZE exchanges")
    finally:
        await conn.close()
    out["index"] = await _timed_sql(url, f"{base} ORDER BY id DESC LIMIT {CLI_LIMIT + 1}", *arg.values)
    return out


# --------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------


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
            resolved = [await time_resolved_glob(url, g) for g in ("*-preview", "claude-*", "*-embedding-*")]
            print(resolved, flush=True)
            prune = await time_prune(plain, pg.password, gen["first_day"])
            print(prune, flush=True)
            fixes = await time_fixes(url, plain, pg.password)
            print(fixes, flush=True)
            return {"sizes": sizes, "picks": picks, "total": total, "lists": lists, "convs": convs, "prune": prune,
                    "resolved": resolved, "fixes": fixes}

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
        "A glob resolved first to the model names it matches (a skip scan of the `(model, id)` indexes, `RESOLVE` "
        "in bench/postgres_queries.py), then `model = ANY(names)`: not the store's code, a fix measured (fresh "
        "connection; ms):", "",
        *harness.table(("glob", "names", "rows", "first", "median of 2 more"),
                       [[f"`{r['glob']}`", ", ".join(r["names"]) or "none", str(r["rows"]), _ms(r["first"]),
                         _ms(r["warm"])] for r in got["resolved"]]), "",
        f"`--route anthropic --model gpt-5` (each common, together nothing) on the {got['fixes']['partitions']} "
        "days left after the prune: as the store asks it, with MCV statistics on (route, model) in every "
        "partition, then (those dropped) with an index on (route, model, id) (raw SQL on a fresh connection; ms):",
        "",
        *harness.table(("query", "first", "median of 2 more", "EXPLAIN ANALYZE planning / execution", "plan",
                        "rows read / filtered out"),
                       [[label, _ms(r["first"]), _ms(r["warm"]),
                         f"{r['plan']['planning_ms']:.1f} / {r['plan']['ms']:.1f}", r["plan"]["nodes"],
                         f"{r['plan']['read']:,} / {r['plan']['removed']:,}"]
                        for label, r in (("as the store asks it", got["fixes"]["before"]),
                                         ("with `CREATE STATISTICS (mcv) ON route, model` on each partition "
                                          f"(made and analyzed in {got['fixes']['stats_s']:.1f} s)",
                                          got["fixes"]["stats"]),
                                         ("with `CREATE INDEX ON exchanges (route, model, id)` (made in "
                                          f"{got['fixes']['index_s']:.1f} s)", got["fixes"]["index"]))]), "",
    ]
    return harness.section(f"Audit queries on PostgreSQL (`{harness.command('bench.postgres_queries', argv=None)}`)",
                           facts, body)


if __name__ == "__main__":
    raise SystemExit(main())
