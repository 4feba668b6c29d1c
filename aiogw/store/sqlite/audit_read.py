"""Reading the SQLite audit trail back: list, show, conversation, export, prune, and
the records as stored for `aiogw state copy`.

Plain sqlite3 functions over one connection (`SQLiteStore` runs them in its database
thread); the gateway may be writing at the same time, which WAL allows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Container
from pathlib import Path
from typing import Any

from aiogw.audit import ids
from aiogw.audit.record import COLUMNS, PAYLOAD_COLUMNS, Record
from aiogw.store import decode, parts
from aiogw.store.base import Filters, StoredPart

_DAY = 86_400.0

_LIST_COLUMNS = ", ".join(COLUMNS)
_PAYLOAD_COLUMNS = ", ".join(PAYLOAD_COLUMNS)
_HASH = 16  # bytes of a part's digest; message_refs is their concatenation
# Hashes asked for in one statement: under SQLite's cap on a statement's parameters.
_HASHES_AT_ONCE = 10_000


def connect(path: Path) -> sqlite3.Connection:
    """A connection of one's own for reading (tests, the bench's query timings),
    configured as the store's: the store itself is what the gateway and commands use."""
    if not path.exists():
        raise FileNotFoundError(f"no state database at {path}")
    conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=10)
    conn.execute("PRAGMA busy_timeout=10000")
    configure(conn)
    return conn


def configure(conn: sqlite3.Connection) -> None:
    """Rows by column name; a stored text that is not UTF-8 is shown, not a crash."""
    conn.row_factory = sqlite3.Row
    conn.text_factory = _decoded


def _where(f: Filters) -> tuple[str, list[Any]]:
    clauses, args = [], []
    if f.since is not None:
        clauses.append("id >= ?")
        args.append(ids.bound(f.since))
    if f.until is not None:
        clauses.append("id < ?")
        args.append(ids.bound(f.until))
    for column in ("user", "route", "outcome", "conversation", "status"):
        value = getattr(f, column)
        if value is not None:
            clauses.append(f"{column} = ?")
            args.append(value)
    if f.model is not None:
        # A glob matches a range of models: read newest-first by key and filter ("+"
        # keeps SQLite off the model index, which would sort every matching row first).
        clauses.append("+model GLOB ?" if any(c in f.model for c in "*?[") else "model = ?")
        args.append(f.model)
    if f.findings:
        clauses.append("findings > 0")
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def list_rows(conn: sqlite3.Connection, f: Filters, limit: int = 50, oldest_first: bool = False) -> list[dict]:
    where, args = _where(f)
    order = "ASC" if oldest_first else "DESC"
    sql = f"SELECT {_LIST_COLUMNS} FROM exchanges{where} ORDER BY id {order} LIMIT ?"
    return [dict(row) for row in conn.execute(sql, [*args, limit])]


def conversations_of(conn: sqlite3.Connection, ident: str) -> list[tuple[str, str | None]]:
    """(conversation, user): the conversation of an exchange id, or a conversation id as
    given, once for each user with exchanges in it. A conversation is one user's: an
    agent's session id comes from the client, and two users' agents may send the same."""
    row = conn.execute("SELECT conversation, user FROM exchanges WHERE id = ?", (ident,)).fetchone()
    if row is not None:
        return [(row["conversation"], row["user"])] if row["conversation"] is not None else []
    users = conn.execute("SELECT DISTINCT user FROM exchanges WHERE conversation = ? ORDER BY user", (ident,))
    return [(ident, user) for (user,) in users]


def exists(conn: sqlite3.Connection, ident: str) -> bool:
    """Whether an exchange of this id is recorded."""
    return conn.execute("SELECT 1 FROM exchanges WHERE id = ?", (ident,)).fetchone() is not None


def conversation(conn: sqlite3.Connection, ident: str, user: str | None) -> list[dict]:
    """The exchanges of one user's conversation, oldest first."""
    rows = list_rows(conn, Filters(conversation=ident), limit=-1, oldest_first=True)
    return [row for row in rows if row["user"] == user]


def show(conn: sqlite3.Connection, ident: str) -> dict | None:
    """One exchange with its payloads: the request rebuilt, the answer, the findings
    (`store.decode`)."""
    row = conn.execute(f"SELECT {_LIST_COLUMNS} FROM exchanges WHERE id = ?", (ident,)).fetchone()
    if row is None:
        return None
    p = conn.execute("SELECT * FROM payloads WHERE id = ?", (ident,)).fetchone()
    wanted = sorted(set(decode.refs(p))) if p is not None else []
    blobs = {}
    for i in range(0, len(wanted), 30_000):  # below SQLite's cap on a statement's parameters
        chunk = wanted[i : i + 30_000]
        marks = ",".join("?" * len(chunk))
        blobs.update(conn.execute(f"SELECT hash, data FROM blobs WHERE hash IN ({marks})", chunk).fetchall())
    return decode.record(dict(row), p, blobs)


def ids_after(conn: sqlite3.Connection, f: Filters, after: str | None, limit: int) -> list[str]:
    """The next page of matching ids, oldest first, after `after` (keyset paging: an
    export of millions of records never holds all their ids)."""
    where, args = _where(f)
    if after is not None:
        where = (where + " AND" if where else " WHERE") + " id > ?"
        args.append(after)
    return [row[0] for row in conn.execute(f"SELECT id FROM exchanges{where} ORDER BY id LIMIT ?", [*args, limit])]


def records_after(conn: sqlite3.Connection, after: str | None, limit: int,
                  have: Container[bytes]) -> tuple[list[Record], list[StoredPart]]:
    """Up to `limit` records after the id `after` (None: from the first), in id order, as
    stored: rows and payloads as `write_batch` took them, and the parts they refer to
    that are stored and not in `have`, byte for byte (`aiogw state copy`)."""
    if after is None:
        rows = conn.execute(f"SELECT {_LIST_COLUMNS} FROM exchanges ORDER BY id LIMIT ?", (limit,)).fetchall()
    else:
        rows = conn.execute(f"SELECT {_LIST_COLUMNS} FROM exchanges WHERE id > ? ORDER BY id LIMIT ?",
                            (after, limit)).fetchall()
    if not rows:
        return [], []
    # The payloads of the ids' range: one index range, not a list of thousands of ids.
    payloads = {p[0]: tuple(p) for p in conn.execute(
        f"SELECT {_PAYLOAD_COLUMNS} FROM payloads WHERE id >= ? AND id <= ?", (rows[0][0], rows[-1][0]))}
    records = []
    wanted: dict[bytes, None] = {}  # in order of first use, each once
    for row in rows:
        payload = payloads.get(row[0])
        records.append(Record(row[0], tuple(row), payload, [], row[1]))
        if payload is not None:
            wanted.update((h, None) for h in _refs(payload) if h not in have)
    hashes = list(wanted)
    parts = []
    for i in range(0, len(hashes), _HASHES_AT_ONCE):
        chunk = hashes[i : i + _HASHES_AT_ONCE]
        marks = ",".join("?" * len(chunk))
        parts += [StoredPart(bytes(h), bytes(data), size, seen) for h, data, size, seen in conn.execute(
            f"SELECT hash, data, size, last_seen FROM blobs WHERE hash IN ({marks})", chunk)]
    return records, parts


def _refs(payload: tuple) -> list[bytes]:
    """The hashes of the parts a payload row (PAYLOAD_COLUMNS) refers to: none for a
    request kept whole (`request_meta` NULL), as `_request` reads it."""
    _, meta, system, tools, joined = payload[:5]
    if meta is None:
        return []
    out = [h for h in (system, tools) if h is not None]
    if joined is not None:
        out += [joined[i : i + _HASH] for i in range(0, len(joined), _HASH)]
    return out


def _decoded(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def prunable(conn: sqlite3.Connection, before: float) -> tuple[int, int]:
    """What `prune` would delete now: (exchanges, stored contents)."""
    exchanges = conn.execute("SELECT count(*) FROM exchanges WHERE id < ?", (ids.bound(before),)).fetchone()[0]
    blobs = conn.execute("SELECT count(*) FROM blobs WHERE last_seen < ?", (parts.blob_cutoff(before),)).fetchone()[0]
    return exchanges, blobs


def prune(conn: sqlite3.Connection, before: float, batch: int = 2000) -> tuple[int, int]:
    """Delete exchanges started before `before`, then blobs no newer record uses (and
    none used today, see `store.parts.blob_cutoff`).

    Works in short transactions of `batch` rows, so a running gateway's writer waits
    milliseconds, not the whole prune. Returns (exchanges, blobs) deleted.
    """
    bound = ids.bound(before)
    exchanges = blobs = 0
    while True:
        with conn:
            chosen = [r[0] for r in conn.execute("SELECT id FROM exchanges WHERE id < ? LIMIT ?", (bound, batch))]
            if not chosen:
                break
            marks = ",".join("?" * len(chosen))
            conn.execute(f"DELETE FROM payloads WHERE id IN ({marks})", chosen)
            conn.execute(f"DELETE FROM exchanges WHERE id IN ({marks})", chosen)
            exchanges += len(chosen)
    cutoff = parts.blob_cutoff(before)
    while True:
        with conn:
            cur = conn.execute(
                "DELETE FROM blobs WHERE hash IN (SELECT hash FROM blobs WHERE last_seen < ? LIMIT ?)", (cutoff, batch)
            )
            if cur.rowcount <= 0:
                break
            blobs += cur.rowcount
    return exchanges, blobs
