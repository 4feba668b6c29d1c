"""The SQLite state database's schema: made whole in a new file, versioned, migrated.

A new (empty) file gets today's tables at once: the embedded default must work with
no step first (`make run`). A database with tables but no `aiogw_schema` was made by
an aiogw before schema versions (its `payloads` and `blobs` may be WITHOUT ROWID tables,
its `exchanges` may lack the columns added since): it is brought to version 1 by
`aiogw migrate`, never behind an operator's back, since remaking tables copies every row.
"""

from __future__ import annotations

import sqlite3
import time

from aiogw.store.base import SCHEMA_VERSION, SchemaError
from aiogw.store.sqlite import audit_tables, counters, key_table

VERSIONS = """
CREATE TABLE IF NOT EXISTS aiogw_schema (
    version INTEGER NOT NULL,
    applied_at REAL NOT NULL,
    step TEXT NOT NULL
);
"""
PRAGMAS = audit_tables.PRAGMAS


def tables(conn: sqlite3.Connection) -> dict[str, str]:
    """Table name -> its CREATE statement."""
    return {name: sql or "" for name, sql in conn.execute("SELECT name, sql FROM sqlite_schema WHERE type = 'table'")}


def version(conn: sqlite3.Connection) -> int | None:
    """The schema's version; None for a database without a version (new or made before)."""
    if "aiogw_schema" not in tables(conn):
        return None
    row = conn.execute("SELECT max(version) FROM aiogw_schema").fetchone()
    return row[0]


def _create_all(conn: sqlite3.Connection) -> None:
    conn.executescript(audit_tables.SCHEMA + key_table.SCHEMA + ";" + counters.SCHEMA + VERSIONS)


def prepare(conn: sqlite3.Connection, where: str) -> None:
    """At open: a new file made whole; any other version than this aiogw's refused."""
    found = tables(conn)
    if not found:
        _create_all(conn)
        conn.execute("INSERT INTO aiogw_schema VALUES (?, ?, ?)", (SCHEMA_VERSION, time.time(), "created"))
        conn.commit()
        return
    have = version(conn)
    if have == SCHEMA_VERSION:
        return
    if have is not None and have > SCHEMA_VERSION:
        raise SchemaError(f"the state database {where} has schema version {have}, newer than this aiogw's "
                          f"({SCHEMA_VERSION}): upgrade aiogw, or use the aiogw that made it")
    made = "an aiogw from before schema versions" if have is None else f"schema version {have}"
    raise SchemaError(f"the state database {where} was made by {made}; this aiogw needs version {SCHEMA_VERSION}: "
                      "stop the gateways that use it and run `aiogw migrate --config <your config>` (it keeps every "
                      "record)")


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Bring the database to this aiogw's version, in one transaction; the steps taken."""
    found = tables(conn)
    have = version(conn)
    if not found:
        prepare(conn, "")
        return [f"created the tables of schema version {SCHEMA_VERSION}"]
    if have == SCHEMA_VERSION:
        return []
    if have is not None and have > SCHEMA_VERSION:
        raise SchemaError(f"the database has schema version {have}, newer than this aiogw's ({SCHEMA_VERSION}): "
                          "upgrade aiogw")
    steps: list[str] = []
    conn.execute("BEGIN IMMEDIATE")  # a running writer waits (busy_timeout), never interleaves
    try:
        for statement in audit_tables.relayout(found):
            cur = conn.execute(statement)
            if statement.startswith("INSERT INTO "):
                steps.append(f"remade {statement.split()[2]} as a rowid table ({cur.rowcount:,} rows copied)")
        for statement in audit_tables.SCHEMA.split(";") + key_table.SCHEMA.split(";") + counters.SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        existing = {row[1] for row in conn.execute("PRAGMA table_info(exchanges)")}
        for statement in audit_tables.migrations(existing):
            conn.execute(statement)
            steps.append(statement)
        conn.execute(VERSIONS)
        conn.execute("INSERT INTO aiogw_schema VALUES (?, ?, ?)", (SCHEMA_VERSION, time.time(), "migrated"))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # SQLite may have rolled back already (a full disk)
            conn.execute("ROLLBACK")
        raise
    steps.append(f"schema version {SCHEMA_VERSION}")
    if any(s.startswith("remade") for s in steps):
        conn.execute("VACUUM")  # hand back the pages the old tables held
        steps.append("vacuumed")
    return steps
