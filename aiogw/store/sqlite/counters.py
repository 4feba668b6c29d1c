"""The limits' persisted counters on SQLite: spend per user and UTC day, rate windows."""

from __future__ import annotations

import sqlite3

from aiogw.store.base import SpendRow, WindowRow

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


def load(conn: sqlite3.Connection, month: str | None) -> tuple[list[SpendRow], list[WindowRow]]:
    """This month's spend (month: YYYY-MM; None: every day's) and every user's windows."""
    if month is None:
        rows = conn.execute("SELECT user, day, usd FROM limit_spend ORDER BY user, day")
    else:
        rows = conn.execute("SELECT user, day, usd FROM limit_spend WHERE day >= ? AND day < ? ORDER BY user, day",
                            (month + "-01", month + "-32"))
    spend = [SpendRow(*row) for row in rows]
    windows = [WindowRow(*row) for row in conn.execute(
        "SELECT user, rpm_level, rpm_at, tpm_level, tpm_at FROM limit_windows ORDER BY user")]
    return spend, windows


def save(conn: sqlite3.Connection, spend: list[SpendRow], windows: list[WindowRow]) -> None:
    """One transaction: each spend row is added to its user's day (every gateway on the
    state adds what it charged); a user's windows replace theirs."""
    try:
        conn.executemany(
            "INSERT INTO limit_spend (user, day, usd) VALUES (?, ?, ?) "
            "ON CONFLICT (user, day) DO UPDATE SET usd = usd + excluded.usd",
            [(s.user, s.day, s.usd) for s in spend])
        conn.executemany(
            "INSERT OR REPLACE INTO limit_windows (user, rpm_level, rpm_at, tpm_level, tpm_at) VALUES (?, ?, ?, ?, ?)",
            [(w.user, w.rpm_level, w.rpm_at, w.tpm_level, w.tpm_at) for w in windows])
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
