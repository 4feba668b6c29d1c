"""The PostgreSQL store: the state many gateways share, on asyncpg.

`PostgresStore` (here) owns a small asyncpg pool (`connect()`), the day partitions it
knows are made and, once `open()` has checked the schema, the connection that listens
for key changes. Every method takes a pooled connection for its own statements and
gives it back.

connect.py      the URL, the pool, failures said plainly, what is transient
schema.py       the tables, their versions, `aiogw migrate`
partitions.py   the audit's day partitions: made ahead, dropped whole
audit_write.py  a batch by COPY through staging tables, each record once
audit_read.py   list, show, conversation, export, usage; records as stored, for a copy
prune.py        retention: days dropped, the edge trimmed, unused content collected
key_table.py    gateway keys, and LISTEN/NOTIFY with a poll for their changes
counters.py     spend and rate windows
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Container, Mapping

import asyncpg

from aiogw.audit.record import Record
from aiogw.store.base import Filters, KeyRecord, SpendRow, StateUnavailable, StoredPart, WindowRow
from aiogw.store.postgres import audit_read, audit_write, connect, counters, key_table, partitions, prune, schema

# The advisory lock a gateway with limits in its own memory holds (claim_limits):
# any fixed number, the same in every aiogw.
LIMITS_LOCK = 0x6169_6F67_776C_696D  # "aiogwlim"


class PostgresStore:
    kind = "postgresql"
    # The server away, restarting, full or busy: a batch that failed so is retried.
    transient: tuple[type[BaseException], ...] = connect.TRANSIENT

    def __init__(self, url: str, *, password: str | None = None, ssl: object = None,
                 timeout: float = audit_write.STATEMENT_TIMEOUT) -> None:
        self.url = url  # with any password it holds: only for connecting (and a test's pg_dump)
        self.where = connect.without_password(url)
        self._password = password
        self._ssl = ssl
        self.timeout = timeout  # seconds a statement of an audit batch may take
        self._pool: asyncpg.Pool | None = None
        self._partitions = partitions.Partitions()
        self._watch: key_table.KeyWatch | None = None
        self._claim: asyncpg.Connection | None = None  # holds the in-memory limits' lock

    def __repr__(self) -> str:
        return f"PostgresStore({self.where!r})"

    def failure(self, exc: BaseException) -> str | None:
        return connect.failure(exc, self.where)

    async def connect(self) -> None:
        """The pool, its first connection made (StateUnavailable, said plainly, if not);
        no schema check: for `aiogw migrate`."""
        if self._pool is None:
            self._pool = await connect.open_pool(self.url, self.where, self._password, self._ssl)

    async def open(self) -> None:
        """Connect, refuse any schema but this aiogw's (SchemaError), learn the day
        partitions made, and start listening for key changes."""
        await self.connect()
        try:
            async with self._pool_().acquire() as conn:
                schema.check(await schema.version(conn), self.where)
                await self._partitions.load(conn)
            self._watch = key_table.KeyWatch(self._listener)
            await connect.reach(self.url, self.where, self._password, self._watch.start)
        except asyncpg.PostgresError as exc:  # a role without rights on its tables, say: one line, no traceback
            await self.close()
            raise StateUnavailable(
                f"the PostgreSQL state database {self.where} refused the gateway: {exc}. The gateway's role must own "
                "the database and its tables (CREATE DATABASE ... OWNER <role>; `aiogw migrate` run as that role)"
            ) from None
        except BaseException:
            await self.close()
            raise

    async def _listener(self) -> asyncpg.Connection:
        return await asyncpg.connect(**connect.connect_options(self.url, self._password, self._ssl))

    async def claim_limits(self, shared: bool) -> bool:
        """A session advisory lock, exclusive or shared, on a connection of its own, held
        until close (a gateway that dies lets go of it with its connection)."""
        if self._claim is not None:
            return True
        conn = await self._listener()
        take = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"
        if not await conn.fetchval(f"SELECT {take}($1)", LIMITS_LOCK):
            await conn.close()
            return False
        self._claim = conn
        return True

    async def close(self) -> None:
        claim, self._claim = self._claim, None
        if claim is not None:
            await claim.close()
        watch, self._watch = self._watch, None
        if watch is not None:
            await watch.close()
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    def _pool_(self) -> asyncpg.Pool:
        assert self._pool is not None, "the store is not open"
        return self._pool

    # The schema.
    async def schema_version(self) -> int | None:
        async with self._pool_().acquire() as conn:
            return await schema.version(conn)

    async def migrate(self) -> list[str]:
        async with self._pool_().acquire() as conn:
            return await schema.migrate(conn, self.where)

    # Keys.
    async def create_key(self, record: KeyRecord, digest: bytes) -> None:
        await key_table.create(self._pool_(), record, digest)

    async def revoke_key(self, key_id: str, at: float) -> bool:
        return await key_table.revoke(self._pool_(), key_id, at)

    async def list_keys(self) -> list[KeyRecord]:
        return await key_table.list_keys(self._pool_())

    async def load_keys(self) -> dict[bytes, KeyRecord]:
        return await key_table.load(self._pool_())

    def key_signature(self) -> object:
        """A count that changes when a key may have changed anywhere (key_table.KeyWatch)."""
        return self._watch.count if self._watch is not None else None

    # The audit trail.
    async def write_batch(self, records: list[Record], known: Mapping[bytes, int]) -> dict[bytes, tuple]:
        return await audit_write.write(self._pool_(), self._partitions, records, known, self.timeout)

    async def list_rows(self, f: Filters, limit: int, oldest_first: bool = False) -> list[dict]:
        return await audit_read.list_rows(self._pool_(), f, limit, oldest_first)

    async def show(self, ident: str) -> dict | None:
        return await audit_read.show(self._pool_(), ident)

    async def exists(self, ident: str) -> bool:
        return await audit_read.exists(self._pool_(), ident)

    async def conversations_of(self, ident: str) -> list[tuple[str, str | None]]:
        return await audit_read.conversations_of(self._pool_(), ident)

    async def conversation(self, ident: str, user: str | None) -> list[dict]:
        return await audit_read.conversation(self._pool_(), ident, user)

    def export(self, f: Filters) -> AsyncIterator[dict]:
        return audit_read.export(self._pool_(), f)

    async def prunable(self, before: float) -> tuple[int, int]:
        return await prune.prunable(self._pool_(), before)

    async def prune(self, before: float) -> tuple[int, int]:
        return await prune.prune(self._pool_(), before)

    async def usage_rows(self, by: str, user: str | None, since: float | None, until: float | None) -> list[tuple]:
        return await audit_read.usage_rows(self._pool_(), by, user, since, until)

    # Copying a deployment.
    async def records_after(self, after: str | None, limit: int,
                            have: Container[bytes] = ()) -> tuple[list[Record], list[StoredPart]]:
        return await audit_read.records_after(self._pool_(), after, limit, have)

    async def write_copied(self, records: list[Record], parts: list[StoredPart]) -> None:
        await audit_write.write_copied(self._pool_(), self._partitions, records, parts, self.timeout)

    # Spend and rate windows.
    async def load_limits(self, month: str | None) -> tuple[list[SpendRow], list[WindowRow]]:
        return await counters.load(self._pool_(), month)

    async def save_limits(self, spend: list[SpendRow], windows: list[WindowRow]) -> None:
        await counters.save(self._pool_(), spend, windows)
