"""Gateway keys: made here, resolved in memory on every request.

Only a SHA-256 of each key is stored; keys are 256 random bits, so a fast hash is as
good as a slow one and costs a microsecond per request. The keys live in the state
store (`aiogw.store`); the gateway keeps them in memory by digest and reads them again
when the store's `key_signature()` changes: on SQLite a stamp file the key commands
rewrite, on PostgreSQL a counter its LISTEN connection raises on each NOTIFY. The
signature is looked at on a request with a key the gateway does not know, and at most
every `RECHECK` seconds otherwise. Not on every request, nor every few milliseconds:
on SQLite it is a stat(), which lets go of the GIL, and under load each call handed it
to the audit's database thread and waited to get it back (16 µs a request when every
request looked; at every 5 ms, py-spy still found ~2% of the loop's samples there).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from typing import Protocol

from aiogw.store.base import KeyRecord

KEY_PREFIX = "aiogw-"

log = logging.getLogger("aiogw.keys")


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


def new_key(user: str) -> tuple[KeyRecord, str, bytes]:
    """A new key for `user`: its record, the key (shown once) and its digest (stored)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    record = KeyRecord(id="key_" + secrets.token_hex(6), user=user, created_at=time.time(), revoked_at=None)
    return record, key, digest(key)


class KeyStore(Protocol):
    """What revoking a user's keys needs of the store (`aiogw.store.base.Store`)."""

    async def list_keys(self) -> list[KeyRecord]: ...
    async def revoke_key(self, key_id: str, at: float) -> bool: ...


async def revoke_user(store: KeyStore, user: str, at: float) -> list[str]:
    """Revoke every active key of `user`; the ids revoked. The user is then out of every
    gateway on the database, each hearing of it as of any key change."""
    live = [k.id for k in await store.list_keys() if k.user == user and k.revoked_at is None]
    return [key_id for key_id in live if await store.revoke_key(key_id, at)]


class KeySource(Protocol):
    """What the index needs of the store (`aiogw.store.base.Store`)."""

    where: str
    transient: tuple[type[BaseException], ...]

    def key_signature(self) -> object: ...
    async def load_keys(self) -> dict[bytes, KeyRecord]: ...


class KeyIndex:
    """The keys in memory, read again when the store says they changed."""

    __slots__ = ("_away", "_by_hash", "_checked", "_reloading", "_seen", "source")

    RECHECK = 0.05  # seconds

    def __init__(self, source: KeySource) -> None:
        self.source = source
        self._seen: object = None
        self._checked = 0.0
        self._by_hash: dict[bytes, KeyRecord] = {}
        self._reloading: asyncio.Future[None] | None = None
        self._away = False  # the last reload failed for the store's own trouble: said once

    async def load(self) -> None:
        """The first load, at start-up before the server accepts: a failure is raised."""
        self._seen = self.source.key_signature()
        self._by_hash = await self.source.load_keys()

    async def resolve(self, key: str) -> KeyRecord | None:
        h = digest(key)
        found = self._by_hash.get(h)
        now = time.monotonic()
        # An unknown key looks at once (it may have just been made); a known one at
        # most every RECHECK seconds (it may have been revoked).
        if found is None or now - self._checked >= self.RECHECK:
            self._checked = now
            if self.source.key_signature() != self._seen:
                await self._reload()
                found = self._by_hash.get(h)
        return found

    def __len__(self) -> int:
        return sum(1 for record in self._by_hash.values() if record.revoked_at is None)

    async def _reload(self) -> None:
        # One reload at a time; requests that see the same change wait for it.
        if self._reloading is None:
            self._reloading = asyncio.get_running_loop().create_future()
            try:
                seen = self.source.key_signature()
                try:
                    self._by_hash = await self.source.load_keys()
                    self._seen = seen
                except Exception as exc:  # keep the keys known so far (a cache while the store is away); retried
                    if not isinstance(exc, self.source.transient):
                        log.exception("could not reload the gateway keys from %s; keeping the ones loaded",
                                      self.source.where)
                    elif not self._away:  # the database away: said once, not on every look
                        self._away = True
                        log.error("could not reload the gateway keys from %s (%s: %s); keeping the ones loaded "
                                  "until it answers", self.source.where, type(exc).__name__, exc)
                else:
                    if self._away:
                        self._away = False
                        log.warning("gateway keys read again from %s", self.source.where)
            finally:
                self._reloading.set_result(None)
                self._reloading = None
        else:
            await asyncio.shield(self._reloading)
