"""The finisher, recorder and writer on plain exchanges: storage, policies, faults, prune.

Exchanges go through the gateway's own end of an exchange (a real `Finisher` with a
`Recorder` and an `AuditWriter`, see `started`), or, where a test is about persisting
alone, their records straight to `AuditWriter.add`. The database's faults are real: a
second connection holding its write lock (`Locked`), or a trigger that makes inserts
fail (`tests.builders.refuse_writes`, `accept_writes`).
"""

import asyncio
import sqlite3

import orjson
import pytest

from aiogw.audit import spill, spool
from aiogw.audit.recorder import Recorder
from aiogw.audit.writer import AuditWriter
from aiogw.config import AuditSettings
from aiogw.exchange import Exchange
from aiogw.stage import CONTINUE, Refuse
from aiogw.store.sqlite import audit_read as queries
from tests.builders import (
    SYSTEM,
    accept_writes,
    close_writer,
    exchange,
    refuse_writes,
    started,
    turns,
    until,
    write,
    writer_on,
)

DAY = 86400.0


class Locked:
    """Another connection holding the database's write lock (`BEGIN EXCLUSIVE`): a
    transaction of the writer waits for it (its busy_timeout is 10 s, far past what a
    test holds it), as behind a slow disk or a long `aiogw audit prune`."""

    def __init__(self, path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("BEGIN EXCLUSIVE")

    def release(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def __enter__(self) -> "Locked":
        return self

    def __exit__(self, *exc) -> None:
        self.release()
        self.conn.close()


def stored(path) -> list[float]:
    """When each stored exchange started, in the order they were recorded."""
    return [r[0] for r in sqlite3.connect(path).execute("SELECT started FROM exchanges ORDER BY id")]


async def test_storage_grows_with_new_content_only(tmp_path):
    db = tmp_path / "s.db"
    history = turns(30)
    audit = await write(db, [exchange(1_000_000 + i, msgs) for i, msgs in enumerate(history)])
    assert audit.writer.written == 30
    conn = sqlite3.connect(db)
    # system once + "fix the parser" + 29 × (assistant, result) distinct messages
    assert conn.execute("SELECT count(*) FROM blobs").fetchone()[0] == 1 + 1 + 29 * 2
    raw = sum(len(orjson.dumps({"system": SYSTEM, "messages": m})) for m in history)
    stored_bytes = conn.execute("SELECT sum(length(data)) FROM blobs").fetchone()[0]
    assert stored_bytes < raw / 20
    row = queries.show(queries.connect(db), conn.execute("SELECT max(id) FROM exchanges").fetchone()[0])
    assert row["request"]["messages"] == history[-1] and row["request"]["system"] == SYSTEM
    assert (row["input_tokens"], row["cache_read_tokens"], row["output_tokens"]) == (10, 5, 2)
    assert row["request_id"] == "req_1"


async def test_metadata_policy_keeps_no_payloads(tmp_path):
    db = tmp_path / "m.db"
    await write(db, [exchange(1_000_000, [{"role": "user", "content": "secret stuff"}])], policy="metadata")
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM exchanges").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM payloads").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM blobs").fetchone()[0] == 0
    assert b"secret stuff" not in db.read_bytes()


async def test_prune_keeps_content_newer_records_still_use(tmp_path):
    db = tmp_path / "p.db"
    old = exchange(10 * DAY, [{"role": "user", "content": "shared opening"}])
    only_old = exchange(10 * DAY + 1, [{"role": "user", "content": "only in the old one"}])
    new = exchange(
        20 * DAY,
        [
            {"role": "user", "content": "shared opening"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "more"},
        ],
    )
    await write(db, [old, only_old, new])
    conn = queries.connect(db)
    deleted = queries.prune(conn, before=15 * DAY, batch=1)
    assert deleted == (2, 1)  # both old exchanges; of the content, only "only in the old one"
    (kept,) = queries.list_rows(conn, queries.Filters())
    shown = queries.show(conn, kept["id"])
    assert shown["request"]["messages"][0]["content"] == "shared opening"
    assert shown["request"]["system"] == SYSTEM


async def test_conversation_ids(tmp_path):
    db = tmp_path / "c.db"
    history = turns(3)
    await write(
        db,
        [exchange(1e6 + i, m) for i, m in enumerate(history)]
        + [exchange(2e6, [{"role": "user", "content": "another task"}]), exchange(3e6, history[0], "sess-9")],
    )
    rows = queries.list_rows(queries.connect(db), queries.Filters(), oldest_first=True)
    first = {r["conversation"] for r in rows[:3]}
    assert len(first) == 1 and rows[3]["conversation"] not in first and rows[4]["conversation"] == "sess-9"


async def test_an_unreadable_answer_still_leaves_its_record(tmp_path):
    db = tmp_path / "u.db"
    ex = exchange(1e6, [{"role": "user", "content": "hi"}])
    ex.response_body = b"\x1f\x8b not really gzip"
    ex.response_headers = {"Content-Encoding": "gzip"}
    audit = await write(db, [ex])
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM exchanges").fetchone()[0] == 1
    assert (audit.writer.written, audit.recorder.lost, audit.finisher.finished) == (1, 0, 1)


async def test_a_batch_retried_after_a_failed_write_stores_every_part(tmp_path):
    """The first commit fails (the database's own error, as for a full disk or a locked
    file) after the batch's rows and payloads went in: the batch's records are written
    again, and every message they refer to is in the database afterwards."""
    db = tmp_path / "s.db"
    audit = await started(db, AuditSettings(batch_size=3, flush_interval=0.001))
    await asyncio.to_thread(refuse_writes, db, "blobs")  # the last statements of a batch: its rows went in before, and are rolled back
    audit.end([exchange(1_000_000 + i, msgs) for i, msgs in enumerate(turns(6))])
    assert await until(lambda: audit.writer.write_errors == 1)
    # The writer waits 0.2 s before its second attempt: the writes are let in long before.
    await asyncio.to_thread(accept_writes, db)
    assert await until(lambda: audit.writer.written == 6)
    await audit.close()
    assert audit.writer.write_errors == 1 and audit.writer.written == 6

    def records() -> list[dict]:
        conn = queries.connect(db)
        try:
            return [queries.show(conn, ident) for (ident,) in conn.execute("SELECT id FROM exchanges").fetchall()]
        finally:
            conn.close()

    shown = await asyncio.to_thread(records)
    assert len(shown) == 6
    for record in shown:
        assert record["request"]["system"] == SYSTEM and record["request"]["messages"]  # every part found


async def test_records_the_database_cannot_take_wait_in_the_spool_and_are_stored_once_when_it_returns(tmp_path):
    """The database refuses every write (its own error, as when it is away) up to and
    through shutdown: every record is in the spool when close() returns, none lost. The
    next start replays them, in order, each stored once, and the spool's files go."""
    db = tmp_path / "s.db"
    settings = AuditSettings(batch_size=2, flush_interval=0.001)
    audit = await started(db, settings)
    refuse_writes(db, "exchanges")
    exchanges = [exchange(1_000_000 + i, msgs) for i, msgs in enumerate(turns(5))]
    audit.end(exchanges)
    await asyncio.wait_for(audit.close(), 30)
    writer = audit.writer
    assert (writer.spooled, writer.written, writer.lost, writer.spilled) == (5, 0, 0, 0)
    assert not writer.database_up and spool.path_for(db).exists()
    assert not spill.path_for(db).exists()

    accept_writes(db)
    again = await started(db, settings)  # a new gateway on the same state: it replays first
    assert not again.writer.database_up
    assert await until(lambda: again.writer.replayed == 5)
    await again.close()
    assert again.writer.database_up and again.writer.written == 5
    assert not spool.path_for(db).exists()
    conn = queries.connect(db)
    ids = [row[0] for row in conn.execute("SELECT id FROM exchanges ORDER BY id")]
    assert ids == sorted(ex.id for ex in exchanges)  # each once
    for ident in ids:
        assert queries.show(conn, ident)["request"]["system"] == SYSTEM  # every part stored with it
    conn.close()


class Flaky:
    """A store whose database is away until `up`: its writes fail with its own error."""

    transient = (ConnectionError,)
    where = "flaky"

    def __init__(self) -> None:
        self.up, self.stored = False, []

    async def write_batch(self, records, known):
        if not self.up:
            raise ConnectionError("the database is away")
        self.stored += [r.id for r in records]
        return {}


async def test_a_database_back_while_the_spool_could_not_be_written_is_said_up_again(tmp_path):
    """The database refuses a batch and the spool cannot take it (a full disk): the batch
    waits in memory; once the database takes it, the writer says the database is up."""
    db = tmp_path / "s.db"
    spool.path_for(db).symlink_to("/dev/full")
    store = Flaky()
    writer = AuditWriter(store, db, AuditSettings(batch_size=1, flush_interval=0.001))
    await writer.start()
    record = Recorder(AuditSettings()).build(exchange(1_000_000, turns(1)[0]))
    writer.add(record)
    writer.flush()
    assert await until(lambda: writer.write_errors >= 2 and not writer.database_up)
    assert writer.depth == 0 and not writer.settled  # the batch waits, taken out of the queue
    store.up = True
    assert await until(lambda: writer.database_up and writer.settled, within=15)
    await writer.close()
    assert store.stored == [record.id] and (writer.spooled, writer.lost, writer.spilled) == (0, 0, 0)


async def test_a_spool_replayed_twice_stores_each_record_once(tmp_path):
    """The gateway died after the database took a replayed batch and before the spool
    marked it: the batch is replayed again at the next start and stored once."""
    db = tmp_path / "s.db"
    settings = AuditSettings(batch_size=10, flush_interval=0.001)
    audit = await started(db, settings)
    refuse_writes(db, "exchanges")
    exchanges = [exchange(1_000_000 + i, msgs) for i, msgs in enumerate(turns(3))]
    audit.end(exchanges)
    await asyncio.wait_for(audit.close(), 30)
    accept_writes(db)
    kept = spool.path_for(db).read_bytes()
    again = await started(db, settings)
    assert await until(lambda: again.writer.replayed == 3)
    await again.close()
    spool.path_for(db).write_bytes(kept)  # as if the mark had never been written
    third = await started(db, settings)
    assert await until(lambda: third.writer.replayed == 3)
    await third.close()
    conn = queries.connect(db)
    assert tuple(conn.execute("SELECT count(*), count(DISTINCT id) FROM exchanges").fetchone()) == (3, 3)
    conn.close()


async def test_a_torn_last_batch_in_the_spool_is_cut_off_and_the_rest_replayed(tmp_path, caplog):
    db = tmp_path / "s.db"
    settings = AuditSettings(batch_size=1, flush_interval=0.001)
    audit = await started(db, settings)
    refuse_writes(db, "exchanges")
    audit.end([exchange(1_000_000 + i, msgs) for i, msgs in enumerate(turns(2))])
    await asyncio.wait_for(audit.close(), 30)
    accept_writes(db)
    path = spool.path_for(db)
    path.write_bytes(path.read_bytes() + b"AGS1\x00\x00\x10\x00partial")  # the process died while appending
    again = await started(db, settings)
    assert await until(lambda: again.writer.replayed == 2)
    await again.close()
    assert "ended in a torn batch (15 bytes, never acknowledged): cut off" in caplog.text
    assert not spool.path_for(db).exists()


async def test_migrate_remakes_an_older_databases_tables_and_keeps_every_record(tmp_path, capsys):
    """A database an aiogw from before schema versions made (payloads and blobs WITHOUT
    ROWID, no cost columns, no version) is refused by the gateway and the commands with
    the command to run, and `aiogw migrate` brings it to today's schema: every record
    reads back as before."""
    from aiogw.cli import main
    from aiogw.store.sqlite import audit_tables as store

    db = tmp_path / "state.db"
    await write(db, [exchange(1_000_000 + i, msgs, session="s-1") for i, msgs in enumerate(turns(40))])
    conn = queries.connect(db)
    before = {ident: queries.show(conn, ident) for (ident,) in conn.execute("SELECT id FROM exchanges")}
    blobs = conn.execute("SELECT count(*) FROM blobs").fetchone()[0]
    assert len(before) == 40 and blobs > 0  # the later turns are split into stored contents
    conn.close()
    # As an older aiogw left it: the two tables WITHOUT ROWID, no version table.
    conn = sqlite3.connect(db, isolation_level=None)
    for table, create in (("payloads", store._PAYLOADS), ("blobs", store._BLOBS)):
        conn.executescript(f"ALTER TABLE {table} RENAME TO old; {create} WITHOUT ROWID; "
                           f"INSERT INTO {table} SELECT * FROM old; DROP TABLE old;")
    conn.executescript("DROP TABLE aiogw_schema; VACUUM;")
    conn.close()

    config = tmp_path / "aiogw.toml"
    config.write_text(f'[state]\npath = "{db}"\n[[routes]]\nname = "anthropic"\ndialect = "anthropic"\n'
                      'upstream = "http://127.0.0.1:9"\ncredential = { env = "UNSET_FOR_THIS_TEST" }\n')
    assert await asyncio.to_thread(main, ["audit", "list", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "made by an aiogw from before schema versions" in err and "run `aiogw migrate --config" in err
    assert await asyncio.to_thread(main, ["migrate", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "remade payloads as a rowid table (40 rows copied)" in out and "schema version 1" in out
    assert "vacuumed" in out  # the old tables' pages are given back
    assert sqlite3.connect(db).execute("PRAGMA freelist_count").fetchone()[0] == 0

    conn = queries.connect(db)
    tables = dict(conn.execute("SELECT name, sql FROM sqlite_schema WHERE type = 'table'").fetchall())
    assert "WITHOUT ROWID" not in tables["payloads"] and "WITHOUT ROWID" not in tables["blobs"]
    assert "WITHOUT ROWID" in tables["exchanges"]  # narrow rows: it stays as it is
    assert "blobs_last_seen" in {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'index'")}
    assert conn.execute("SELECT count(*) FROM blobs").fetchone()[0] == blobs
    assert {ident: queries.show(conn, ident) for ident in before} == before
    conn.close()
    assert await asyncio.to_thread(main, ["migrate", "--config", str(config)]) == 0
    assert "the schema is up to date (version 1)" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["audit", "list", "--config", str(config)]) == 0


async def test_a_database_of_a_newer_aiogw_is_refused_and_not_migrated(tmp_path, capsys):
    from aiogw.cli import main

    db = tmp_path / "state.db"
    await write(db, [exchange(1_000_000, turns(1)[0])])
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO aiogw_schema VALUES (2, 0, 'from the future')")
    conn.commit()
    conn.close()
    config = tmp_path / "aiogw.toml"
    config.write_text(f'[state]\npath = "{db}"\n[[routes]]\nname = "anthropic"\ndialect = "anthropic"\n'
                      'upstream = "http://127.0.0.1:9"\ncredential = { env = "UNSET_FOR_THIS_TEST" }\n')
    for command in (["audit", "list"], ["migrate"]):
        assert await asyncio.to_thread(main, [*command, "--config", str(config)]) == 2
        err = capsys.readouterr().err
        assert "schema version 2, newer than this aiogw's (1)" in err and "upgrade aiogw" in err


async def test_a_token_count_past_sqlites_integers_is_clamped_and_said(tmp_path):
    """A provider's absurd token count (over SQLite's 64-bit integers) is clamped where
    the answer is read, said in the record's reason, and the whole batch is stored
    (records the database still refuses: tests/test_audit_hostile.py)."""
    db = tmp_path / "s.db"
    exchanges = [exchange(1_000_000 + i, msgs) for i, msgs in enumerate(turns(4))]
    answer = orjson.loads(exchanges[1].response_body)
    answer["usage"]["output_tokens"] = 2**63
    exchanges[1].response_body = orjson.dumps(answer)
    audit = await write(db, exchanges)
    rows = sqlite3.connect(db).execute("SELECT started, output_tokens, reason FROM exchanges ORDER BY started")
    assert list(rows) == [(1_000_000, 2, None), (1_000_001, 2**63 - 1, "usage past 64 bits, clamped: output"),
                          (1_000_002, 2, None), (1_000_003, 2, None)]
    writer = audit.writer
    assert (writer.written, audit.recorder.sanitized, writer.spilled, writer.write_errors) == (4, 1, 0, 0)


class FailingRecorder(Recorder):
    """A recorder with a bug past its own guard: `build` raises for the exchanges that
    started at one of `failing` (the finisher takes any recorder)."""

    def __init__(self, settings: AuditSettings, failing: set[float]) -> None:
        super().__init__(settings)
        self.failing = failing
        self.failures = 0

    def build(self, ex: Exchange):
        if ex.started in self.failing:
            self.failures += 1
            raise RuntimeError("a bug in the record builder")
        return super().build(ex)


def broken(ex: Exchange) -> Exchange:
    """An exchange a bug of ours left broken (its end on the clock is not a number): no
    fallback of the recorder can make a record of it, not even the row alone."""
    ex.t_end = "not a clock"
    return ex


async def test_an_exchange_no_fallback_can_record_costs_only_its_own_record(tmp_path, caplog):
    """Was: a batch that could not be built is kept and built again. Records are built
    one at a time now, each with its fallbacks (without its answer, without its
    request, the row alone): one that none of them can make is counted in the
    recorder's `lost` and logged, and the exchanges around it, in its batch, are stored."""
    db = tmp_path / "s.db"
    exchanges = [exchange(1_000_000 + i, msgs) for i, msgs in enumerate(turns(5))]
    broken(exchanges[2])
    audit = await write(db, exchanges)
    assert audit.recorder.lost == 1 and audit.recorder.sanitized == 0
    assert audit.writer.written == 4 and audit.writer.write_errors == 0 and audit.writer.lost == 0
    assert audit.finisher.finished == 5 and audit.finisher.idle
    assert "exchange (" in caplog.text and "could not be recorded at all" in caplog.text
    assert stored(db) == [1_000_000, 1_000_001, 1_000_003, 1_000_004]


async def test_a_fault_of_the_recorder_is_logged_and_the_finisher_goes_on(tmp_path, caplog):
    """Was also: a batch that could not be built is kept and built again. A recorder that
    raises past its own guard (a bug) must not stop the finisher's task: the fault is
    logged, the exchange counted finished, and the next ones are recorded and handed
    to the sinks."""
    db = tmp_path / "s.db"
    settings = AuditSettings(batch_size=3, flush_interval=0.001)
    recorder = FailingRecorder(settings, {1_000_001})
    seen: list[float] = []
    audit = await started(db, settings, recorder, sinks=[lambda ex: seen.append(ex.started)])
    audit.end([exchange(1_000_000 + i, msgs) for i, msgs in enumerate(turns(5))])
    await audit.close()
    assert recorder.failures == 1 and audit.finisher.finished == 5 and not audit.finisher.alive
    assert audit.writer.written == 4 and audit.writer.write_errors == 0
    assert "could not finish a anthropic messages exchange" in caplog.text and "its record is lost" in caplog.text and "a bug in the record builder" in caplog.text
    assert seen == [1_000_000 + i for i in range(5)]  # the sinks still see the one whose record was lost
    assert audit.finisher.lost == 1
    assert stored(db) == [1_000_000, 1_000_002, 1_000_003, 1_000_004]


async def test_an_exchange_that_cannot_be_recorded_at_shutdown_holds_neither_the_others_nor_the_exit(
    tmp_path, caplog
):
    """Was: a batch that never builds at shutdown is named and the gateway still exits.
    Nothing is given up at shutdown now: while the database is behind (a commit waits
    on its lock) and the gateway stops, an exchange that cannot be recorded is counted
    and logged, the finisher goes past it, and every record before and after it is
    committed once the database answers; close() returns."""
    db = tmp_path / "s.db"
    settings = AuditSettings(batch_size=2, flush_interval=60.0)  # batches by count, and at shutdown
    audit = await started(db, settings)
    exchanges = [exchange(1_000_000 + i, msgs) for i, msgs in enumerate(turns(5))]
    broken(exchanges[2])
    with Locked(db) as lock:
        audit.end(exchanges[:2])
        assert await until(lambda: audit.finisher.idle and audit.writer.depth == 0)  # its commit waits on the lock
        audit.end(exchanges[2:])
        closing = asyncio.ensure_future(audit.close())
        assert await until(lambda: audit.finisher.idle and audit.writer.depth == 2)  # past the broken one
        assert audit.writer.written == 0 and audit.recorder.lost == 1 and not closing.done()
        lock.release()  # the database answers as the gateway stops
        await asyncio.wait_for(closing, 10)
    assert audit.writer.written == 4 and audit.writer.depth == 0 and audit.finisher.depth == 0
    assert (audit.writer.write_errors, audit.writer.spilled, audit.writer.lost) == (0, 0, 0)
    assert "exchange (" in caplog.text and "could not be recorded at all" in caplog.text
    assert stored(db) == [1_000_000, 1_000_001, 1_000_003, 1_000_004]


def test_rows_go_in_as_few_multi_row_statements():
    from aiogw.store.sqlite import audit_tables as store

    conn = sqlite3.connect(":memory:")
    conn.executescript(store.SCHEMA)
    from aiogw.audit.record import COLUMNS

    zero = ("stream", "input_tokens", "output_tokens", "cache_write_tokens", "cache_read_tokens",
            "reasoning_tokens", "findings", "request_bytes", "response_bytes", "priced")  # NOT NULL

    def row(i: int) -> tuple:
        given = {"id": f"id{i:03d}", "started": float(i), "status": 200, "outcome": "ok"}
        return tuple(given.get(c, 0 if c in zero else None) for c in COLUMNS)

    rows = [row(i) for i in range(37)]
    statements = list(store.inserts(store.INSERT_EXCHANGE, rows))
    assert [len(params) // len(rows[0]) for _, params in statements] == [32, 4, 1]
    for sql, params in statements:
        conn.execute(sql, params)
    assert conn.execute("SELECT id, started FROM exchanges ORDER BY id").fetchall() == [
        (f"id{i:03d}", float(i)) for i in range(37)
    ]
    # Never past SQLite's parameter cap, however many rows a batch has.
    wide = list(store.inserts(store.INSERT_EXCHANGE, rows * 40))
    assert sum(len(p) for _, p in wide) == len(rows) * 40 * len(rows[0])
    assert max(len(p) for _, p in wide) <= 32766
    # A blob stored before keeps its data; only its last_seen rises.
    for sql, params in store.inserts(store.INSERT_BLOB, [(b"h1", b"\x00a", 1, 5.0), (b"h2", b"\x00b", 1, 5.0)]):
        conn.execute(sql, params)
    for sql, params in store.inserts(store.INSERT_BLOB, [(b"h1", b"\x00x", 1, 9.0), (b"h3", b"\x00c", 1, 9.0)]):
        conn.execute(sql, params)
    assert conn.execute("SELECT hash, data, last_seen FROM blobs ORDER BY hash").fetchall() == [
        (b"h1", b"\x00a", 9.0), (b"h2", b"\x00b", 5.0), (b"h3", b"\x00c", 9.0)
    ]
    assert list(store.inserts(store.INSERT_PAYLOAD, [])) == []
    # A record written again is kept as it was; a row that breaks another constraint
    # fails loudly instead of vanishing (so the writer retries and logs it).
    again = [(*row(3)[:1], 99.0, *row(3)[2:])]
    for sql, params in store.inserts(store.INSERT_EXCHANGE, again):
        conn.execute(sql, params)
    assert conn.execute("SELECT started FROM exchanges WHERE id = 'id003'").fetchone() == (3.0,)
    broken = [tuple(None if c == "priced" else v for c, v in zip(COLUMNS, row(99), strict=True))]
    with pytest.raises(sqlite3.IntegrityError, match="NOT NULL"):
        for sql, params in store.inserts(store.INSERT_EXCHANGE, broken):
            conn.execute(sql, params)


async def test_large_records_make_a_batch_by_bytes_not_by_count_or_time(tmp_path):
    """8 MiB of records waiting start a batch at once: large agent requests must not sit
    in memory until a count they never reach, or the flush interval, comes round."""
    settings = AuditSettings(batch_size=10_000, flush_interval=600.0)
    writer = await writer_on(tmp_path / "s.db", settings)
    recorder = Recorder(settings)
    for i in range(3):  # ~9 MB: past the 8 MiB a batch is made of
        big = [{"role": "user", "content": f"task {i} " + "x" * 3_000_000}]  # a record holds ~3 MB: its new message
        writer.add(recorder.build(exchange(1_000_000 + i, big)))
    async with asyncio.timeout(60):  # far below the 600 s flush interval: the batch came by bytes
        while writer.written < 3:
            await asyncio.sleep(0.01)
    assert writer.batches == 1 and writer.depth == 0 and writer.has_room
    await close_writer(writer)


def test_sessions_that_open_alike_hand_only_their_new_messages():
    """Two agent sessions, the same first message, turns interleaved: each turn's record
    hands the writer only its two new messages, as a lone conversation's would."""
    from aiogw.audit import record as rec

    memo = rec.PartsMemo()
    opening = {"role": "user", "content": "fix the failing tests"}
    histories = {"s-a": [opening], "s-b": [opening]}
    for turn in range(1, 8):
        for session, history in histories.items():
            history += [{"role": "assistant", "content": f"{session} step {turn}"},
                        {"role": "user", "content": f"{session} result {turn} " * 20}]
            record = rec.build(exchange(1_000_000 + turn, list(history), session=session), "full", memo)
            if turn > 1:
                assert [data for _, data in record.parts] == [
                    orjson.dumps(m, option=orjson.OPT_SORT_KEYS) for m in history[-2:]]


async def test_a_prune_beside_the_writer_never_loses_content_later_records_use(tmp_path):
    """The writer does not write again what it stored the same day, and only touched
    what it stored an earlier day: a prune in between (even `--before now`) left the
    next records referring to content that was gone."""
    import time

    db = tmp_path / "w.db"
    settings = AuditSettings(batch_size=1, flush_interval=0.001)
    writer = await writer_on(db, settings)
    recorder = Recorder(settings)

    async def written(ex):
        before = writer.written
        writer.add(recorder.build(ex))
        writer.flush()
        while writer.written == before:
            await asyncio.sleep(0.005)

    history = turns(3)
    conn = sqlite3.connect(db)
    # Content stored yesterday and used by nothing since is pruned; today's turn of the
    # same conversation must store it again.
    await written(exchange(time.time() - DAY, history[0], session="s"))
    assert queries.prune(conn, time.time())[1] > 0
    await written(exchange(time.time(), history[1], session="s"))
    # Content stored today outlives a prune up to now: the writer will not store it again.
    assert queries.prune(conn, time.time()) == (1, 0)
    await written(exchange(time.time(), history[2], session="s"))  # the next turn
    await written(exchange(time.time(), history[0], session="another"))  # another session, alike
    await close_writer(writer)
    read = queries.connect(db)
    shown = [queries.show(read, ident)["request"] for (ident,) in read.execute("SELECT id FROM exchanges")]
    assert len(shown) == 2  # the next turn and the other session
    for request in shown:
        assert "missing_blob" not in orjson.dumps(request).decode(), request
        assert request["system"] == SYSTEM


async def test_exchanges_become_records_while_a_commit_waits_and_no_more_than_the_bound(tmp_path):
    """What waits on the database is records, not exchanges (their bodies and parsed
    trees): while one transaction waits (another connection holds the lock), the
    finisher builds what arrives, up to two batches of records. Past that the
    exchanges stay queued in the finisher, where the back-pressure sees them. Once the
    database answers, every record goes in, in order."""
    db = tmp_path / "s.db"
    # Batches by count (2), never by the clock; six exchanges waiting saturate the finisher.
    settings = AuditSettings(batch_size=2, flush_interval=60.0, queue_size=6)
    audit = await started(db, settings)
    finisher, writer = audit.finisher, audit.writer
    exchanges = [exchange(1_000_000 + i, msgs) for i, msgs in enumerate(turns(12))]
    with Locked(db) as lock:
        audit.end(exchanges[:2])
        assert await until(lambda: finisher.idle and writer.depth == 0)  # the first batch's commit waits
        assert finisher.admit(Exchange("POST")) is CONTINUE
        audit.end(exchanges[2:])
        # Built while the commit waits: two batches of two; the other six stay exchanges.
        assert await until(lambda: not writer.has_room and finisher.depth == 12 - 2 - 2 * 2)
        await asyncio.sleep(0.05)  # and it stays so: the finisher waits for room
        assert (writer.depth, finisher.depth, writer.written) == (2 * 2, 6, 0)
        assert finisher.pending_bytes > 0 and isinstance(finisher.admit(Exchange("POST")), Refuse)
        lock.release()
        await audit.close()
    assert writer.written == 12 and writer.depth == 0 and finisher.depth == 0 and finisher.finished == 12
    assert stored(db) == [1_000_000 + i for i in range(12)]
    conn = queries.connect(db)
    last = conn.execute("SELECT max(id) FROM exchanges").fetchone()[0]
    assert queries.show(conn, last)["request"]["messages"] == turns(12)[-1]


async def test_built_records_are_bounded_by_the_bytes_they_hold_too(tmp_path):
    """Records of new conversations hold their serialised messages: while a transaction
    waits, the finisher stops building once the records waiting hold twice a batch's
    bytes (a batch is half of `queue_bytes` here), whatever their count, and the rest
    stay queued in the finisher (seen by the back-pressure)."""
    db = tmp_path / "s.db"
    settings = AuditSettings(batch_size=100, flush_interval=0.001, queue_bytes=1024 * 1024)
    audit = await started(db, settings)
    finisher, writer = audit.finisher, audit.writer

    def big() -> list[Exchange]:
        # Each its own conversation of ~200 KB: nothing the memo knows, all of it in parts.
        return [exchange(1_000_000 + i, [{"role": "user", "content": f"task {i} " + "x" * 200_000}])
                for i in range(12)]

    sizes = [record.size for record in map(Recorder(settings).build, big())]  # what each record holds
    exchanges = big()
    with Locked(db) as lock:
        audit.end(exchanges[:1])
        assert await until(lambda: finisher.idle and writer.depth == 0)  # its commit waits on the lock
        audit.end(exchanges[1:])
        assert await until(lambda: not writer.has_room and finisher.depth + writer.depth == 11)
        await asyncio.sleep(0.05)  # and it stays so: the finisher waits for room
        held = writer.depth
        assert 0 < held < 11 and finisher.depth == 11 - held and writer.written == 0
        # It stopped at the first record that took what waits to two batches' bytes.
        assert sum(sizes[1 : 1 + held]) >= settings.queue_bytes > sum(sizes[1:held])
        assert held < settings.batch_size  # by bytes, not by count
        lock.release()
        await audit.close()
    assert writer.written == 12 and finisher.finished == 12
