"""The audit tables in the SQLite state database, and a batch written to them.

`exchanges` is what lists and filters scan: one narrow row per exchange, keyed by a
time-sortable id, so `since`/`until` are key ranges and the newest rows come first
from the key itself. Payloads live beside it in `payloads`; message contents, system
prompts and tool definitions live once each in `blobs`, keyed by their hash, so a
conversation resent on every turn costs only its new messages plus 16 bytes a message.

A blob's `last_seen` is the start time of the newest exchange that referenced it: prune
deletes exchanges before a date, then exactly the blobs last seen before it.

`payloads` and `blobs` are rowid tables, `exchanges` is not: a WITHOUT ROWID table keeps
its rows in an index tree, which stores at most ~1 KB of a row in the page and the rest
in an overflow page of its own. A 1 KB exchange's payload row (~1.8 KB) took two pages:
as a rowid table the database thread's time a record fell from ~41 to ~26 µs and the
file from ~5.3 to ~2.7 KB a record. Databases made before keep the tables they have
until `aiogw migrate` remakes them (`relayout`).
"""

from __future__ import annotations

import functools
import itertools
import sqlite3
from collections.abc import Iterator, Mapping

from aiogw.audit.record import COLUMNS, PAYLOAD_COLUMNS, Record
from aiogw.store import parts

DAY = 86_400.0

_PAYLOADS = """CREATE TABLE IF NOT EXISTS payloads (
    id TEXT PRIMARY KEY,
    request_meta BLOB,
    system_ref BLOB,
    tools_ref BLOB,
    message_refs BLOB,
    request_raw BLOB,
    response BLOB,
    raw_stream BLOB,
    findings BLOB
)"""
_BLOBS = """CREATE TABLE IF NOT EXISTS blobs (
    hash BLOB PRIMARY KEY,
    data BLOB NOT NULL,
    size INTEGER NOT NULL,
    last_seen REAL NOT NULL
)"""
_BLOBS_INDEX = "CREATE INDEX IF NOT EXISTS blobs_last_seen ON blobs (last_seen)"

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS exchanges (
    id TEXT PRIMARY KEY,
    started REAL NOT NULL,
    duration_ms REAL,
    ttfb_ms REAL,
    user TEXT,
    key_id TEXT,
    route TEXT,
    dialect TEXT,
    endpoint TEXT,
    model TEXT,
    stream INTEGER NOT NULL,
    status INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    cache_read_tokens INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens INTEGER NOT NULL DEFAULT 0,
    findings INTEGER NOT NULL DEFAULT 0,
    request_id TEXT,
    client TEXT,
    user_agent TEXT,
    conversation TEXT,
    request_bytes INTEGER NOT NULL DEFAULT 0,
    response_bytes INTEGER NOT NULL DEFAULT 0,
    method TEXT,
    path TEXT,
    cost_usd REAL,
    priced INTEGER NOT NULL DEFAULT 1
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS exchanges_user ON exchanges (user, id);
CREATE INDEX IF NOT EXISTS exchanges_conversation ON exchanges (conversation, id);
CREATE INDEX IF NOT EXISTS exchanges_model ON exchanges (model, id);
CREATE INDEX IF NOT EXISTS exchanges_route ON exchanges (route, id);
CREATE INDEX IF NOT EXISTS exchanges_outcome ON exchanges (outcome, id);
CREATE INDEX IF NOT EXISTS exchanges_status ON exchanges (status, id);
CREATE INDEX IF NOT EXISTS exchanges_findings ON exchanges (id) WHERE findings > 0;
{_PAYLOADS};
{_BLOBS};
{_BLOBS_INDEX};
"""

PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    # WAL + NORMAL: a commit is durable once the WAL is synced at checkpoint; a power
    # loss can drop the last transactions but never corrupts the database.
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=10000",
)

INSERT_EXCHANGE = f"INSERT INTO exchanges ({', '.join(COLUMNS)}) VALUES "
INSERT_PAYLOAD = f"INSERT INTO payloads ({', '.join(PAYLOAD_COLUMNS)}) VALUES "
INSERT_BLOB = "INSERT INTO blobs (hash, data, size, last_seen) VALUES "
# A record written again (a batch retried) is left as it is. Only a conflict on the key:
# `INSERT OR IGNORE` also dropped, without a word, a row that broke any other
# constraint (a NOT NULL column left empty), and a lost record must never be silent.
_TAILS = {
    INSERT_EXCHANGE: " ON CONFLICT (id) DO NOTHING",
    INSERT_PAYLOAD: " ON CONFLICT (id) DO NOTHING",
    INSERT_BLOB: " ON CONFLICT (hash) DO UPDATE SET last_seen = max(last_seen, excluded.last_seen)",
}
# SQLite's default cap on a statement's parameters (SQLITE_MAX_VARIABLE_NUMBER, 3.32+).
_MAX_PARAMS = 32766


def batch(records: list[Record], known: Mapping[bytes, int]) -> tuple[list[tuple[str, list]], dict[bytes, tuple]]:
    """The statements of one transaction storing `records`, and the parts it writes
    (hash -> (data, newest use)), chosen by `store.parts`' rule. A row already there
    is kept (ON CONFLICT DO NOTHING), so a batch retried completes: it carries its parts."""
    rows, payloads, new = parts.choose(records, known)
    blobs = parts.blob_rows(new)
    statements = [*inserts(INSERT_EXCHANGE, rows), *inserts(INSERT_PAYLOAD, payloads), *inserts(INSERT_BLOB, blobs)]
    return statements, new


@functools.lru_cache(maxsize=64)
def _sql(head: str, width: int, n: int) -> str:
    one = "(" + ", ".join("?" * width) + ")"
    return head + ", ".join(itertools.repeat(one, n)) + _TAILS[head]


def inserts(head: str, rows: list[tuple]) -> Iterator[tuple[str, list]]:
    """`rows` as few multi-row INSERT statements: (sql, flat parameters).

    One statement per power-of-two share of the rows (37 rows: 32, 4, 1), so a batch is
    a handful of sqlite3_step calls, not one per row, each of which let go of the GIL
    and took it back: the database thread's CPU per record fell by ~18% (the same load,
    1.25 → 1.03 s). The powers of two keep the distinct statements (and their prepared
    forms) few."""
    if not rows:
        return
    width = len(rows[0])
    most = 1 << ((_MAX_PARAMS // width).bit_length() - 1)
    i = 0
    while i < len(rows):
        left = len(rows) - i
        n = most if left >= most else 1 << (left.bit_length() - 1)
        yield _sql(head, width, n), list(itertools.chain.from_iterable(rows[i : i + n]))
        i += n


def relayout(existing: dict[str, str]) -> list[str]:
    """The statements that remake an older database's WITHOUT ROWID `payloads` and
    `blobs` (see the module's doc) as the rowid tables above, rows and all. `existing`:
    table name -> its CREATE statement (sqlite_schema.sql). Run them in one transaction;
    they copy every row, so on a large database stop the gateway first."""
    out = []
    for table, create in (("payloads", _PAYLOADS), ("blobs", _BLOBS)):
        if "WITHOUT ROWID" not in existing.get(table, "").upper():
            continue
        out += [
            f"ALTER TABLE {table} RENAME TO {table}_old",
            create,
            f"INSERT INTO {table} SELECT * FROM {table}_old",
            f"DROP TABLE {table}_old",  # its indexes with it
        ]
        if table == "blobs":
            out.append(_BLOBS_INDEX)
    return out


# Columns added after a release, for databases made before them: (name, declaration).
ADDED_COLUMNS = (("cost_usd", "REAL"), ("priced", "INTEGER NOT NULL DEFAULT 1"))


def migrations(existing: set[str]) -> list[str]:
    """The ALTER TABLE statements an older `exchanges` table needs."""
    return [f"ALTER TABLE exchanges ADD COLUMN {name} {decl}" for name, decl in ADDED_COLUMNS if name not in existing]


def write(conn: sqlite3.Connection, statements: list[tuple[str, list]]) -> None:
    """A batch's statements and commit, in the database thread; all or nothing."""
    try:
        for sql, params in statements:
            conn.execute(sql, params)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
