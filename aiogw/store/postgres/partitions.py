"""The audit's day partitions: named, made ahead of the rows that need them, dropped.

`exchanges` and `payloads` are partitioned by RANGE on the id (schema.py says why),
one partition a UTC day of each, named `exchanges_20260101` and `payloads_20260101`,
from the smallest id of the day's first millisecond to that of the next day's.

A partition is made as a table of its own and then attached: `CREATE TABLE ...
PARTITION OF` takes an ACCESS EXCLUSIVE lock on the parent (PostgreSQL's CREATE TABLE
docs), which would queue every writer and reader behind the longest query running,
while ATTACH PARTITION takes SHARE UPDATE EXCLUSIVE, which conflicts with neither. An
empty table attaches at once (nothing to check). Two gateways making the same day
take turns on an advisory lock and the second finds it made.

Dropping a day detaches it CONCURRENTLY (again no lock that stops a writer or a
reader; it waits for the queries that may see the partition) and then drops the
table, which then belongs to nothing. A detach interrupted half-way is finished
(FINALIZE) by the next prune, and a table detached but not dropped is dropped then.
"""

from __future__ import annotations

import calendar
import re
import time

import asyncpg

from aiogw.audit import ids
from aiogw.store.postgres.schema import PARTITION_LOCK

DAY = 86_400
TABLES = ("exchanges", "payloads")
# A DDL that cannot have its lock in this time gives up (LockNotAvailableError, which
# the writer retries) instead of queueing every later statement behind it.
LOCK_TIMEOUT = "5s"
_ID = re.compile("[0-9A-HJKMNP-TV-Z]{26}")
_NAME = re.compile(r"(exchanges|payloads)_(\d{8})")
_DIGIT = {c: i for i, c in enumerate("0123456789ABCDEFGHJKMNPQRSTVWXYZ")}


def day_of(ident: str) -> int:
    """The UTC day (days since 1970) whose partition holds the id. ValueError for a
    string that is not an aiogw id: no partition could take it."""
    if not _ID.fullmatch(ident):
        raise ValueError(f"audit id {ident[:40]!r} is not an aiogw id (26 characters of Crockford base32)")
    ms = 0
    for ch in ident[:10]:
        ms = ms * 32 + _DIGIT[ch]
    return ms // (DAY * 1000)


def name(table: str, day: int) -> str:
    return f"{table}_{time.strftime('%Y%m%d', time.gmtime(day * DAY))}"


def day_of_name(relname: str) -> tuple[str, int] | None:
    """(table, day) of a partition's name; None for a name that is not one of ours."""
    m = _NAME.fullmatch(relname)
    if m is None:
        return None
    return m[1], calendar.timegm(time.strptime(m[2], "%Y%m%d")) // DAY


def bounds(day: int) -> tuple[str, str]:
    """The partition's range of ids: [first id of the day, first id of the next)."""
    return ids.bound(day * DAY), ids.bound((day + 1) * DAY)


async def attached(conn: asyncpg.Connection) -> set[tuple[str, int]]:
    """(table, day) of every partition attached to exchanges or payloads."""
    rows = await conn.fetch(
        "SELECT parent.relname AS parent, child.relname AS child FROM pg_inherits i "
        "JOIN pg_class parent ON parent.oid = i.inhparent JOIN pg_class child ON child.oid = i.inhrelid "
        "WHERE parent.oid IN ('exchanges'::regclass, 'payloads'::regclass)"
    )
    out = set()
    for row in rows:
        found = day_of_name(row["child"])
        if found is not None and found[0] == row["parent"]:
            out.add(found)
    return out


class Partitions:
    """The days known to have both their partitions, so that a batch costs no catalog
    query; a day not known is made (or found made) before the batch that needs it."""

    def __init__(self) -> None:
        self.known: set[int] = set()

    def forget(self) -> None:
        """After a write found a day missing (a prune elsewhere dropped it)."""
        self.known.clear()

    async def load(self, conn: asyncpg.Connection) -> None:
        have = await attached(conn)
        self.known = {day for table, day in have if table == "exchanges" and ("payloads", day) in have}

    async def ensure(self, pool: asyncpg.Pool, days: set[int]) -> None:
        """Make the partitions of `days` that are missing, and the day after the newest
        of them: the first batch after midnight then finds its day made."""
        if not days:
            return
        wanted = days | {max(days) + 1}
        missing = wanted - self.known
        if not missing:
            return
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", PARTITION_LOCK)
            await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            have = await attached(conn)
            for day in sorted(missing):
                for table in TABLES:
                    if (table, day) not in have:
                        await _make(conn, table, day)
        self.known |= missing


async def _make(conn: asyncpg.Connection, table: str, day: int) -> None:
    part = name(table, day)
    low, high = bounds(day)  # Crockford base32: no quote can occur in a bound
    # IF NOT EXISTS: a table of this name detached by an interrupted prune is attached
    # again with its rows (ATTACH checks that they are in range).
    await conn.execute(f"CREATE TABLE IF NOT EXISTS {part} (LIKE {table} INCLUDING DEFAULTS INCLUDING STORAGE)")
    await conn.execute(f"ALTER TABLE {table} ATTACH PARTITION {part} FOR VALUES FROM ('{low}') TO ('{high}')")


async def drop_before(conn: asyncpg.Connection, bound: str) -> tuple[int, list[str]]:
    """Drop every partition whose ids all come before `bound`: (the exchanges they held,
    the partitions dropped). `conn` must not be in a transaction (DETACH CONCURRENTLY)."""
    await _finish_detaches(conn)
    rows = await conn.fetch(
        "SELECT parent.relname AS parent, child.relname AS child, "
        "pg_get_expr(child.relpartbound, child.oid) AS spec FROM pg_inherits i "
        "JOIN pg_class parent ON parent.oid = i.inhparent JOIN pg_class child ON child.oid = i.inhrelid "
        "WHERE parent.oid IN ('exchanges'::regclass, 'payloads'::regclass) ORDER BY child.relname"
    )
    gone, dropped = 0, []
    for row in rows:
        high = _upper(row["spec"])
        if high is None or high > bound or day_of_name(row["child"]) is None:
            continue
        if row["parent"] == "exchanges":
            gone += await conn.fetchval(f"SELECT count(*) FROM {row['child']}")
        await conn.execute(f"ALTER TABLE {row['parent']} DETACH PARTITION {row['child']} CONCURRENTLY")
        await conn.execute(f"DROP TABLE {row['child']}")
        dropped.append(row["child"])
    dropped += await _drop_detached(conn, bound)
    return gone, dropped


def _upper(spec: str) -> str | None:
    """The TO bound of a partition's `FOR VALUES FROM ('...') TO ('...')`."""
    m = re.search(r"TO \('([^']*)'\)", spec or "")
    return m[1] if m else None


async def _finish_detaches(conn: asyncpg.Connection) -> None:
    """A DETACH ... CONCURRENTLY interrupted (the prune killed, the server restarted)
    leaves its partition "detach pending": finish it, so its table can go."""
    rows = await conn.fetch(
        "SELECT parent.relname AS parent, child.relname AS child FROM pg_inherits i "
        "JOIN pg_class parent ON parent.oid = i.inhparent JOIN pg_class child ON child.oid = i.inhrelid "
        "WHERE i.inhdetachpending AND parent.oid IN ('exchanges'::regclass, 'payloads'::regclass)"
    )
    for row in rows:
        await conn.execute(f"ALTER TABLE {row['parent']} DETACH PARTITION {row['child']} FINALIZE")


async def _drop_detached(conn: asyncpg.Connection, bound: str) -> list[str]:
    """Tables named as our partitions, of days before `bound`, that belong to no parent:
    a prune stopped between its detach and its drop."""
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_class c WHERE c.relkind = 'r' AND c.relnamespace = "
        "(SELECT oid FROM pg_namespace WHERE nspname = current_schema()) "
        "AND c.relname ~ '^(exchanges|payloads)_[0-9]{8}$' AND NOT c.relispartition"
    )
    dropped = []
    for row in rows:
        found = day_of_name(row["relname"])
        if found is not None and bounds(found[1])[1] <= bound:
            await conn.execute(f"DROP TABLE {row['relname']}")
            dropped.append(row["relname"])
    return dropped
