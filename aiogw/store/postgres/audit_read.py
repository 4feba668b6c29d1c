"""Reading the audit trail back: list, show, conversation, export, usage, and the
records as stored for `aiogw state copy`.

Each call takes a pooled connection for its own statements and gives it back, holding
no transaction between calls: an export of millions of records is pages of ids by key
(`id > last`, never an offset, never every id in memory), each page's payloads and
content parts fetched a few records at a time, so neither the gateway's writer nor a
prune's DETACH ever waits for an export to end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Container
from typing import Any

import asyncpg

from aiogw.audit import ids
from aiogw.audit.record import COLUMNS, PAYLOAD_COLUMNS, Record
from aiogw.store import decode
from aiogw.store.base import USAGE_GROUPS, Filters, StoredPart
from aiogw.store.postgres.schema import q

_LIST = ", ".join(q(c) for c in COLUMNS)
_PAYLOADS = ", ".join(PAYLOAD_COLUMNS)
# An export's page of ids, and how many of its records are read back at once: their
# payloads (a request up to the gateway's max body, its answer, a raw stream) and
# parts are in memory together, so few.
EXPORT_PAGE = 500
EXPORT_CHUNK = 16


class Args:
    """Numbered parameters ($1, $2...) as a query's clauses are built."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def where(f: Filters, arg: Args, models: list[str] | None = None) -> list[str]:
    """The clauses of the filters (since/until as id ranges: the planner skips the day
    partitions outside them). `models`: the names a model glob matches (`models_of`)."""
    clauses = []
    if f.since is not None:
        clauses.append(f"id >= {arg(ids.bound(f.since))}")
    if f.until is not None:
        clauses.append(f"id < {arg(ids.bound(f.until))}")
    for column in ("user", "route", "outcome", "conversation", "status"):
        value = getattr(f, column)
        if value is not None:
            clauses.append(f"{q(column)} = {arg(value)}")
    if f.model is not None:
        if models is not None:
            clauses.append(f"model = ANY({arg(models)}::text[])")
        elif any(c in f.model for c in "*?["):
            pattern = glob_regex(f.model)
            clauses.append(f"model ~ {arg(pattern)}" if pattern is not None else "false")
        else:
            clauses.append(f"model = {arg(f.model)}")
    if f.findings:
        clauses.append("findings > 0")
    return clauses


# The models a glob matches, found by a skip scan of the (model, id) indexes: one probe
# per distinct model and day partition. Asked first, so that the list is then read by
# those indexes for those names: as `model ~ pattern`, a glob with no literal prefix
# (`*-preview`) read every row of the list table, 4-7 s on 10 M records; given the
# names from a subquery, the planner still chose to read by id.
_MODELS = (
    "WITH RECURSIVE m(model) AS ("
    "(SELECT model FROM exchanges WHERE model IS NOT NULL ORDER BY model LIMIT 1) UNION ALL "
    "SELECT (SELECT e.model FROM exchanges e WHERE e.model > m.model ORDER BY e.model LIMIT 1) "
    "FROM m WHERE m.model IS NOT NULL) SELECT model FROM m WHERE model ~ $1"
)


async def models_of(conn: asyncpg.Connection, f: Filters) -> list[str] | None:
    """The model names `f`'s model glob matches; None when it has no glob."""
    if f.model is None or not any(c in f.model for c in "*?["):
        return None
    pattern = glob_regex(f.model)
    return [] if pattern is None else [r[0] for r in await conn.fetch(_MODELS, pattern)]


def _sql_where(clauses: list[str]) -> str:
    return (" WHERE " + " AND ".join(clauses)) if clauses else ""


def glob_regex(glob: str) -> str | None:
    """A glob as SQLite's GLOB reads it (`*` any run, `?` one character, `[a-z]` and
    `[^...]` one of a set, case-sensitive), as an anchored PostgreSQL regular
    expression; None when the glob matches nothing (a `[` never closed, as SQLite).
    Every character but letters and digits goes in as its code point (`\\u0041`), so
    nothing of the glob is read as regex syntax."""
    out, i, n = ["^"], 0, len(glob)
    while i < n:
        c = glob[i]
        i += 1
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            members, i = _glob_set(glob, i)
            if members is None:
                return None
            out.append(members)
        else:
            out.append(_literal(c))
    return "".join(out) + "$"


def _glob_set(glob: str, i: int) -> tuple[str | None, int]:
    """The bracket set starting after its `[`, as a regex set, and where it ends.

    As SQLite reads it: `]` first is a member; a dash between a member and a
    character is a range, added to that member (so `[z-a]` is `z` alone); a dash
    first, last, or after a range is itself."""
    n = len(glob)
    negate = i < n and glob[i] == "^"
    if negate:
        i += 1
    spans: list[tuple[str, str]] = []
    prior: str | None = None
    if i < n and glob[i] == "]":
        spans.append(("]", "]"))
        i += 1
    while i < n and glob[i] != "]":
        c = glob[i]
        i += 1
        if c == "-" and prior is not None and i < n and glob[i] != "]":
            if prior <= glob[i]:
                spans.append((prior, glob[i]))
            i += 1
            prior = None
        else:
            spans.append((c, c))
            prior = c
    if i >= n:
        return None, i
    members = "".join(_literal(lo, True) if lo == hi else f"{_literal(lo, True)}-{_literal(hi, True)}"
                      for lo, hi in spans)
    return "[" + ("^" if negate else "") + members + "]", i + 1


def _literal(c: str, force: bool = False) -> str:
    if not force and c.isascii() and c.isalnum():
        return c
    point = ord(c)
    return f"\\u{point:04x}" if point <= 0xFFFF else f"\\U{point:08x}"


async def list_rows(pool: asyncpg.Pool, f: Filters, limit: int, oldest_first: bool = False) -> list[dict]:
    """Matching rows by id, newest first (or oldest); `limit` < 0: all of them."""
    async with pool.acquire() as conn:
        models = await models_of(conn, f)
        if models == []:  # a glob no model matches: nothing to read
            return []
        arg = Args()
        clauses = where(f, arg, models)
        order = "ASC" if oldest_first else "DESC"
        sql = f"SELECT {_LIST} FROM exchanges{_sql_where(clauses)} ORDER BY id {order}"
        if limit >= 0:
            sql += f" LIMIT {arg(limit)}"
        return [dict(row) for row in await conn.fetch(sql, *arg.values)]


async def exists(pool: asyncpg.Pool, ident: str) -> bool:
    async with pool.acquire() as conn:
        return await conn.fetchval("SELECT EXISTS (SELECT 1 FROM exchanges WHERE id = $1)", ident)


async def conversations_of(pool: asyncpg.Pool, ident: str) -> list[tuple[str, str | None]]:
    """(conversation, user): the conversation of an exchange id, or a conversation id
    as given, once for each user with exchanges in it (a conversation is one user's)."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow('SELECT conversation, "user" FROM exchanges WHERE id = $1', ident)
        if row is not None:
            return [(row["conversation"], row["user"])] if row["conversation"] is not None else []
        # NULLS FIRST: where SQLite sorts NULL.
        users = await conn.fetch(
            'SELECT DISTINCT "user" FROM exchanges WHERE conversation = $1 ORDER BY "user" NULLS FIRST', ident)
    return [(ident, r["user"]) for r in users]


async def conversation(pool: asyncpg.Pool, ident: str, user: str | None) -> list[dict]:
    """The exchanges of one user's conversation, oldest first."""
    sql = (f'SELECT {_LIST} FROM exchanges WHERE conversation = $1 AND "user" IS NOT DISTINCT FROM $2 '
           "ORDER BY id")
    async with pool.acquire() as conn:
        return [dict(row) for row in await conn.fetch(sql, ident, user)]


async def show(pool: asyncpg.Pool, ident: str) -> dict | None:
    """One exchange with its payloads: the request rebuilt, the answer, the findings."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(f"SELECT {_LIST} FROM exchanges WHERE id = $1", ident)
        if row is None:
            return None
        return (await _read_back(conn, [dict(row)]))[0]


async def export(pool: asyncpg.Pool, f: Filters) -> AsyncIterator[dict]:
    """Every matching exchange with its payloads, oldest first, one at a time."""
    after: str | None = None
    async with pool.acquire() as conn:
        models = await models_of(conn, f)
    if models == []:
        return
    while True:
        arg = Args()
        clauses = where(f, arg, models)
        if after is not None:
            clauses.append(f"id > {arg(after)}")
        sql = f"SELECT {_LIST} FROM exchanges{_sql_where(clauses)} ORDER BY id LIMIT {arg(EXPORT_PAGE)}"
        async with pool.acquire() as conn:
            page = [dict(row) for row in await conn.fetch(sql, *arg.values)]
        if not page:
            return
        for i in range(0, len(page), EXPORT_CHUNK):
            async with pool.acquire() as conn:
                records = await _read_back(conn, page[i : i + EXPORT_CHUNK])
            for record in records:  # yielded with no connection held: the consumer may be slow
                yield record
        after = page[-1]["id"]


async def _read_back(conn: asyncpg.Connection, rows: list[dict]) -> list[dict]:
    """The rows (in id order) with their payloads and parts, in two queries."""
    chosen = [row["id"] for row in rows]
    # The id range beside the list lets the planner skip the other days' partitions.
    payloads = await conn.fetch(
        f"SELECT {_PAYLOADS} FROM payloads WHERE id = ANY($1::text[]) AND id >= $2 AND id <= $3",
        chosen, min(chosen), max(chosen))
    by_id = {p["id"]: p for p in payloads}
    wanted = sorted({h for p in payloads for h in decode.refs(p)})
    blobs: dict[bytes, bytes] = {}
    if wanted:
        found = await conn.fetch("SELECT hash, data FROM blobs WHERE hash = ANY($1::bytea[])", wanted)
        blobs = {r["hash"]: r["data"] for r in found}
    return [decode.record(row, by_id.get(row["id"]), blobs) for row in rows]


async def records_after(pool: asyncpg.Pool, after: str | None, limit: int,
                        have: Container[bytes]) -> tuple[list[Record], list[StoredPart]]:
    """Up to `limit` records after the id `after` (None: from the first), in id order, as
    stored: rows and payloads as `write_batch` took them, and the parts they refer to
    that are stored and not in `have`, byte for byte (`aiogw state copy`)."""
    arg = Args()
    clause = f" WHERE id > {arg(after)}" if after is not None else ""
    async with pool.acquire() as conn:
        rows = await conn.fetch(f"SELECT {_LIST} FROM exchanges{clause} ORDER BY id LIMIT {arg(limit)}", *arg.values)
        if not rows:
            return [], []
        # The ids' range: the planner reads only the partitions of those days.
        payloads = await conn.fetch(f"SELECT {_PAYLOADS} FROM payloads WHERE id >= $1 AND id <= $2",
                                    rows[0]["id"], rows[-1]["id"])
        by_id = {p["id"]: p for p in payloads}
        records: list[Record] = []
        wanted: dict[bytes, None] = {}  # the parts in order of first use, each once
        for row in rows:
            p = by_id.get(row["id"])
            records.append(Record(row["id"], tuple(row), tuple(p) if p is not None else None, [], row["started"]))
            if p is not None:
                wanted.update((h, None) for h in decode.refs(p) if h not in have)
        found = []
        if wanted:
            found = await conn.fetch("SELECT hash, data, size, last_seen FROM blobs WHERE hash = ANY($1::bytea[])",
                                     list(wanted))
    return records, [StoredPart(r["hash"], r["data"], r["size"], r["last_seen"]) for r in found]


# `aiogw usage --by ...`: each group's expression, as SQLite's usage groups.
_GROUPS = {
    "user": "coalesce(\"user\", '-')",
    "model": "coalesce(model, '-')",
    "route": "coalesce(route, '-')",
    "day": "to_char(to_timestamp(started) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
}
assert tuple(_GROUPS) == USAGE_GROUPS


async def usage_rows(pool: asyncpg.Pool, by: str, user: str | None, since: float | None,
                     until: float | None) -> list[tuple]:
    """(group, requests, refused, input, cache read, cache write, output, cost, unpriced)
    per group, sorted by group; the same values and types as the SQLite store's."""
    arg = Args()
    clauses = where(Filters(user=user, since=since, until=until), arg)
    # sum() of bigint is numeric in PostgreSQL: cast back, so the counts are ints.
    sql = (
        f"SELECT {_GROUPS[by]} AS grp, count(*), sum((outcome = 'refused')::int)::bigint, "
        "sum(input_tokens + cache_read_tokens + cache_write_tokens)::bigint, "
        "sum(cache_read_tokens)::bigint, sum(cache_write_tokens)::bigint, sum(output_tokens)::bigint, "
        "coalesce(sum(cost_usd), 0)::double precision, "
        "sum((cost_usd IS NOT NULL AND priced = 0)::int)::bigint "
        f"FROM exchanges{_sql_where(clauses)} GROUP BY grp ORDER BY grp"
    )
    async with pool.acquire() as conn:
        return [tuple(row) for row in await conn.fetch(sql, *arg.values)]
