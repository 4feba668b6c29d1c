"""The audit tables in the SQLite state database.

`exchanges` is what lists and filters scan: one narrow row per exchange, keyed by a
time-sortable id, so `since`/`until` are key ranges and the newest rows come first
from the key itself. Payloads live beside it in `payloads`; message contents, system
prompts and tool definitions live once each in `blobs`, keyed by their hash, so a
conversation resent on every turn costs only its new messages plus 16 bytes a message.

A blob's `last_seen` is the start time of the newest exchange that referenced it: prune
deletes exchanges before a date, then exactly the blobs last seen before it.
"""

from __future__ import annotations

from aiogw.audit.record import COLUMNS, PAYLOAD_COLUMNS

SCHEMA = """
CREATE TABLE IF NOT EXISTS exchanges (
    id TEXT PRIMARY KEY,
    started REAL NOT NULL,
    duration_ms REAL,
    ttfb_ms REAL,
    user TEXT,
    key_id TEXT,
    route TEXT,
    dialect TEXT,
    endpoint TEXT,
    model TEXT,
    stream INTEGER NOT NULL,
    status INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    cache_read_tokens INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens INTEGER NOT NULL DEFAULT 0,
    findings INTEGER NOT NULL DEFAULT 0,
    request_id TEXT,
    client TEXT,
    user_agent TEXT,
    conversation TEXT,
    request_bytes INTEGER NOT NULL DEFAULT 0,
    response_bytes INTEGER NOT NULL DEFAULT 0,
    method TEXT,
    path TEXT,
    cost_usd REAL,
    priced INTEGER NOT NULL DEFAULT 1
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS exchanges_user ON exchanges (user, id);
CREATE INDEX IF NOT EXISTS exchanges_conversation ON exchanges (conversation, id);
CREATE INDEX IF NOT EXISTS exchanges_model ON exchanges (model, id);
CREATE INDEX IF NOT EXISTS exchanges_route ON exchanges (route, id);
CREATE INDEX IF NOT EXISTS exchanges_outcome ON exchanges (outcome, id);
CREATE INDEX IF NOT EXISTS exchanges_status ON exchanges (status, id);
CREATE INDEX IF NOT EXISTS exchanges_findings ON exchanges (id) WHERE findings > 0;
CREATE TABLE IF NOT EXISTS payloads (
    id TEXT PRIMARY KEY,
    request_meta BLOB,
    system_ref BLOB,
    tools_ref BLOB,
    message_refs BLOB,
    request_raw BLOB,
    response BLOB,
    raw_stream BLOB,
    findings BLOB
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blobs (
    hash BLOB PRIMARY KEY,
    data BLOB NOT NULL,
    size INTEGER NOT NULL,
    last_seen REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS blobs_last_seen ON blobs (last_seen);
"""

PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    # WAL + NORMAL: a commit is durable once the WAL is synced at checkpoint; a power
    # loss can drop the last transactions but never corrupts the database.
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=10000",
)

INSERT_EXCHANGE = f"INSERT OR IGNORE INTO exchanges ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
INSERT_PAYLOAD = (
    f"INSERT OR IGNORE INTO payloads ({', '.join(PAYLOAD_COLUMNS)}) VALUES ({', '.join('?' * len(PAYLOAD_COLUMNS))})"
)
INSERT_BLOB = (
    "INSERT INTO blobs (hash, data, size, last_seen) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (hash) DO UPDATE SET last_seen = max(last_seen, excluded.last_seen)"
)
TOUCH_BLOB = "UPDATE blobs SET last_seen = max(last_seen, ?) WHERE hash = ?"

# Columns added after a release, for databases made before them: (name, declaration).
ADDED_COLUMNS = (("cost_usd", "REAL"), ("priced", "INTEGER NOT NULL DEFAULT 1"))


def migrations(existing: set[str]) -> list[str]:
    """The ALTER TABLE statements an older `exchanges` table needs."""
    return [f"ALTER TABLE exchanges ADD COLUMN {name} {decl}" for name, decl in ADDED_COLUMNS if name not in existing]
