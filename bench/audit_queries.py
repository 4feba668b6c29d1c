"""Audit queries and prune on a million records, with a writer running beside the prune.

The database is generated straight into aiogw's schema (aiogw.store.sqlite.audit_tables.SCHEMA, rows
in aiogw.audit.record.COLUMNS order, ids from aiogw.audit.ids): 30 days of a few hundred
users with Zipf-like activity, working hours and quiet weekends, three providers and
their models, realistic outcomes (upstream 429s and overloads, client aborts, rare
gateway refusals, rarer guard findings), small payload rows and content blobs.

Then `aiogw audit list`'s queries (aiogw.store.sqlite.audit_read.list_rows) are timed with the
filters operators use, and `queries.prune` removes the oldest 10 days in its bounded
batches while another process commits audit batches the way the gateway's writer does;
each prune transaction and each writer commit is timed.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import multiprocessing
import multiprocessing.synchronize
import os
import random
import sqlite3
import statistics
import time
from pathlib import Path

import orjson

from aiogw.audit import ids
from aiogw.audit.record import COLUMNS, pack, squeeze
from aiogw.store.sqlite import audit_read as queries
from aiogw.store.sqlite import audit_tables as store
from bench.stats import percentile

DAY = 86_400.0
RECORDS = 1_000_000
BLOBS = 200_000
_FIRST = ("ana", "ben", "chen", "dara", "eli", "fatima", "gus", "hana", "ivan", "jo", "kofi", "lena", "mateo",
          "nina", "omar", "priya", "quinn", "rosa", "sam", "tariq", "uma", "vik", "wen", "xavi", "yara", "zoe")
# (route, dialect, weight, [(model, weight, endpoint, streams)])
_ROUTES = (
    ("anthropic", "anthropic", 65, (("claude-sonnet-4-5-20250929", 70, "messages", True),
                                    ("claude-haiku-4-5-20251001", 20, "messages", True),
                                    ("claude-opus-4-1-20250805", 8, "messages", True),
                                    ("claude-sonnet-4-5-20250929", 2, "count_tokens", False))),
    ("openai", "openai", 25, (("gpt-5-codex", 55, "responses", True), ("gpt-5", 15, "responses", True),
                              ("gpt-4.1-mini", 20, "chat", True), ("text-embedding-3-small", 10, "embeddings", False))),
    ("google", "gemini", 10, (("gemini-2.5-pro", 60, "stream_generate", True),
                              ("gemini-2.5-flash", 40, "generate", False))),
)
# (outcome, status, reason, weight per 10,000)
_OUTCOMES = (
    ("ok", 200, None, 9_640), ("upstream_error", 429, None, 120), ("upstream_error", 529, None, 40),
    ("upstream_error", 500, None, 15), ("upstream_error", 400, None, 45), ("client_aborted", 200, None, 90),
    ("upstream_aborted", 200, None, 8), ("refused", 403, "guard", 1), ("refused", 429, "rate", 1),
    ("refused", 401, "auth", 1),
)
_PATHS = {"messages": "/v1/messages", "count_tokens": "/v1/messages/count_tokens", "responses": "/v1/responses",
          "chat": "/v1/chat/completions", "embeddings": "/v1/embeddings",
          "stream_generate": "/v1beta/models/{model}:streamGenerateContent",
          "generate": "/v1beta/models/{model}:generateContent"}
_AGENTS = ("claude-cli/2.0.14 (external, cli)", "claude-cli/2.0.8 (external, vscode)", "codex_cli_rs/0.46.0",
           "google-genai-sdk/1.30.0 gl-python/3.12", "anthropic-python/0.69.0")


def _users(rng: random.Random, n: int = 300) -> list[tuple[str, list[str], float]]:
    """(name, key ids, weight): Zipf-like, a few heavy agents' owners and a long tail."""
    out = []
    for i in range(n):
        name = f"{_FIRST[i % len(_FIRST)]}.{chr(97 + (i * 7) % 26)}{i // len(_FIRST) or ''}"
        keys = [f"k_{rng.getrandbits(48):012x}" for _ in range(rng.randint(1, 3))]
        out.append((name, keys, 1.0 / (i + 1) ** 1.1))
    out += [("ci-bot", ["k_ci"], 0.4), ("nightly-eval", ["k_eval"], 0.2)]
    return out


def _times(rng: random.Random, n: int, end: float) -> list[float]:
    """n start times over 30 days: working hours, quiet nights and weekends."""
    start = end - 30 * DAY
    hour_w = [0.15, 0.1, 0.1, 0.1, 0.15, 0.3, 0.6, 1.0, 1.6, 2.0, 2.0, 1.8, 1.4, 1.8, 2.0, 2.0, 1.8, 1.4, 1.0,
              0.8, 0.6, 0.5, 0.3, 0.2]
    day_w = [0.3 if time.gmtime(start + d * DAY).tm_wday >= 5 else 1.0 for d in range(30)]
    days = rng.choices(range(30), day_w, k=n)
    hours = rng.choices(range(24), hour_w, k=n)
    out = [min(end - 1, start + d * DAY + h * 3600 + rng.random() * 3600) for d, h in zip(days, hours, strict=True)]
    out.sort()
    return out


def generate(path: Path, records: int = RECORDS, blobs: int = BLOBS, seed: int = 3) -> dict[str, float]:
    """Write the database; returns what it holds and how long it took."""
    rng = random.Random(seed)
    t0 = time.perf_counter()
    end = time.time()
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in store.PRAGMAS:
        conn.execute(pragma)
    conn.executescript(store.SCHEMA)
    users = _users(rng)
    user_w = [w for _, _, w in users]
    route_w = [w for *_, w, _ in _ROUTES]
    outcome_w = [w for *_, w in _OUTCOMES]
    batch_rows, batch_payloads = [], []
    for started in _times(rng, records, end):
        name, keys, _ = rng.choices(users, user_w)[0]
        route, dialect, _, models = rng.choices(_ROUTES, route_w)[0]
        model, _, endpoint, streams = rng.choices(models, [m[1] for m in models])[0]
        outcome, status, reason, _ = rng.choices(_OUTCOMES, outcome_w)[0]
        findings = 1 if reason == "guard" else (rng.randint(1, 3) if rng.random() < 0.004 else 0)
        ok = status == 200
        inp = int(rng.lognormvariate(10.3, 1.0)) if ok else 0
        out = int(rng.lognormvariate(6.0, 1.1)) if ok else 0
        ident = ids.new_id(started)
        duration = rng.lognormvariate(8.5, 1.0) if outcome != "refused" else rng.uniform(0.3, 3)
        # One conversation per user and two-hour stretch: the session id groups its turns.
        conversation = "s-" + hashlib.blake2b(f"{name}:{int(started // 7200)}".encode(), digest_size=8).hexdigest()
        batch_rows.append(row(
            id=ident, started=started, duration_ms=round(duration, 3),
            ttfb_ms=round(min(duration, rng.lognormvariate(6.5, 0.7)), 3), user=name, key_id=rng.choice(keys),
            route=route, dialect=dialect, endpoint=endpoint, model=model, stream=int(streams), status=status,
            outcome=outcome, reason=reason, input_tokens=inp, output_tokens=out,
            cache_write_tokens=int(inp * rng.random() * 0.1), cache_read_tokens=int(inp * rng.random() * 4),
            reasoning_tokens=0, findings=findings, request_id=f"req_{rng.getrandbits(96):024x}",
            client=f"10.20.{rng.randint(0, 15)}.{rng.randint(2, 254)}", user_agent=rng.choice(_AGENTS),
            conversation=conversation, request_bytes=int(rng.lognormvariate(11.5, 1.0)),
            response_bytes=int(rng.lognormvariate(8, 1)), method="POST", path=_PATHS[endpoint].format(model=model),
            cost_usd=round((inp * 3.0 + out * 15.0) / 1e6, 8), priced=1,
        ))
        refs = rng.randbytes(16 * rng.randint(2, 6))
        answer = squeeze(b'{"complete":true,"stop_reason":"end_turn","message":{"role":"assistant"}}')
        batch_payloads.append((ident, pack({"max_tokens": 32000, "stream": streams}), rng.randbytes(16),
                               rng.randbytes(16), refs, None, answer, None,
                               orjson.dumps([{"id": "pii.email", "action": "log"}]) if findings else None))
        if len(batch_rows) >= 20_000:
            _flush(conn, batch_rows, batch_payloads)
    _flush(conn, batch_rows, batch_payloads)
    # Content blobs: compressed messages, last seen across the 30 days.
    seen = _times(rng, blobs, end)
    conn.execute("BEGIN")
    _insert(conn, store.INSERT_BLOB, [(rng.randbytes(16), b"\x01" + rng.randbytes(rng.randint(80, 900)),
                                       rng.randint(200, 4000), s) for s in seen])
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    return {"records": records, "blobs": blobs, "seconds": time.perf_counter() - t0, "bytes": size,
            "first": end - 30 * DAY, "end": end}


def row(**values: object) -> tuple:
    """An exchanges row in aiogw.audit.record.COLUMNS order; a column this bench does not
    know is left NULL (the insert fails loudly if the schema forbids that)."""
    unknown = set(values) - set(COLUMNS)
    if unknown:
        raise RuntimeError(f"columns {sorted(unknown)} are no longer in aiogw.audit.record.COLUMNS")
    return tuple(values.get(c) for c in COLUMNS)


def _insert(conn: sqlite3.Connection, head: str, rows: list[tuple]) -> None:
    for sql, params in store.inserts(head, rows):  # as the gateway's writer inserts
        conn.execute(sql, params)


def _flush(conn: sqlite3.Connection, rows: list, payloads: list) -> None:
    if not rows:
        return
    conn.execute("BEGIN")
    _insert(conn, store.INSERT_EXCHANGE, rows)
    _insert(conn, store.INSERT_PAYLOAD, payloads)
    conn.execute("COMMIT")
    rows.clear()
    payloads.clear()


def query_cases(path: Path, end: float) -> list[tuple[str, str, queries.Filters]]:
    """(label, the `aiogw audit list` flags, filters) of the timed queries."""
    conn = sqlite3.connect(path)
    user = conn.execute("SELECT user, count(*) c FROM exchanges GROUP BY user ORDER BY c DESC LIMIT 1 OFFSET 20"
                        ).fetchone()[0]
    conn.close()
    F = queries.Filters
    return [
        ("no filter", "", F()),
        ("one user (21st busiest)", f"--user {user}", F(user=user)),
        ("since 1 day", "--since 1d", F(since=end - DAY)),
        ("model glob", "--model 'claude-*'", F(model="claude-*")),
        ("model glob, rare", "--model 'gemini-*'", F(model="gemini-*")),
        ("outcome refused (rare)", "--outcome refused", F(outcome="refused")),
        ("status 429", "--status 429", F(status=429)),
        ("with findings", "--findings", F(findings=True)),
        ("user and since 7 days", f"--user {user} --since 7d", F(user=user, since=end - 7 * DAY)),
        ("model glob and status 429", "--model 'claude-*' --status 429", F(model="claude-*", status=429)),
    ]


def analyze(path: Path) -> float:
    """Run ANALYZE (the gateway never does; an operator could); returns its seconds."""
    conn = sqlite3.connect(path)
    t = time.perf_counter()
    conn.execute("ANALYZE")
    conn.commit()
    conn.close()
    return time.perf_counter() - t


def time_queries(path: Path, end: float, repeats: int = 5) -> list[dict]:
    out = []
    for label, flags, f in query_cases(path, end):
        conn = queries.connect(path)  # a fresh connection, as each `aiogw audit list` opens
        times, rows = [], 0
        for _ in range(repeats):
            t = time.perf_counter()
            rows = len(queries.list_rows(conn, f))
            times.append(time.perf_counter() - t)
        where, args = queries._where(f)  # the query list_rows runs, for its plan
        sql = f"EXPLAIN QUERY PLAN SELECT {queries._LIST_COLUMNS} FROM exchanges{where} ORDER BY id DESC LIMIT 50"
        plan = conn.execute(sql, args).fetchall()
        conn.close()
        out.append({"label": label, "flags": flags, "rows": rows, "first": times[0],
                    "median": statistics.median(times), "plan": "; ".join(r[3] for r in plan)})
    return out


class TimedConnection:
    """A sqlite3 connection whose `with` blocks (prune's transactions) are timed."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.spans: list[tuple[float, float]] = []  # (start, end), time.monotonic()

    def __enter__(self) -> sqlite3.Connection:
        self._t = time.monotonic()
        return self.conn.__enter__()

    def __exit__(self, *exc: object) -> bool | None:
        try:
            return self.conn.__exit__(*exc)
        finally:
            self.spans.append((self._t, time.monotonic()))

    def execute(self, *args: object) -> sqlite3.Cursor:
        return self.conn.execute(*args)


def writer(path: str, stop: multiprocessing.synchronize.Event, results: multiprocessing.Queue,
           batch: int = 20, every: float = 0.05) -> None:
    """The gateway's writer, roughly: a batch of exchange and payload rows in one
    transaction every `every` seconds (400 records/s), each commit timed from BEGIN."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=10)
    for pragma in store.PRAGMAS:
        conn.execute(pragma)
    rng = random.Random(5)
    lat: list[tuple[float, float]] = []  # (start, seconds), time.monotonic()
    while not stop.is_set():
        now = time.time()
        rows = [row(id=ids.new_id(now), started=now, duration_ms=1.0, user="writer", key_id="k", route="anthropic",
                    dialect="anthropic", endpoint="messages", model="m", stream=1, status=200, outcome="ok",
                    input_tokens=1, output_tokens=1, cache_write_tokens=0, cache_read_tokens=0, reasoning_tokens=0,
                    findings=0, request_bytes=1, response_bytes=1, method="POST", path="/v1/messages",
                    cost_usd=0.00002, priced=1)
                for _ in range(batch)]
        payloads = [(r[0], None, None, None, rng.randbytes(48), None, b"\x00{}", None, None) for r in rows]
        t = time.monotonic()
        conn.execute("BEGIN")
        _insert(conn, store.INSERT_EXCHANGE, rows)
        _insert(conn, store.INSERT_PAYLOAD, payloads)
        conn.execute("COMMIT")
        lat.append((t, time.monotonic() - t))
        time.sleep(max(0.0, every - (time.monotonic() - t)))
    conn.close()
    results.put(lat)


def prune_with_writer(path: Path, first: float, days: float = 10, baseline: float = 3.0) -> dict:
    """Prune the oldest `days` while the writer commits; both timed."""
    # Writeback of the generated (or copied) file would stall both sides' I/O: it is
    # the bench's doing, not the prune's, so it happens before.
    os.sync()
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    stop = ctx.Event()
    conn = queries.connect(path)
    before = first + days * DAY
    expected = conn.execute("SELECT count(*) FROM exchanges WHERE id < ?", (ids.bound(before),)).fetchone()[0]
    proc = ctx.Process(target=writer, args=(str(path), stop, results))
    proc.start()
    time.sleep(baseline + 1.0)  # the writer's start-up, then a baseline of undisturbed commits
    timed = TimedConnection(conn)
    t0 = time.monotonic()
    exchanges, blobs = queries.prune(timed, before)  # type: ignore[arg-type]
    t1 = time.monotonic()
    time.sleep(1.0)
    stop.set()
    lat = results.get(timeout=30)
    proc.join(timeout=30)
    left = conn.execute("SELECT count(*) FROM exchanges WHERE id < ?", (ids.bound(before),)).fetchone()[0]
    conn.close()
    spans = [e - s for s, e in timed.spans]
    gaps = [b[0] - a[1] for a, b in itertools.pairwise(timed.spans)]  # a commit to the next batch
    during_lat = [(t, d) for t, d in lat if t0 <= t <= t1 or t <= t0 <= t + d]
    during = [d for _, d in during_lat]
    slow_t, slow_d = max(during_lat, key=lambda x: x[1], default=(0.0, 0.0))
    overlapped = sum(1 for s, e in timed.spans if s < slow_t + slow_d and e > slow_t)
    calm = [d for t, d in lat if t < t0 - 0.05 and t > t0 - baseline]
    return {
        "exchanges": exchanges, "expected": expected, "left": left, "blobs": blobs, "seconds": t1 - t0,
        "transactions": len(spans), "longest": max(spans, default=math.nan),
        "tx_p50": percentile(spans, 50), "tx_p99": percentile(spans, 99),
        "writer_calm": _lat_summary(calm), "writer_during": _lat_summary(during),
        "gap_p50": percentile(gaps, 50), "slowest_overlapped": overlapped,
        "over_flush": sum(1 for d in during if d > 0.25),
    }


def _lat_summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": percentile(values, 50), "p99": percentile(values, 99),
            "max": max(values, default=math.nan)}
