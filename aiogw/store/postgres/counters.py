"""Spend per user and UTC day, and the users' rate windows: the limits' counters.

Saved as upserts in one transaction: a spend row is what a gateway charged since it last
saved, added to its user's day (every gateway on the database adds its own), a user's
windows replace theirs.
"""

from __future__ import annotations

import datetime as dt

import asyncpg

from aiogw.store.base import SpendRow, WindowRow


async def load(pool: asyncpg.Pool, month: str | None) -> tuple[list[SpendRow], list[WindowRow]]:
    """The spend of `month` (YYYY-MM; None: of every day), every user's windows."""
    if month is None:
        first, after = dt.date.min, dt.date.max
    else:
        first = dt.date.fromisoformat(month + "-01")
        after = (first + dt.timedelta(days=32)).replace(day=1)
    async with pool.acquire() as conn:
        spend = await conn.fetch(
            'SELECT "user", day, usd FROM limit_spend WHERE day >= $1 AND day < $2 ORDER BY "user", day', first, after)
        windows = await conn.fetch('SELECT "user", rpm_level, rpm_at, tpm_level, tpm_at FROM limit_windows '
                                   'ORDER BY "user"')
    return ([SpendRow(r["user"], r["day"].isoformat(), r["usd"]) for r in spend],
            [WindowRow(*r) for r in windows])


async def save(pool: asyncpg.Pool, spend: list[SpendRow], windows: list[WindowRow]) -> None:
    if not spend and not windows:
        return
    async with pool.acquire() as conn, conn.transaction():
        if spend:
            await conn.executemany(
                'INSERT INTO limit_spend ("user", day, usd) VALUES ($1, $2, $3) '
                'ON CONFLICT ("user", day) DO UPDATE SET usd = limit_spend.usd + excluded.usd',
                [(s.user, dt.date.fromisoformat(s.day), s.usd) for s in spend])
        if windows:
            await conn.executemany(
                'INSERT INTO limit_windows ("user", rpm_level, rpm_at, tpm_level, tpm_at) VALUES ($1, $2, $3, $4, $5) '
                'ON CONFLICT ("user") DO UPDATE SET rpm_level = excluded.rpm_level, rpm_at = excluded.rpm_at, '
                "tpm_level = excluded.tpm_level, tpm_at = excluded.tpm_at",
                [(w.user, w.rpm_level, w.rpm_at, w.tpm_level, w.tpm_at) for w in windows])
