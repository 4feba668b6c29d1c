"""A batch of audit records into PostgreSQL: one transaction, by COPY, each record once.

COPY is the fast way in (one message of rows, no statement a row), but it cannot skip
a row already stored, and a batch retried after a lost commit, or replayed from a
spool, must store each record once. So a batch is copied into temporary staging tables
(one set a connection, emptied at every commit: ON COMMIT DELETE ROWS) and moved from
there by `INSERT ... SELECT ... ON CONFLICT DO NOTHING`, all in one transaction; a
content part already stored keeps its data and has its `last_seen` raised.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import asyncpg
from asyncpg import exceptions as pg

from aiogw.audit.record import COLUMNS, PAYLOAD_COLUMNS, Record
from aiogw.store import parts
from aiogw.store.base import StoredPart
from aiogw.store.postgres import partitions
from aiogw.store.postgres.connect import ConnectionLost, lost
from aiogw.store.postgres.schema import q

# A batch that takes longer than this is stuck (a stalled connection, a lock held
# elsewhere): TimeoutError, which the writer spools and retries, rather than waiting
# forever. `[state] timeout` sets it.
STATEMENT_TIMEOUT = 30.0

_STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS aiogw_stage_exchanges (LIKE exchanges) ON COMMIT DELETE ROWS;"
    "CREATE TEMP TABLE IF NOT EXISTS aiogw_stage_payloads (LIKE payloads) ON COMMIT DELETE ROWS;"
    "CREATE TEMP TABLE IF NOT EXISTS aiogw_stage_blobs (LIKE blobs) ON COMMIT DELETE ROWS"
)
_EXCHANGE_LIST = ", ".join(q(c) for c in COLUMNS)
_PAYLOAD_LIST = ", ".join(PAYLOAD_COLUMNS)
_BLOB_COLUMNS = ("hash", "data", "size", "last_seen")
# One message, three statements: an empty staging table moves nothing.
_MOVE = (
    f"INSERT INTO exchanges ({_EXCHANGE_LIST}) SELECT {_EXCHANGE_LIST} FROM aiogw_stage_exchanges "
    "ON CONFLICT (id) DO NOTHING;"
    f"INSERT INTO payloads ({_PAYLOAD_LIST}) SELECT {_PAYLOAD_LIST} FROM aiogw_stage_payloads "
    "ON CONFLICT (id) DO NOTHING;"
    "INSERT INTO blobs (hash, data, size, last_seen) SELECT hash, data, size, last_seen FROM aiogw_stage_blobs "
    "ON CONFLICT (hash) DO UPDATE SET last_seen = greatest(blobs.last_seen, excluded.last_seen)"
)
_TEXT_COLUMNS = tuple(i for i, c in enumerate(COLUMNS) if c not in {
    "started", "duration_ms", "ttfb_ms", "stream", "status", "input_tokens", "output_tokens", "cache_write_tokens",
    "cache_read_tokens", "reasoning_tokens", "findings", "request_bytes", "response_bytes", "cost_usd", "priced"})
_REASON = COLUMNS.index("reason")


def storable(row: tuple) -> tuple:
    """The row as PostgreSQL text takes it: NUL is the one character SQLite keeps and
    PostgreSQL refuses (a model name of JSON's "\\u0000"); it is shown escaped, and the
    reason says so, as `audit.storable` does for what SQLite refuses."""
    if not any(type(row[i]) is str and "\x00" in row[i] for i in _TEXT_COLUMNS):
        return row
    values = list(row)
    notes = []
    for i in _TEXT_COLUMNS:
        if type(values[i]) is str and "\x00" in values[i]:
            values[i] = values[i].replace("\x00", "\\x00")
            notes.append(f"{COLUMNS[i]} held NUL characters (shown as \\x00)")
    said = "audit: " + "; ".join(notes)
    values[_REASON] = f"{values[_REASON]}; {said}" if values[_REASON] else said
    return tuple(values)


async def write(pool: asyncpg.Pool, days_made: partitions.Partitions, records: list[Record],
                known: Mapping[bytes, int], statement_seconds: float = STATEMENT_TIMEOUT) -> dict[bytes, tuple]:
    """Store the records in one transaction; the parts written (hash -> (data, newest use)).

    A record's id that is not an aiogw id raises ValueError (no partition takes it): an
    error about that record, which the writer finds by storing the batch one at a time."""
    rows, payloads, new = parts.choose(records, known)
    await _store(pool, days_made, [storable(row) for row in rows], payloads, parts.blob_rows(new), statement_seconds)
    return new


async def write_copied(pool: asyncpg.Pool, days_made: partitions.Partitions, records: list[Record],
                       parts: list[StoredPart], statement_seconds: float = STATEMENT_TIMEOUT) -> None:
    """Records and parts as another store keeps them (`aiogw state copy`), in one
    transaction as `write` does: the parts byte for byte, with their last_seen."""
    rows = [storable(r.row) for r in records if r.row is not None]
    payloads = [r.payload for r in records if r.payload is not None]
    await _store(pool, days_made, rows, payloads, [(p.hash, p.data, p.size, float(p.last_seen)) for p in parts],
                 statement_seconds)


async def _store(pool: asyncpg.Pool, days_made: partitions.Partitions, rows: list[tuple], payloads: list[tuple],
                 blobs: list[tuple], statement_seconds: float) -> None:
    if not rows and not payloads and not blobs:  # every part known today, no row: nothing to do
        return
    days = {partitions.day_of(row[0]) for row in rows} | {partitions.day_of(p[0]) for p in payloads}
    try:
        await _days_and_batch(pool, days_made, days, rows, payloads, blobs, statement_seconds)
    except pg.InterfaceError as exc:
        if lost(exc):
            raise ConnectionLost(f"the connection to PostgreSQL closed: {exc}") from exc
        raise


async def _days_and_batch(pool: asyncpg.Pool, days_made: partitions.Partitions, days: set[str], rows: list[tuple],
                          payloads: list[tuple], blobs: list[tuple], statement_seconds: float) -> None:
    await days_made.ensure(pool, days)
    try:
        await _transaction(pool, rows, payloads, blobs, statement_seconds)
    except pg.CheckViolationError as exc:
        # "no partition of relation ... found for row": a prune elsewhere dropped a
        # day this process thought made (an old record replayed). Look again, once.
        if "no partition" not in str(exc):
            raise
        days_made.forget()
        await days_made.ensure(pool, days)
        await _transaction(pool, rows, payloads, blobs, statement_seconds)


async def _transaction(pool: asyncpg.Pool, rows: list[tuple], payloads: list[tuple], blobs: list[tuple],
                       statement_seconds: float) -> None:
    """One transaction, within `statement_seconds` in all. Past it the connection is
    closed at once, not rolled back: a server that stalled would never answer the
    ROLLBACK either (nor the cancel of the statement), and the writer would wait on it
    forever. The server rolls back what a closed connection left."""
    conn = await pool.acquire()
    try:
        tr = conn.transaction()
        started = False
        try:
            async with asyncio.timeout(statement_seconds):
                await tr.start()
                started = True
                await conn.execute(_STAGE)
                if rows:
                    await conn.copy_records_to_table("aiogw_stage_exchanges", records=rows, columns=COLUMNS)
                if payloads:
                    await conn.copy_records_to_table("aiogw_stage_payloads", records=payloads,
                                                     columns=PAYLOAD_COLUMNS)
                if blobs:
                    await conn.copy_records_to_table("aiogw_stage_blobs", records=blobs, columns=_BLOB_COLUMNS)
                await conn.execute(_MOVE)
                await tr.commit()
        except (TimeoutError, asyncio.CancelledError):
            conn.terminate()
            raise
        except BaseException:
            if started and not conn.is_closed():
                await tr.rollback()
            raise
    finally:
        await pool.release(conn)
