"""The state stores a test runs on: `fresh_store` opens an empty one of each kind.

SQLite is a file in the test's folder; PostgreSQL a fresh database on the suite's own
throwaway server (tests/pgserver.py), migrated as `aiogw migrate` would. Tests that
hold on both stores take `params=STORES` and open theirs with `fresh_store`.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sqlite3
import urllib.parse
from collections.abc import AsyncIterator

from aiogw.store import make_store

STORES = ["sqlite", "postgresql"]


@contextlib.asynccontextmanager
async def fresh_store(request, tmp_path) -> AsyncIterator:
    """An empty store of the kind `request.param` names, opened; closed after."""
    if request.param == "sqlite":
        store = make_store(tmp_path / "state.db")
        await store.open()
    else:
        store = make_store(tmp_path / "state.db", request.getfixturevalue("pg_url"))
        await made_ready(store)
    try:
        yield store
    finally:
        await store.close()


def pg_state(url: str, variable: str = "AIOGW_TEST_DB_PASSWORD") -> tuple[str, dict[str, str]]:
    """A `[state]` table's lines for a PostgreSQL URL that holds its password, as an
    operator writes them (the URL bare, the password from the environment), and that
    environment."""
    parts = urllib.parse.urlsplit(url)
    bare = f"postgresql://{parts.username}@{parts.hostname}:{parts.port}{parts.path}"
    return f'url = "{bare}"\npassword = {{ env = "{variable}" }}\n', {variable: parts.password or ""}


async def made_ready(store) -> None:
    """The store opened as a gateway opens it, migrated first as `aiogw migrate` does."""
    if store.kind == "postgresql":
        await store.connect()
        await store.migrate()
        await store.close()
    await store.open()


async def dump_of(store) -> bytes:
    """Everything the store holds, as the bytes a backup would: SQLite's dump, pg_dump's."""
    if store.kind == "sqlite":
        conn = sqlite3.connect(store.path)
        try:
            return b"".join(line.encode("utf-8", "surrogateescape") for line in conn.iterdump())
        finally:
            conn.close()
    dump = shutil.which("pg_dump") or "pg_dump"
    proc = await asyncio.create_subprocess_exec(
        dump, "--data-only", "--inserts", store.url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out
