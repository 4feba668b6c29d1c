"""The gateway's state: keys, the audit trail, usage, spend and the limits' counters.

`base.py` is the interface every caller uses; `sqlite` is the embedded default (one
file, no server), `postgres` the database many gateways share. `make_store` picks one
from the config: `[state] url` for PostgreSQL, else the SQLite file at `[state] path`.
"""

from __future__ import annotations

from pathlib import Path

from aiogw.store.base import Store


def make_store(path: Path, url: str | None = None, password: str | None = None, timeout: float = 30.0) -> Store:
    """The store a config names, not yet opened (`await store.open()`). `timeout`: how long
    a statement of an audit batch may take on PostgreSQL before the batch is spooled."""
    if url is None:
        from aiogw.store.sqlite import SQLiteStore

        return SQLiteStore(path)
    from aiogw.store.postgres import PostgresStore  # asyncpg is imported only when used

    return PostgresStore(url, password=password, timeout=timeout)
