"""10 M audit records generated straight into aiogw's PostgreSQL schema, for bench.postgres_queries.

The data (`World`, `day_rows`): bench.audit_queries' users, routes, models, outcomes and
findings, over whole UTC days (weekends at 0.3 of a weekday, working hours), sessions of up
to ~300 turns in three hours, a payload row for every exchange, content blobs last seen
across the days in the order of their last use.

The load (`generate`): each day a table of its own, filled by COPY, given the parent's
indexes (read from the catalog, so any index the schema gains is there too), then attached
as that day's partition, which finds the indexes made and checks nothing (a CHECK
constraint proves the range; dropped after). Days are loaded by worker processes, each in
one transaction; the server should run with `pgcluster.BULK` meanwhile (wal_level minimal:
a table filled in the transaction that made it skips the WAL). Then VACUUM (ANALYZE).
"""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import random
import time
from collections.abc import Callable, Iterator

import asyncpg
import orjson

from aiogw.audit import ids
from aiogw.audit.record import COLUMNS, pack, squeeze
from aiogw.store.postgres import partitions
from bench import audit_queries as sq
from bench.pgcluster import BenchPg

DAY = 86_400
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
assert COLUMNS == EXPECTED, "aiogw.audit.record.COLUMNS changed: bench.pg_audit_data's day_rows must follow it"


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
