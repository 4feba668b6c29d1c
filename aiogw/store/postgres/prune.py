"""Retention on PostgreSQL: whole days dropped, the edge day trimmed, unused content collected.

`prune(before)` drops every day partition wholly before `before` (detached concurrently,
then dropped: milliseconds, and no lock a writer waits for), deletes the rows of the day
`before` falls in that started earlier, and then the content parts last used before the
cutoff. The rows and the parts go in bounded transactions of `BATCH`, each committed
before the next, so a running gateway's writer (which upserts the same blobs) waits for
at most one of them.
"""

from __future__ import annotations

import asyncpg

from aiogw.audit import ids
from aiogw.store import parts
from aiogw.store.postgres import partitions

# Rows (or content parts) a transaction deletes: a few MB of index and heap work,
# milliseconds of the locks on those rows.
BATCH = 5_000


async def prunable(pool: asyncpg.Pool, before: float) -> tuple[int, int]:
    """What `prune` would delete now: (exchanges, stored contents)."""
    async with pool.acquire() as conn:
        exchanges = await conn.fetchval("SELECT count(*) FROM exchanges WHERE id < $1", ids.bound(before))
        blobs = await conn.fetchval("SELECT count(*) FROM blobs WHERE last_seen < $1", parts.blob_cutoff(before))
    return exchanges, blobs


async def prune(pool: asyncpg.Pool, before: float, batch: int = BATCH) -> tuple[int, int]:
    """Delete the exchanges started before `before` and the content no later record
    uses: (exchanges, contents) deleted."""
    bound = ids.bound(before)
    async with pool.acquire() as conn:
        exchanges, _ = await partitions.drop_before(conn, bound)
        exchanges += await _trim(conn, bound, batch)
        blobs = await _collect(conn, parts.blob_cutoff(before), batch)
    return exchanges, blobs


async def _trim(conn: asyncpg.Connection, bound: str, batch: int) -> int:
    """The rows before `bound` in a partition that also holds later ones (the edge day),
    with their payloads, `batch` at a time."""
    deleted = 0
    while True:
        # One statement: the exchanges and their payloads go in the same transaction.
        n = await conn.fetchval(
            "WITH gone AS (DELETE FROM exchanges WHERE id IN "
            "(SELECT id FROM exchanges WHERE id < $1 ORDER BY id LIMIT $2) RETURNING id), "
            "p AS (DELETE FROM payloads WHERE id < $1 AND id IN (SELECT id FROM gone)) "
            "SELECT count(*) FROM gone", bound, batch)
        deleted += n
        if n < batch:
            break
    # Payloads whose exchange is gone: none are made so, but a prune stopped between the
    # two would leave them.
    while True:
        done = await conn.execute(
            "DELETE FROM payloads WHERE id IN (SELECT id FROM payloads WHERE id < $1 LIMIT $2)", bound, batch)
        if int(done.split()[-1]) < batch:
            break
    return deleted


async def _collect(conn: asyncpg.Connection, cutoff: float, batch: int) -> int:
    """Content last used before `cutoff`, `batch` parts a transaction. `last_seen` is
    tested again on the row being deleted: a writer that raised it meanwhile (a record
    using the part again, committed while this ran) keeps it."""
    deleted = 0
    while True:
        done = await conn.execute(
            "DELETE FROM blobs WHERE hash IN (SELECT hash FROM blobs WHERE last_seen < $1 LIMIT $2) "
            "AND last_seen < $1", cutoff, batch)
        n = int(done.split()[-1])
        deleted += n
        if n == 0:
            break
    return deleted
