"""Gateway keys on PostgreSQL, and how every gateway learns at once that one changed.

A key made or revoked raises `keys_version` and sends `NOTIFY aiogw_keys` in the same
transaction. Each gateway's `KeyWatch` listens on a connection of its own (a pooled
connection is reset when handed back, which ends its LISTEN) and counts: the count is
`key_signature()`, read on the request path with no I/O, and a new count makes the key
index reload.

LISTEN alone is not enough: a notification sent while the watch's connection is down is
lost, and a connection cut without a word (a failover, a firewall dropping an idle
flow) would wait for notifications that never come. So the watch also reads
`keys_version` every `POLL` seconds on the same connection: a change the notification
missed is seen within a second, and a query that fails says the connection is gone.
On reconnecting it counts once more, whatever the version says (its first read after
a restore could match by chance).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import asyncpg

from aiogw.store.base import KeyRecord
from aiogw.store.postgres.connect import TRANSIENT

log = logging.getLogger("aiogw.store")

CHANNEL = "aiogw_keys"
# Seconds between two reads of keys_version: a change reaches every gateway within
# this even without its notification (DESIGN §8: within a second).
POLL = 1.0
_VERSION = "SELECT version FROM keys_version"
_BUMP = "UPDATE keys_version SET version = version + 1"


async def create(pool: asyncpg.Pool, record: KeyRecord, digest: bytes) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute('INSERT INTO keys (id, "user", hash, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5)',
                           record.id, record.user, digest, record.created_at, record.revoked_at)
        await _changed(conn, record.id)


async def revoke(pool: asyncpg.Pool, key_id: str, at: float) -> bool:
    """False when there is no such live key (nothing changes, nobody is told)."""
    async with pool.acquire() as conn, conn.transaction():
        done = await conn.execute("UPDATE keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL", at, key_id)
        if done != "UPDATE 1":
            return False
        await _changed(conn, key_id)
        return True


async def _changed(conn: asyncpg.Connection, key_id: str) -> None:
    """In the change's transaction: delivered at its commit, never for a rollback."""
    await conn.execute(_BUMP)
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, key_id)


async def list_keys(pool: asyncpg.Pool) -> list[KeyRecord]:
    async with pool.acquire() as conn:
        rows = await conn.fetch('SELECT id, "user", created_at, revoked_at FROM keys ORDER BY created_at, id')
    return [KeyRecord(r["id"], r["user"], r["created_at"], r["revoked_at"]) for r in rows]


async def load(pool: asyncpg.Pool) -> dict[bytes, KeyRecord]:
    """Every key by its digest, revoked ones too: a request with one is refused but
    audited under its user and key id."""
    async with pool.acquire() as conn:
        rows = await conn.fetch('SELECT hash, id, "user", created_at, revoked_at FROM keys')
    return {r["hash"]: KeyRecord(r["id"], r["user"], r["created_at"], r["revoked_at"]) for r in rows}


class KeyWatch:
    """A LISTEN connection, kept: `count` changes when a key may have changed."""

    def __init__(self, connect: Callable[[], Awaitable[asyncpg.Connection]]) -> None:
        self._connect = connect
        self._conn: asyncpg.Connection | None = None
        self._version: int | None = None
        self._task: asyncio.Task[None] | None = None
        self.count = 0

    async def start(self) -> None:
        """Listen (raising what the connect raised), then watch in the background."""
        await self._listen()
        self._task = asyncio.create_task(self._run(), name="aiogw-keys-watch")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._drop()

    def _notified(self, conn: object, pid: int, channel: str, payload: str) -> None:
        self.count += 1

    async def _listen(self) -> None:
        conn = await self._connect()
        try:
            await conn.add_listener(CHANNEL, self._notified)
            self._version = await conn.fetchval(_VERSION, timeout=POLL * 5)
        except BaseException:
            conn.terminate()
            raise
        self._conn = conn

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), POLL * 5)
            except (*TRANSIENT, asyncpg.PostgresError, asyncpg.InterfaceError):
                conn.terminate()

    async def _run(self) -> None:
        away = False
        while True:
            await asyncio.sleep(POLL)
            try:
                if self._conn is None or self._conn.is_closed():
                    await self._drop()
                    await self._listen()
                    self.count += 1  # notifications may have been missed meanwhile
                    if away:
                        log.warning("keys: listening for key changes again")
                    away = False
                    continue
                version = await self._conn.fetchval(_VERSION, timeout=POLL * 5)
                if version != self._version:
                    self._version = version
                    self.count += 1
            except (*TRANSIENT, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                if not away:
                    log.warning("keys: lost the connection that listens for key changes (%s); the keys loaded "
                                "stay in use, retrying every %.0f s", type(exc).__name__, POLL)
                away = True
                await self._drop()
