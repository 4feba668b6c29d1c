"""The SQLite store: the embedded default, one file and no server.

Every call runs in one database thread with one connection (aiosqlite's), and a call
is one hand-off to that thread and back: aiosqlite hands the GIL to its thread and
back on every awaited call, so a batch of the audit is one call, not one per
statement (see `write_batch`). The keys are read with a connection of their own in a
worker thread, so a key reload never waits behind an audit batch.

audit_tables.py  the audit tables and a batch's statements
audit_read.py    list, show, conversation, export, prune; records as stored, for a copy
key_table.py   the keys table and its stamp file
counters.py    spend and rate windows
usage.py       `aiogw usage`
schema.py      the schema's version, a new file made whole, migrations
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Container, Mapping
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from aiogw.audit.record import Record
from aiogw.store.base import Filters, KeyRecord, SpendRow, StateUnavailable, StoredPart, WindowRow
from aiogw.store.sqlite import audit_read, audit_tables, counters, key_table, schema, usage

T = TypeVar("T")


class SQLiteStore:
    kind = "sqlite"
    # The database's own trouble (locked, disk full, I/O): a batch is retried as it is.
    transient: tuple[type[BaseException], ...] = (sqlite3.OperationalError,)

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)
        self._db: aiosqlite.Connection | None = None
        self._claim: int | None = None  # the lock file's descriptor (claim_limits)

    def failure(self, exc: BaseException) -> str | None:
        """None: `aiogw.cli` says SQLite's errors (a locked file, a full disk) itself."""
        return None

    async def connect(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = await aiosqlite.connect(self.path)
            await self._run(_configure)
        except (OSError, sqlite3.Error) as exc:
            await self.close()
            raise StateUnavailable(f"the state database cannot be used: {exc}; check [state] path in the config "
                                   f"({self.path}): an SQLite database aiogw made, or a path where the gateway's "
                                   "user may make one") from None

    async def open(self) -> None:
        await self.connect()
        try:
            await self._run(schema.prepare, self.where)
        except BaseException:
            await self.close()
            raise

    async def claim_limits(self, shared: bool) -> bool:
        """An flock, exclusive or shared, on `<path>.limits-lock`, held until close (or
        the process's end)."""
        if self._claim is not None:
            return True
        fd = os.open(self.path.with_name(self.path.name + ".limits-lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._claim = fd
        return True

    async def close(self) -> None:
        claim, self._claim = self._claim, None
        if claim is not None:
            os.close(claim)
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(conn, *args)` in the database thread: one hand-off there and back. aiosqlite's
        `_execute` is the one way it runs a function there (setup.cfg keeps aiosqlite
        below 0.23 for it)."""
        assert self._db is not None, "the store is not open"
        return await self._db._execute(fn, self._db._conn, *args)

    # The schema.
    async def schema_version(self) -> int | None:
        return await self._run(schema.version)

    async def migrate(self) -> list[str]:
        return await self._run(schema.migrate)

    # Keys.
    async def create_key(self, record: KeyRecord, digest: bytes) -> None:
        await asyncio.to_thread(key_table.create, self.path, record, digest)

    async def revoke_key(self, key_id: str, at: float) -> bool:
        return await asyncio.to_thread(key_table.revoke, self.path, key_id, at)

    async def list_keys(self) -> list[KeyRecord]:
        return await asyncio.to_thread(key_table.list_keys, self.path)

    async def load_keys(self) -> dict[bytes, KeyRecord]:
        return await asyncio.to_thread(key_table.load, self.path)

    def key_signature(self) -> object:
        return key_table.signature(self.path)

    # The audit trail.
    async def write_batch(self, records: list[Record], known: Mapping[bytes, int]) -> dict[bytes, tuple]:
        statements, new = audit_tables.batch(records, known)
        await self._run(audit_tables.write, statements)
        return new

    async def list_rows(self, f: Filters, limit: int, oldest_first: bool = False) -> list[dict]:
        return await self._run(audit_read.list_rows, f, limit, oldest_first)

    async def show(self, ident: str) -> dict | None:
        return await self._run(audit_read.show, ident)

    async def exists(self, ident: str) -> bool:
        return await self._run(audit_read.exists, ident)

    async def conversations_of(self, ident: str) -> list[tuple[str, str | None]]:
        return await self._run(audit_read.conversations_of, ident)

    async def conversation(self, ident: str, user: str | None) -> list[dict]:
        return await self._run(audit_read.conversation, ident, user)

    async def export(self, f: Filters) -> AsyncIterator[dict]:
        after = None
        while True:
            page = await self._run(audit_read.ids_after, f, after, 500)
            if not page:
                return
            for ident in page:
                record = await self._run(audit_read.show, ident)
                if record is not None:
                    yield record
            after = page[-1]

    async def prunable(self, before: float) -> tuple[int, int]:
        return await self._run(audit_read.prunable, before)

    async def prune(self, before: float) -> tuple[int, int]:
        return await self._run(audit_read.prune, before)

    async def usage_rows(self, by: str, user: str | None, since: float | None, until: float | None) -> list[tuple]:
        return await self._run(usage.usage_rows, by, user, since, until)

    # Copying a deployment.
    async def records_after(self, after: str | None, limit: int,
                            have: Container[bytes] = ()) -> tuple[list[Record], list[StoredPart]]:
        return await self._run(audit_read.records_after, after, limit, have)

    async def write_copied(self, records: list[Record], parts: list[StoredPart]) -> None:
        """One transaction, the statements of a batch (`audit_tables`): a record already
        stored is kept, a part keeps its data and takes the later last_seen."""
        rows = [r.row for r in records if r.row is not None]
        payloads = [r.payload for r in records if r.payload is not None]
        blobs = [(p.hash, p.data, p.size, p.last_seen) for p in parts]
        statements = [*audit_tables.inserts(audit_tables.INSERT_EXCHANGE, rows),
                      *audit_tables.inserts(audit_tables.INSERT_PAYLOAD, payloads),
                      *audit_tables.inserts(audit_tables.INSERT_BLOB, blobs)]
        if statements:
            await self._run(audit_tables.write, statements)

    # Limits.
    async def load_limits(self, month: str | None) -> tuple[list[SpendRow], list[WindowRow]]:
        return await self._run(counters.load, month)

    async def save_limits(self, spend: list[SpendRow], windows: list[WindowRow]) -> None:
        await self._run(counters.save, spend, windows)


def _configure(conn: sqlite3.Connection) -> None:
    for pragma in schema.PRAGMAS:
        conn.execute(pragma)
    audit_read.configure(conn)
