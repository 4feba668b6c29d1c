"""Spend and rate windows kept in the state database, behind the hot path.

The counters live in memory (`Ledger`); a task writes the users that changed once a
second, and once more at shutdown, so a restart neither resets a budget nor forgets a
window. Spend is stored per user and UTC day; a month is the sum of its days.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

import aiosqlite

from aiogw.limits.buckets import Bucket
from aiogw.limits.ledger import Ledger, day_of

log = logging.getLogger("aiogw.limits")

SCHEMA = """
CREATE TABLE IF NOT EXISTS limit_spend (
    user TEXT NOT NULL,
    day TEXT NOT NULL,
    usd REAL NOT NULL,
    PRIMARY KEY (user, day)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS limit_windows (
    user TEXT PRIMARY KEY,
    rpm_level REAL,
    rpm_at REAL,
    tpm_level REAL,
    tpm_at REAL
) WITHOUT ROWID;
"""
FLUSH_INTERVAL = 1.0


class LimitStore:
    def __init__(self, path: Path, ledger: Ledger) -> None:
        self.path = path
        self.ledger = ledger
        self._db: aiosqlite.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self.flushes = 0
        self.errors = 0

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self.path)
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.execute("PRAGMA busy_timeout=10000")
        await self._db.executescript(SCHEMA)
        await self._db.commit()
        await self._load(time.time())
        self._task = asyncio.create_task(self._run(), name="aiogw-limits-store")

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _load(self, now: float) -> None:
        assert self._db is not None
        today = day_of(now)
        month = today[:7]
        async with self._db.execute(
            "SELECT user, day, usd FROM limit_spend WHERE day >= ? AND day < ?", (month + "-01", month + "-32")
        ) as cur:
            for user, day, usd in await cur.fetchall():
                state = self.ledger.state(user, now)
                state.month_usd += usd
                if day == today:
                    state.day_usd += usd
        async with self._db.execute("SELECT user, rpm_level, rpm_at, tpm_level, tpm_at FROM limit_windows") as cur:
            for user, rpm_level, rpm_at, tpm_level, tpm_at in await cur.fetchall():
                state = self.ledger.state(user, now)
                if state.rpm is not None and rpm_at is not None:
                    state.rpm = Bucket(int(state.rpm.capacity), now, rpm_level, rpm_at)
                if state.tpm is not None and tpm_at is not None:
                    state.tpm = Bucket(int(state.tpm.capacity), now, tpm_level, tpm_at)
        for state in self.ledger.states.values():
            state.dirty = False
            state.closed = []

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            await self.flush()

    async def flush(self) -> None:
        """Write every user whose counters changed since the last flush."""
        if self._db is None:
            return
        spend, windows = [], []
        for user, state in self.ledger.states.items():
            if not state.dirty:
                continue
            state.dirty = False
            spend.extend((user, day, usd) for day, usd in state.closed)
            state.closed = []
            if state.day:
                spend.append((user, state.day, state.day_usd))
            rpm, tpm = state.rpm, state.tpm
            windows.append((
                user,
                rpm.level if rpm is not None else None, rpm.at if rpm is not None else None,
                tpm.level if tpm is not None else None, tpm.at if tpm is not None else None,
            ))
        if not windows:
            return
        try:
            await self._db.executemany(
                "INSERT INTO limit_spend (user, day, usd) VALUES (?, ?, ?) "
                "ON CONFLICT (user, day) DO UPDATE SET usd = excluded.usd", spend)
            await self._db.executemany(
                "INSERT OR REPLACE INTO limit_windows (user, rpm_level, rpm_at, tpm_level, tpm_at) "
                "VALUES (?, ?, ?, ?, ?)", windows)
            await self._db.commit()
            self.flushes += 1
        except Exception:
            self.errors += 1
            for user, *_ in windows:  # written next time
                self.ledger.states[user].dirty = True
            log.exception("limits: could not store spend and windows; retrying in %.0f s", FLUSH_INTERVAL)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()
        if self._db is not None:
            await self._db.close()
