"""Gateway keys in the SQLite state database, and the stamp file that says they changed.

The key commands write the `keys` table and then rewrite a small stamp file beside
the database; a gateway compares the stamp's stat() with what it last saw
(`signature`: no disk read, the inode is in the page cache) and reloads the table
only when it changed. So a new key works on its first request and a revoked one
stops working within `keys.KeyIndex.RECHECK`, with no restart and no polling task.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from aiogw.store.base import KeyRecord

SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    id TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    hash BLOB NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    revoked_at REAL
)
"""


def stamp_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".keys-stamp")


def signature(db_path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(stamp_path(db_path))
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


def connect(db_path: Path) -> sqlite3.Connection:
    """Open the state database for the key commands, creating it if needed."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db_path, timeout=10)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(SCHEMA)
    return conn


def create(db_path: Path, record: KeyRecord, digest: bytes) -> None:
    with _writing(db_path) as conn:
        conn.execute(
            "INSERT INTO keys (id, user, hash, created_at) VALUES (?, ?, ?, ?)",
            (record.id, record.user, digest, record.created_at),
        )


def revoke(db_path: Path, key_id: str, at: float) -> bool:
    """Revoke a key by its id; False when there is no such live key."""
    with _writing(db_path) as conn:
        cur = conn.execute("UPDATE keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (at, key_id))
        return cur.rowcount == 1


def list_keys(db_path: Path) -> list[KeyRecord]:
    if not db_path.exists():
        return []
    conn = connect(db_path)
    try:
        rows = conn.execute("SELECT id, user, created_at, revoked_at FROM keys ORDER BY created_at").fetchall()
    finally:
        conn.close()
    return [KeyRecord(*row) for row in rows]


def load(db_path: Path) -> dict[bytes, KeyRecord]:
    """Every key by its digest. Revoked keys too: a request with one is still refused,
    but audited under its user and key id, so an operator sees who goes on using it."""
    if not db_path.exists():
        return {}
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        rows = conn.execute("SELECT hash, id, user, created_at, revoked_at FROM keys").fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):  # no key was ever created
            return {}
        raise  # locked, unreadable: the caller keeps the keys it has and tries again
    finally:
        conn.close()
    return {bytes(h): KeyRecord(i, u, c, r) for h, i, u, c, r in rows}


class _writing:
    """A transaction on the keys table that rewrites the stamp after it commits."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path

    def __enter__(self) -> sqlite3.Connection:
        self.conn = connect(self.db_path)
        return self.conn

    def __exit__(self, exc_type: object, *_: object) -> None:
        try:
            if exc_type is None:
                self.conn.commit()
                stamp_path(self.db_path).write_text(f"{time.time_ns()} {os.getpid()}\n")
        finally:
            self.conn.close()
