"""The throwaway PostgreSQL server: its roles, passwords, databases, stop and start."""

import asyncio
import os
from pathlib import Path

import asyncpg
import pytest

from tests.pgserver import PgError, PgNotFound, PgServer, find_bindir, pg_server_fixture, pg_url_fixture  # noqa: F401


async def fetchval(url: str, query: str, *args):
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


async def test_aiogw_connects_with_its_password(pg_server: PgServer) -> None:
    assert pg_server.url == f"postgresql://aiogw:{pg_server.password}@127.0.0.1:{pg_server.port}/aiogw"
    assert await fetchval(pg_server.url, "SELECT current_user || '@' || current_database()") == "aiogw@aiogw"
    assert await fetchval(pg_server.superuser_url, "SELECT current_setting('is_superuser')") == "on"


async def test_aiogw_is_least_privilege_but_owns_its_database(pg_url: str) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        role = await conn.fetchrow("SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user")
        assert tuple(role) == (False, False, False)
        owner = await conn.fetchval(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"
        )
        assert owner == "aiogw"
        await conn.execute("CREATE TABLE t (x int)")  # the owner may build its schema
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE DATABASE other")
    finally:
        await conn.close()


async def test_a_wrong_password_is_refused(pg_server: PgServer) -> None:
    wrong = pg_server.url.replace(pg_server.password, "not-" + pg_server.password)
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(wrong)
    nameless = pg_server.url.replace(f":{pg_server.password}@", "@")
    with pytest.raises((asyncpg.InvalidPasswordError, asyncpg.ClientConfigurationError)):
        await asyncpg.connect(nameless, passfile="/nonexistent")


async def test_two_databases_are_independent(pg_server: PgServer) -> None:
    first = await asyncio.to_thread(pg_server.create_database)
    second = await asyncio.to_thread(pg_server.create_database)
    try:
        assert first != second
        conn = await asyncpg.connect(first)
        try:
            await conn.execute("CREATE TABLE only_here (x int); INSERT INTO only_here VALUES (1)")
        finally:
            await conn.close()
        assert await fetchval(first, "SELECT count(*) FROM only_here") == 1
        assert await fetchval(second, "SELECT to_regclass('only_here')") is None
    finally:
        for url in (first, second):
            await asyncio.to_thread(pg_server.drop_database, url.rsplit("/", 1)[1])


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_stop_then_start_keeps_committed_data(pg_server: PgServer, pg_url: str, mode: str) -> None:
    conn = await asyncpg.connect(pg_url)
    await conn.execute("CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)")
    pid = pg_server.pid
    # A session open while it stops, as under load: the server ends it, no hang.
    await asyncio.to_thread(pg_server.stop, mode)
    assert pg_server.pid is None and not pg_server.running
    with pytest.raises((asyncpg.PostgresConnectionError, asyncpg.InterfaceError, ConnectionError)):
        await conn.fetchval("SELECT 1")
    await conn.close()
    with pytest.raises(OSError):
        await asyncpg.connect(pg_url)
    await asyncio.to_thread(pg_server.start)
    assert pg_server.pid not in (None, pid)
    assert await fetchval(pg_url, "SELECT x FROM kept") == 42


def test_database_names_are_checked(pg_server: PgServer) -> None:
    with pytest.raises(ValueError, match="database name"):
        pg_server.create_database("x; DROP DATABASE aiogw")


def test_a_stopped_server_says_so(pg_server: PgServer) -> None:
    server = PgServer(pg_server.bindir)
    with pytest.raises(PgError, match="not running"):
        server.create_database()


def test_a_server_of_its_own_is_removed_on_exit(pg_server: PgServer) -> None:
    with PgServer(pg_server.bindir) as server:
        folder, pid = server.folder, server.pid
        assert server.port != pg_server.port
        assert Path(folder, "data", "postmaster.pid").exists()
    assert server.pid is None and not Path(folder).exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_missing_bindir_says_what_to_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AIOGW_PG_BIN", str(tmp_path))
    with pytest.raises(PgNotFound, match="AIOGW_PG_BIN"):
        find_bindir()
