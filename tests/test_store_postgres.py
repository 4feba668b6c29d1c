"""The PostgreSQL store (aiogw.store.postgres) against a real server.

Each test has a fresh, empty database on the suite's throwaway server (tests/pgserver.py),
owned by a role that is no superuser, as the gateway's would be. Records are built from
exchanges by the real `audit.record.build`; where a behaviour is the SQLite store's
(what a batch writes, what reads return), the same records go into both and the
answers are compared.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time

import asyncpg
import pytest

from aiogw.audit import ids, record
from aiogw.audit.record import Record
from aiogw.store import make_store
from aiogw.store.base import SCHEMA_VERSION, Filters, KeyRecord, SchemaError, SpendRow, StateUnavailable, WindowRow
from aiogw.store.parts import blob_cutoff
from aiogw.store.postgres import PostgresStore, audit_read, connect, partitions
from tests.builders import exchange, turns
from tests.pgserver import free_port, pg_server_fixture, pg_url_fixture  # noqa: F401

DAY = 86_400.0


async def migrated(url: str) -> PostgresStore:
    """A store on `url` with its tables made (as `aiogw migrate` does), opened."""
    store = PostgresStore(url)
    await store.connect()
    await store.migrate()
    await store.close()
    await store.open()
    return store


def conversation_records(start: float, n: int, session: str = "sess-1", policy: str = "full") -> list[Record]:
    """An agent's first `n` turns from `start`, a minute apart: each resends the history,
    so later turns refer to the parts earlier ones stored."""
    return [record.build(exchange(start + 60 * i, messages, session=session), policy)
            for i, messages in enumerate(turns(n))]


async def count(url: str, sql: str, *args) -> int:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def partition_days(url: str) -> dict[str, set[str]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT p.relname AS parent, c.relname AS child FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent "
            "JOIN pg_class c ON c.oid = i.inhrelid")
    finally:
        await conn.close()
    out: dict[str, set[str]] = {}
    for row in rows:
        out.setdefault(row["parent"], set()).add(row["child"].rsplit("_", 1)[1])
    return out


def ymd(t: float) -> str:
    return time.strftime("%Y%m%d", time.gmtime(t))


# --- the schema ---------------------------------------------------------------------------


async def test_migrate_an_empty_database_then_open(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    await store.connect()
    try:
        assert await store.schema_version() is None
        steps = await store.migrate()
        assert len(steps) == 1 and "schema version 1" in steps[0]
        assert await store.migrate() == []  # up to date: nothing to do
        assert await store.schema_version() == SCHEMA_VERSION
    finally:
        await store.close()
    await store.open()
    try:
        assert await store.list_rows(Filters(), 10) == []
        assert await store.list_keys() == []
    finally:
        await store.close()


async def test_two_migrations_at_once_take_turns(pg_url: str) -> None:
    stores = [PostgresStore(pg_url), PostgresStore(pg_url)]
    for store in stores:
        await store.connect()
    try:
        done = await asyncio.gather(*(store.migrate() for store in stores))
        assert sorted(len(steps) for steps in done) == [0, 1]
        assert await count(pg_url, "SELECT count(*) FROM aiogw_schema") == 1
    finally:
        for store in stores:
            await store.close()


async def test_open_refuses_an_empty_database(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    with pytest.raises(SchemaError, match=r"no aiogw tables yet: run `aiogw migrate --config"):
        await store.open()
    assert await count(pg_url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0  # nothing made


@pytest.mark.parametrize(("version", "said"), [
    (SCHEMA_VERSION - 1, r"schema version 0; this aiogw needs version 1: run `aiogw migrate --config"),
    (SCHEMA_VERSION + 1, r"this aiogw is older than the database's schema .*; upgrade aiogw"),
])
async def test_open_refuses_another_schema_version(pg_url: str, version: int, said: str) -> None:
    await (await migrated(pg_url)).close()
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("DELETE FROM aiogw_schema")
        await conn.execute("INSERT INTO aiogw_schema (version, step) VALUES ($1, 'by hand')", version)
    finally:
        await conn.close()
    store = PostgresStore(pg_url)
    with pytest.raises(SchemaError, match=said):
        await store.open()
    if version > SCHEMA_VERSION:  # nor will migrate touch a newer schema
        await store.connect()
        try:
            with pytest.raises(SchemaError, match="upgrade aiogw"):
                await store.migrate()
        finally:
            await store.close()


# --- connecting ---------------------------------------------------------------------------


def test_where_and_target_never_hold_the_password() -> None:
    url = "postgresql://aiogw:s3cr%40t@db.internal:6432/audit?sslmode=require&password=other"
    assert connect.without_password(url) == "postgresql://aiogw@db.internal:6432/audit?sslmode=require"
    target = connect.parse(url)
    assert (target.host, target.port, target.database, target.user) == ("db.internal", "6432", "audit", "aiogw")
    assert "s3cr" not in target.described() and "other" not in target.described()
    assert PostgresStore(url).where == "postgresql://aiogw@db.internal:6432/audit?sslmode=require"
    socket_url = "postgresql:///aiogw?host=/run/postgresql&user=gw&password=pw1"
    assert connect.without_password(socket_url) == "postgresql:///aiogw?host=%2Frun%2Fpostgresql&user=gw"
    assert connect.parse(socket_url).described() == "host /run/postgresql, port 5432, database aiogw, user gw"
    assert connect.parse("postgresql://[::1]:5433").described() == (
        "host ::1, port 5433, database the default (named as the user), user the default (the OS user)")


async def test_a_wrong_password_is_said_without_the_password(pg_server, pg_url: str) -> None:
    wrong = "not-the-Password-42"
    url = pg_url.replace(pg_server.password, wrong)
    for store in (PostgresStore(url), PostgresStore(pg_url.replace(f":{pg_server.password}@", "@"), password=wrong)):
        with pytest.raises(StateUnavailable) as caught:
            await store.open()
        said = str(caught.value)
        assert wrong not in said and pg_server.password not in said
        assert "refused the password of user aiogw" in said
        assert f"host 127.0.0.1, port {pg_server.port}" in said and "user aiogw" in said
        assert caught.value.__cause__ is None and caught.value.__suppress_context__


async def test_a_refused_port_and_a_missing_database_are_said(pg_server, pg_url: str) -> None:
    port = free_port()
    with pytest.raises(StateUnavailable, match=rf"port {port}.*connection was refused.*PostgreSQL runs") as caught:
        await PostgresStore(f"postgresql://aiogw:{pg_server.password}@127.0.0.1:{port}/aiogw").open()
    assert pg_server.password not in str(caught.value)
    missing = pg_url.rsplit("/", 1)[0] + "/no_such_db"
    with pytest.raises(StateUnavailable, match=r"database no_such_db.*no such database.*createdb"):
        await PostgresStore(missing).open()
    with pytest.raises(StateUnavailable, match="not a PostgreSQL URL"):
        await PostgresStore("mysql://aiogw@127.0.0.1/aiogw").open()


# --- the audit: writing -------------------------------------------------------------------


async def test_a_batch_reads_back_as_on_sqlite(pg_url: str, tmp_path) -> None:
    start = time.time() - 3 * DAY
    records = conversation_records(start, 6) + conversation_records(start + 30, 2, session="other")
    records += [record.build(exchange(start + 90, [{"role": "user", "content": "no payload"}]), "metadata")]
    sqlite = make_store(tmp_path / "state.db")
    await sqlite.open()
    pg = await migrated(pg_url)
    try:
        wrote = [await store.write_batch(records, {}) for store in (sqlite, pg)]
        assert wrote[0] == wrote[1] and wrote[1]  # the same parts chosen
        for f, limit, oldest in [(Filters(), 50, False), (Filters(), 3, True), (Filters(user="alice"), -1, False),
                                 (Filters(conversation="other"), 50, False), (Filters(model="claude-*"), 50, True),
                                 (Filters(since=start + 100, until=start + 250), 50, False)]:
            rows = [await store.list_rows(f, limit, oldest) for store in (sqlite, pg)]
            assert rows[0] == rows[1], f
            assert rows[1]
        last = records[5].id
        shown = [await store.show(last) for store in (sqlite, pg)]
        assert shown[0] == shown[1]
        assert shown[1]["request"]["messages"] == turns(6)[-1]
        assert (await pg.show(records[-1].id))["payloads"] is None  # the metadata policy
        assert await pg.show("01NOSUCHID0000000000000000") is None
        assert await pg.exists(last) and not await pg.exists("nope")
        for ident in ("sess-1", last):
            assert await sqlite.conversations_of(ident) == await pg.conversations_of(ident)
        talk = [await store.conversation("sess-1", "alice") for store in (sqlite, pg)]
        assert talk[0] == talk[1] and len(talk[1]) == 6
        exported = [[r async for r in store.export(Filters(user="alice"))] for store in (sqlite, pg)]
        assert exported[0] == exported[1] and len(exported[1]) == len(records)
        for by in ("user", "model", "route", "day"):
            assert await sqlite.usage_rows(by, None, None, None) == await pg.usage_rows(by, None, None, None)
        assert await sqlite.usage_rows("day", "alice", start, start + 100) == await pg.usage_rows(
            "day", "alice", start, start + 100)
    finally:
        await sqlite.close()
        await pg.close()


async def test_export_pages_by_key(pg_url: str, monkeypatch) -> None:
    monkeypatch.setattr(audit_read, "EXPORT_PAGE", 3)
    monkeypatch.setattr(audit_read, "EXPORT_CHUNK", 2)
    store = await migrated(pg_url)
    try:
        records = conversation_records(time.time() - DAY, 8)
        await store.write_batch(records, {})
        got = [r["id"] async for r in store.export(Filters())]
        assert got == [r.id for r in records]
        stream = store.export(Filters())
        first = await anext(stream)  # a consumer that stops early holds nothing open
        await stream.aclose()
        assert first["id"] == records[0].id
    finally:
        await store.close()


async def test_a_batch_written_twice_stores_each_record_once(pg_url: str) -> None:
    store = await migrated(pg_url)
    try:
        records = conversation_records(time.time() - DAY, 4)
        await store.write_batch(records, {})
        await store.write_batch(records, {})  # a retry after a lost commit, or a replayed spool
        await store.write_batch(records[1:3] + records[1:3], {})
        assert await count(pg_url, "SELECT count(*) FROM exchanges") == 4
        assert await count(pg_url, "SELECT count(*) FROM payloads") == 4
        assert len(await store.list_rows(Filters(), -1)) == 4
    finally:
        await store.close()


async def test_parts_are_stored_once_and_their_last_use_raised(pg_url: str) -> None:
    store = await migrated(pg_url)
    try:
        day1 = (time.time() // DAY - 5) * DAY + 3600
        first = conversation_records(day1, 3)
        new = await store.write_batch(first, {})
        blobs = await count(pg_url, "SELECT count(*) FROM blobs")
        assert blobs == len(new)
        known = {h: int(seen // DAY) for h, (_, seen) in new.items()}
        # The same conversation again the same day: nothing to write, all known today.
        again = conversation_records(day1 + 600, 3, session="sess-2")
        assert await store.write_batch(again, known) == {}
        # Two days later: every part written again with its data, last_seen raised, none added.
        later = conversation_records(day1 + 2 * DAY, 3, session="sess-3")
        rewritten = await store.write_batch(later, known)
        assert set(rewritten) == set(new)
        assert await count(pg_url, "SELECT count(*) FROM blobs") == blobs
        assert await count(pg_url, "SELECT min(last_seen) FROM blobs") >= day1 + 2 * DAY
        # An older record written late never lowers a part's last use.
        await store.write_batch(conversation_records(day1 - DAY, 1, session="sess-4"), {})
        assert await count(pg_url, "SELECT min(last_seen) FROM blobs") >= day1 + 2 * DAY
        # Its row may be gone (the spill file has it): its parts are stored alone.
        alone = conversation_records(day1 + 3 * DAY, 1, session="sess-5")[0]
        await store.write_batch([Record(alone.id, None, None, alone.parts, alone.started)], {})
        assert not await store.exists(alone.id)
        assert await count(pg_url, "SELECT count(*) FROM blobs WHERE last_seen = $1", alone.started) >= 1
    finally:
        await store.close()


async def test_partitions_are_made_for_each_day_a_batch_needs(pg_url: str) -> None:
    store = await migrated(pg_url)
    try:
        base = (time.time() // DAY - 10) * DAY + 7200
        days = [base, base + DAY, base + 4 * DAY]
        records = [record.build(exchange(t, [{"role": "user", "content": "hi"}]), "full") for t in days]
        await store.write_batch(records, {})
        made = await partition_days(pg_url)
        # Each day's partition, and the day after the newest, of both tables.
        assert made["exchanges"] == made["payloads"] == {ymd(t) for t in days} | {ymd(base + 5 * DAY)}
        # A second store (another gateway) finds them made and writes into them.
        other = await migrated(pg_url)
        try:
            more = [record.build(exchange(base + 60, [{"role": "user", "content": "hi"}]), "full")]
            await other.write_batch(more, {})
        finally:
            await other.close()
        assert len(await store.list_rows(Filters(), -1)) == 4
        assert (await store.list_rows(Filters(since=base + DAY - 1, until=base + DAY + 1), 5))[0]["id"] == records[1].id
    finally:
        await store.close()


async def test_two_gateways_making_the_same_days_at_once(pg_url: str) -> None:
    stores = [await migrated(pg_url), await migrated(pg_url)]
    try:
        base = (time.time() // DAY - 40) * DAY + 60
        batches = [[record.build(exchange(base + d * DAY + i, [{"role": "user", "content": "x"}]), "full")
                    for d in range(3)] for i in range(2)]
        await asyncio.gather(*(store.write_batch(batch, {}) for store, batch in zip(stores, batches, strict=True)))
        assert len(await stores[0].list_rows(Filters(), -1)) == 6
        assert len((await partition_days(pg_url))["exchanges"]) == 4
    finally:
        for store in stores:
            await store.close()


async def test_a_day_dropped_elsewhere_is_made_again(pg_url: str) -> None:
    """A gateway thinks a day made; a prune by another process dropped it meanwhile."""
    store, pruner = await migrated(pg_url), await migrated(pg_url)
    try:
        old = (time.time() // DAY - 20) * DAY + 60
        await store.write_batch([record.build(exchange(old, [{"role": "user", "content": "a"}]), "full")], {})
        assert (await pruner.prune(old + DAY))[0] == 1
        late = record.build(exchange(old + 5, [{"role": "user", "content": "b"}]), "full")
        await store.write_batch([late], {})
        assert await store.exists(late.id)
    finally:
        await store.close()
        await pruner.close()


async def test_what_postgresql_cannot_hold_is_mended_or_refused(pg_url: str) -> None:
    store = await migrated(pg_url)
    try:
        ex = exchange(time.time() - DAY, [{"role": "user", "content": "hi"}])
        ex.model = "claude\x00evil"
        mended = record.build(ex, "full")
        await store.write_batch([mended], {})
        row = (await store.list_rows(Filters(), 1))[0]
        assert row["model"] == "claude\\x00evil" and "model held NUL characters" in row["reason"]
        odd = record.build(exchange(time.time() - DAY, [{"role": "user", "content": "x"}]), "full")
        odd.row = ("not-an-id", *odd.row[1:])
        with pytest.raises(ValueError, match="not an aiogw id") as caught:
            await store.write_batch([odd], {})
        assert not isinstance(caught.value, store.transient)  # about the record: not retried
    finally:
        await store.close()


async def test_a_model_glob_matches_as_sqlite_glob_does(pg_url: str) -> None:
    models = ["claude-sonnet-4-6", "claude-opus", "gpt-4o", "gpt-4o-mini", "a.b", "a+b", "a]b", "a\\b", "A-Z",
              "x[y", "gemini-2.5-pro", "", "naïve", "tab\there", "100%", "a_b", "zed", "-x", "e", "d"]
    globs = ["claude-*", "*-4o*", "gpt-?o", "a.b", "a?b", "[ab].b", "[^g]*", "a]b", "a[]]b", "a\\b", "[A-Z]-Z",
             "[a-]*", "x[y", "*[[]*", "*.5-*", "naï*", "*", "?", "tab*", "100%", "a_b", "a%b", "[z-a]*", "[!a]*", "[]-a]*", "[^]]*", "[a-c-e]*", "[^-]*"]
    lite = sqlite3.connect(":memory:")
    conn = await asyncpg.connect(pg_url)
    try:
        for glob in globs:
            expected = {m for m in models if lite.execute("SELECT ? GLOB ?", (m, glob)).fetchone()[0]}
            pattern = audit_read.glob_regex(glob)
            got = set() if pattern is None else {m for m in models if await conn.fetchval("SELECT $1 ~ $2", m, pattern)}
            assert got == expected, glob
    finally:
        lite.close()
        await conn.close()


# --- the audit: pruning -------------------------------------------------------------------


async def test_prune_drops_whole_days_trims_the_edge_and_spares_todays_content(pg_url: str) -> None:
    store = await migrated(pg_url)
    try:
        today = time.time() // DAY * DAY
        old = today - 10 * DAY
        gone = conversation_records(old + 3600, 3, session="old") + conversation_records(old + DAY + 60, 2, "old2")
        edge_before = conversation_records(old + 2 * DAY + 60, 2, session="edge")  # 00:01 and 00:02
        edge_after = [record.build(exchange(old + 2 * DAY + 7200, [{"role": "user", "content": "kept"}]), "full")]
        # Today's turn uses content the old ones stored too (the system prompt, the first message).
        kept_today = conversation_records(today + 1, 1, session="today")
        new = {}
        for batch in (gone, edge_before, edge_after, kept_today):
            new.update(await store.write_batch(batch, {}))
        before = old + 2 * DAY + 3600  # 01:00 of the edge day
        expected_exchanges = len(gone) + len(edge_before)
        exchanges, blobs = await store.prunable(before)
        assert exchanges == expected_exchanges
        cutoff = blob_cutoff(before)
        unused = await count(pg_url, "SELECT count(*) FROM blobs WHERE last_seen < $1", cutoff)
        assert blobs == unused > 0
        assert await store.prune(before) == (expected_exchanges, unused)
        made = await partition_days(pg_url)
        assert ymd(old) not in made["exchanges"] and ymd(old + DAY) not in made["payloads"]  # dropped whole
        assert ymd(before) in made["exchanges"]  # the edge day stays, trimmed
        left = {r["id"] for r in await store.list_rows(Filters(), -1)}
        assert left == {r.id for r in edge_after + kept_today}
        assert await count(pg_url, "SELECT count(*) FROM payloads") == len(left)
        today_turn = await store.show(kept_today[0].id)
        assert "missing_blob" not in str(today_turn["request"])  # today's content spared
        edge_turn = await store.show(edge_after[0].id)
        assert "missing_blob" not in str(edge_turn["request"])  # content a later record used
        assert await store.prunable(before) == (0, 0)
        assert await store.prune(before) == (0, 0)
    finally:
        await store.close()


async def test_prune_never_takes_content_used_today(pg_url: str) -> None:
    store = await migrated(pg_url)
    try:
        now = time.time()
        records = conversation_records(max(now - 120, now // DAY * DAY), 2, session="now")
        await store.write_batch(records, {})
        assert (await store.prune(now + DAY))[0] == 2  # every record, by the id
        assert await count(pg_url, "SELECT count(*) FROM blobs") > 0  # their content stays today
    finally:
        await store.close()


async def test_an_interrupted_prune_is_finished_by_the_next(pg_url: str) -> None:
    store = await migrated(pg_url)
    try:
        old = (time.time() // DAY - 30) * DAY + 60
        await store.write_batch([record.build(exchange(old, [{"role": "user", "content": "a"}]), "full")], {})
        name = partitions.name("payloads", int(old // DAY))
        conn = await asyncpg.connect(pg_url)
        try:  # the prune stopped between its detach and its drop
            await conn.execute(f"ALTER TABLE payloads DETACH PARTITION {name}")
        finally:
            await conn.close()
        await store.prune(old + DAY)
        assert await count(pg_url, "SELECT to_regclass($1) IS NULL", name)
    finally:
        await store.close()


# --- keys ---------------------------------------------------------------------------------


async def poll_until(predicate, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while not predicate() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    return bool(predicate())


async def test_keys_made_listed_revoked_and_loaded(pg_url: str) -> None:
    store = await migrated(pg_url)
    try:
        a = KeyRecord("key_a", "alice", 1000.0, None)
        b = KeyRecord("key_b", "bob", 2000.0, None)
        await store.create_key(b, b"\x02" * 32)
        await store.create_key(a, b"\x01" * 32)
        assert await store.list_keys() == [a, b]  # oldest first
        assert await store.revoke_key("key_a", 3000.0)
        assert not await store.revoke_key("key_a", 4000.0)  # revoked already
        assert not await store.revoke_key("key_zz", 4000.0)
        loaded = await store.load_keys()
        assert loaded == {b"\x01" * 32: KeyRecord("key_a", "alice", 1000.0, 3000.0), b"\x02" * 32: b}
        with pytest.raises(asyncpg.UniqueViolationError):  # the same key twice
            await store.create_key(KeyRecord("key_c", "carl", 1.0, None), b"\x02" * 32)
    finally:
        await store.close()


async def test_the_key_signature_changes_when_another_process_changes_a_key(pg_url: str) -> None:
    gateway, command = await migrated(pg_url), await migrated(pg_url)
    try:
        seen = gateway.key_signature()
        await command.create_key(KeyRecord("key_a", "alice", 1.0, None), b"\x01" * 32)
        assert await poll_until(lambda: gateway.key_signature() != seen)
        seen = gateway.key_signature()
        assert await command.revoke_key("key_a", 2.0)
        assert await poll_until(lambda: gateway.key_signature() != seen)
        # A NOTIFY alone (another connection, no key change) is taken as one too.
        seen = gateway.key_signature()
        conn = await asyncpg.connect(pg_url)
        try:
            await conn.execute("NOTIFY aiogw_keys")
        finally:
            await conn.close()
        assert await poll_until(lambda: gateway.key_signature() != seen)
        # A change whose notification never came (sent while nobody listened) is seen by the poll.
        seen = gateway.key_signature()
        conn = await asyncpg.connect(pg_url)
        try:
            await conn.execute("UPDATE keys_version SET version = version + 1")
        finally:
            await conn.close()
        assert await poll_until(lambda: gateway.key_signature() != seen)
    finally:
        await gateway.close()
        await command.close()


# --- limits -------------------------------------------------------------------------------


async def test_limits_saved_and_loaded_by_month(pg_url: str) -> None:
    store = await migrated(pg_url)
    try:
        assert await store.load_limits("2026-11") == ([], [])
        spend = [SpendRow("alice", "2026-11-30", 1.5), SpendRow("alice", "2026-12-01", 2.0),
                 SpendRow("bob", "2026-11-02", 0.25)]
        windows = [WindowRow("alice", 3.0, 100.0, None, None), WindowRow("bob", None, None, 5000.0, 101.0)]
        await store.save_limits(spend, windows)
        # Spend is added to the day (each gateway adds what it charged), a user's windows replace theirs.
        await store.save_limits([SpendRow("alice", "2026-11-30", 0.25)], [WindowRow("alice", 2.0, 200.0, 1.0, 200.0)])
        got_spend, got_windows = await store.load_limits("2026-11")
        assert sorted(got_spend, key=lambda s: (s.user, s.day)) == [
            SpendRow("alice", "2026-11-30", 1.75), SpendRow("bob", "2026-11-02", 0.25)]
        assert sorted(got_windows, key=lambda w: w.user) == [
            WindowRow("alice", 2.0, 200.0, 1.0, 200.0), WindowRow("bob", None, None, 5000.0, 101.0)]
        assert (await store.load_limits("2026-12"))[0] == [SpendRow("alice", "2026-12-01", 2.0)]
    finally:
        await store.close()


# --- usage --------------------------------------------------------------------------------


async def test_usage_rows_group_and_count(pg_url: str) -> None:
    store = await migrated(pg_url)
    try:
        start = time.time() // DAY * DAY - 2 * DAY + 10
        records = conversation_records(start, 2) + conversation_records(start + DAY, 1)
        refused = exchange(start + 5, [{"role": "user", "content": "x"}])
        refused.outcome, refused.user, refused.cost, refused.priced = "refused", "bob", 0.5, False
        records.append(record.build(refused, "full"))
        await store.write_batch(records, {})
        by_user = await store.usage_rows("user", None, None, None)
        assert by_user == [("alice", 3, 0, 45, 15, 0, 6, 0.0, 0), ("bob", 1, 1, 15, 5, 0, 2, 0.5, 1)]
        by_day = await store.usage_rows("day", "alice", None, None)
        assert [(row[0], row[1]) for row in by_day] == [(time.strftime("%Y-%m-%d", time.gmtime(start)), 2),
                                                        (time.strftime("%Y-%m-%d", time.gmtime(start + DAY)), 1)]
        assert await store.usage_rows("model", None, start + DAY, None) == [("claude-sonnet-4-6", 1, 0, 15, 5, 0, 2,
                                                                             0.0, 0)]
    finally:
        await store.close()


# --- the server away ----------------------------------------------------------------------


async def test_a_batch_fails_transient_while_the_server_is_away_and_goes_in_after(
        pg_server, pg_url: str) -> None:
    store = await migrated(pg_url)
    try:
        records = conversation_records(time.time() - DAY, 2)
        await store.write_batch(records[:1], {})
        seen = store.key_signature()
        await asyncio.to_thread(pg_server.stop)
        try:
            with pytest.raises(store.transient):
                await store.write_batch(records[1:], {})
        finally:
            await asyncio.to_thread(pg_server.start)
        await store.write_batch(records, {})  # the pool connects again; the first is not stored twice
        assert [r["id"] for r in await store.list_rows(Filters(), -1, oldest_first=True)] == [r.id for r in records]
        # The key watch connected again, and says keys may have changed meanwhile.
        assert await poll_until(lambda: store.key_signature() != seen, within=10)
    finally:
        await store.close()


def test_an_id_and_its_partition_agree() -> None:
    for t in (0.0, 86_399.999, 86_400.0, 1_796_515_199.9995, time.time()):
        ident = ids.new_id(t)
        day = partitions.day_of(ident)
        low, high = partitions.bounds(day)
        assert low <= ident < high and day == int(t * 1000) // 86_400_000
    assert partitions.day_of_name(partitions.name("exchanges", 20_000)) == ("exchanges", 20_000)
