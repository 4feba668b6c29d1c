"""The writer and the queries on plain exchanges: storage, policies, prune."""

import asyncio
import sqlite3
import threading

import orjson
import pytest

from aiogw.audit import queries
from aiogw.audit import writer as writer_module
from aiogw.audit.writer import AuditWriter
from aiogw.config import AuditSettings
from aiogw.exchange import Exchange

DAY = 86400.0
SYSTEM = "You are a careful coding agent. " * 600  # past SPLIT_MIN: stored in parts


def exchange(started: float, messages: list, session: str | None = None) -> Exchange:
    body = {"model": "claude-sonnet-4-6", "max_tokens": 64, "system": SYSTEM, "messages": messages}
    ex = Exchange("POST")
    ex.started = started
    ex.route, ex.dialect, ex.endpoint, ex.path = "anthropic", "anthropic", "messages", "/v1/messages"
    ex.user, ex.key_id, ex.model, ex.status = "alice", "key_1", "claude-sonnet-4-6", 200
    ex.body = orjson.dumps(body)
    ex.json = body
    ex.session = session
    ex.response_headers = {"request-id": "req_1"}
    ex.response_body = orjson.dumps(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-6",
            "content": [{"type": "text", "text": "done"}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 10, "output_tokens": 2, "cache_read_input_tokens": 5},
        }
    )
    ex.t_first_byte = ex.t0
    ex.finish()
    return ex


def turns(n: int) -> list[list]:
    history, out = [{"role": "user", "content": "fix the parser"}], []
    for i in range(n):
        out.append(list(history))
        history += [{"role": "assistant", "content": f"step {i}"}, {"role": "user", "content": f"result {i} " * 50}]
    return out


async def write(path, exchanges, policy="full"):
    writer = AuditWriter(path, AuditSettings(policy=policy, batch_size=3, flush_interval=0.001))
    await writer.start()
    for ex in exchanges:
        writer.submit(ex)
    await writer.close()
    return writer


async def test_storage_grows_with_new_content_only(tmp_path):
    db = tmp_path / "s.db"
    history = turns(30)
    writer = await write(db, [exchange(1_000_000 + i, msgs) for i, msgs in enumerate(history)])
    assert writer.written == 30
    conn = sqlite3.connect(db)
    # system once + "fix the parser" + 29 × (assistant, result) distinct messages
    assert conn.execute("SELECT count(*) FROM blobs").fetchone()[0] == 1 + 1 + 29 * 2
    raw = sum(len(orjson.dumps({"system": SYSTEM, "messages": m})) for m in history)
    stored = conn.execute("SELECT sum(length(data)) FROM blobs").fetchone()[0]
    assert stored < raw / 20
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
    await write(db, [ex])
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM exchanges").fetchone()[0] == 1


async def test_a_batch_retried_after_a_failed_write_stores_every_part(tmp_path, monkeypatch):
    """The first commit fails (a full disk, a locked file): the batch's records are
    written again, and every message they refer to is in the database afterwards."""
    db = tmp_path / "s.db"
    writer = AuditWriter(db, AuditSettings(batch_size=3, flush_interval=0.001))
    await writer.start()
    real = writer_module._transaction
    failed = []

    def once_failing(conn, statements):  # in the database thread, as the real one
        if not failed:
            failed.append(1)
            conn.execute(*statements[0])  # a part of the batch is in before the failure
            conn.rollback()
            raise sqlite3.OperationalError("disk I/O error")
        return real(conn, statements)

    monkeypatch.setattr(writer_module, "_transaction", once_failing)
    for i, msgs in enumerate(turns(6)):
        writer.submit(exchange(1_000_000 + i, msgs))
    await writer.close()
    assert failed and writer.write_errors == 1 and writer.written == 6
    conn = queries.connect(db)
    for (ident,) in conn.execute("SELECT id FROM exchanges").fetchall():
        record = queries.show(conn, ident)
        assert record["request"]["system"] == SYSTEM and record["request"]["messages"]  # every part found


async def test_a_database_that_refuses_every_write_at_shutdown_leaves_a_spill_file(tmp_path, monkeypatch):
    """No record is lost even then: the batch that kept failing and everything still
    queued go to the spill file, one JSON row each."""
    db = tmp_path / "s.db"
    writer = AuditWriter(db, AuditSettings(batch_size=2, flush_interval=0.001))
    await writer.start()

    def refuse(conn, statements):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(writer_module, "_transaction", refuse)
    real_sleep = asyncio.sleep
    monkeypatch.setattr(asyncio, "sleep", lambda seconds: real_sleep(0))  # the retries' back-off
    for i, msgs in enumerate(turns(5)):
        writer.submit(exchange(1_000_000 + i, msgs))
    await writer.close()
    spill = db.with_name(db.name + ".audit-spill.jsonl")
    rows = [orjson.loads(line) for line in spill.read_bytes().splitlines()]
    assert writer.spilled == len(rows) == 5 and writer.written == 0
    assert sorted(r["started"] for r in rows) == [1_000_000 + i for i in range(5)]


async def test_migrate_remakes_an_older_databases_tables_and_keeps_every_record(tmp_path, capsys):
    """A database an older aiogw made (payloads and blobs WITHOUT ROWID) is remade in
    today's layout by `aiogw audit migrate`: every record reads back as before."""
    from aiogw.audit import store
    from aiogw.cli import main

    db = tmp_path / "state.db"
    old = store.SCHEMA.replace("    findings BLOB\n);", "    findings BLOB\n) WITHOUT ROWID;")
    old = old.replace("    last_seen REAL NOT NULL\n);", "    last_seen REAL NOT NULL\n) WITHOUT ROWID;")
    assert old.count("WITHOUT ROWID") == 3
    conn = sqlite3.connect(db)
    conn.executescript(old)
    conn.close()
    await write(db, [exchange(1_000_000 + i, msgs, session="s-1") for i, msgs in enumerate(turns(40))])
    conn = queries.connect(db)
    before = {ident: queries.show(conn, ident) for (ident,) in conn.execute("SELECT id FROM exchanges")}
    blobs = conn.execute("SELECT count(*) FROM blobs").fetchone()[0]
    assert len(before) == 40 and blobs > 0  # the later turns are split into stored contents
    conn.close()

    config = tmp_path / "aiogw.toml"
    config.write_text(f'[state]\npath = "{db}"\n[[routes]]\nname = "anthropic"\ndialect = "anthropic"\n'
                      'upstream = "http://127.0.0.1:9"\ncredential = { env = "UNSET_FOR_THIS_TEST" }\n')
    assert main(["audit", "migrate", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "remade payloads as a rowid table: 40 rows copied" in out and "`--vacuum` gives them back" in out
    # The old tables' pages stay free until a vacuum, which may come as a second step.
    assert sqlite3.connect(db).execute("PRAGMA freelist_count").fetchone()[0] > 0
    assert main(["audit", "migrate", "--config", str(config), "--vacuum"]) == 0
    out = capsys.readouterr().out
    assert "already as this aiogw makes them" in out and "vacuumed:" in out
    assert sqlite3.connect(db).execute("PRAGMA freelist_count").fetchone()[0] == 0

    conn = queries.connect(db)
    tables = dict(conn.execute("SELECT name, sql FROM sqlite_schema WHERE type = 'table'").fetchall())
    assert "WITHOUT ROWID" not in tables["payloads"] and "WITHOUT ROWID" not in tables["blobs"]
    assert "WITHOUT ROWID" in tables["exchanges"]  # narrow rows: it stays as it is
    assert "blobs_last_seen" in {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'index'")}
    assert conn.execute("SELECT count(*) FROM blobs").fetchone()[0] == blobs
    assert {ident: queries.show(conn, ident) for ident in before} == before
    assert queries.migrate(conn) == {}  # once is enough
    conn.close()
    assert main(["audit", "migrate", "--config", str(config)]) == 0
    assert "already as this aiogw makes them" in capsys.readouterr().out


async def test_a_token_count_past_sqlites_integers_is_clamped_and_said(tmp_path):
    """A provider's absurd token count (over SQLite's 64-bit integers) is clamped where
    the answer is read, said in the record's reason, and the whole batch is stored
    (records the database still refuses: tests/test_audit_hostile.py)."""
    db = tmp_path / "s.db"
    exchanges = [exchange(1_000_000 + i, msgs) for i, msgs in enumerate(turns(4))]
    answer = orjson.loads(exchanges[1].response_body)
    answer["usage"]["output_tokens"] = 2**63
    exchanges[1].response_body = orjson.dumps(answer)
    writer = await write(db, exchanges)
    rows = sqlite3.connect(db).execute("SELECT started, output_tokens, reason FROM exchanges ORDER BY started")
    assert list(rows) == [(1_000_000, 2, None), (1_000_001, 2**63 - 1, "usage past 64 bits, clamped: output"),
                          (1_000_002, 2, None), (1_000_003, 2, None)]
    assert (writer.written, writer.sanitized, writer.spilled, writer.write_errors) == (4, 1, 0, 0)


async def test_a_batch_that_could_not_be_built_is_kept_and_built_again(tmp_path, monkeypatch):
    """A fault of the writer's own while building records (each has a fallback, so this
    is a bug) must not cost the batch: it goes back to the queue and is built again."""
    db = tmp_path / "s.db"
    real = AuditWriter._build
    failed = []

    def once_failing(self, ex):
        if not failed:
            failed.append(1)
            raise RuntimeError("a bug in the record builder")
        return real(self, ex)

    monkeypatch.setattr(AuditWriter, "_build", once_failing)
    writer = await write(db, [exchange(1_000_000 + i, msgs) for i, msgs in enumerate(turns(5))])
    assert failed and writer.write_errors == 1 and writer.written == 5
    assert sqlite3.connect(db).execute("SELECT count(*) FROM exchanges").fetchone()[0] == 5


async def test_a_batch_that_never_builds_at_shutdown_is_named_and_the_gateway_still_exits(tmp_path, monkeypatch, caplog):
    """At shutdown a batch the builder keeps failing on (five attempts) cannot hold the
    gateway: the exchanges still queued are given up, with an error naming how many,
    and the records built before it are still committed."""
    db = tmp_path / "s.db"
    real = AuditWriter._build
    gate, _ = _hold_transactions(monkeypatch)  # the first batch is still being committed
    failures = []

    def failing_on_the_third(self, ex):
        if ex.started == 1_000_002:
            failures.append(1)
            if len(failures) == 5:
                gate.set()  # the database answers as the writer gives up
            raise RuntimeError("a bug in the record builder")
        return real(self, ex)

    monkeypatch.setattr(AuditWriter, "_build", failing_on_the_third)
    real_sleep = asyncio.sleep
    monkeypatch.setattr(asyncio, "sleep", lambda seconds: real_sleep(0))  # the retries' back-off
    writer = AuditWriter(db, AuditSettings(batch_size=2, flush_interval=0.001))
    await writer.start()
    for i, msgs in enumerate(turns(5)):
        writer.submit(exchange(1_000_000 + i, msgs))
    await asyncio.wait_for(writer.close(), 10)
    assert writer.written == 2 and writer.write_errors == 5 and writer.depth == 0
    assert "audit: 3 exchanges could not be recorded at shutdown" in caplog.text
    started = [r[0] for r in sqlite3.connect(db).execute("SELECT started FROM exchanges ORDER BY id")]
    assert started == [1_000_000, 1_000_001]


def test_rows_go_in_as_few_multi_row_statements():
    from aiogw.audit import store

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


async def test_large_bodies_make_a_batch_by_bytes_not_by_count_or_time(tmp_path):
    """8 MiB of queued bodies start a batch at once: large agent requests must not sit in
    memory until a count they never reach, or the flush interval, comes round."""
    import asyncio

    writer = AuditWriter(tmp_path / "s.db", AuditSettings(batch_size=10_000, flush_interval=600.0))
    await writer.start()
    big = [{"role": "user", "content": "x" * 1_000_000}]  # ~1 MB body, counted 3 MB with its parsed tree
    for i in range(3):  # ~9.2 MiB counted: past the 8 MiB a batch is made of
        writer.submit(exchange(1_000_000 + i, big))
    async with asyncio.timeout(60):  # far below the 600 s flush interval: the batch came by bytes
        while writer.written < 3:
            await asyncio.sleep(0.01)
    assert writer.batches == 1 and writer.pending_bytes == 0
    await writer.close()


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
    writer = AuditWriter(db, AuditSettings(batch_size=1, flush_interval=0.001))
    await writer.start()

    async def written(ex):
        before = writer.written
        writer.submit(ex)
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
    await writer.close()
    read = queries.connect(db)
    shown = [queries.show(read, ident)["request"] for (ident,) in read.execute("SELECT id FROM exchanges")]
    assert len(shown) == 2  # the next turn and the other session
    for request in shown:
        assert "missing_blob" not in orjson.dumps(request).decode(), request
        assert request["system"] == SYSTEM


def _hold_transactions(monkeypatch) -> tuple[threading.Event, threading.Event]:
    """Every transaction of the writer waits in its thread until `gate` is set;
    `entered` is set once one is waiting."""
    gate, entered = threading.Event(), threading.Event()
    real = writer_module._transaction

    def held(conn, statements):
        entered.set()
        gate.wait(10)
        real(conn, statements)

    monkeypatch.setattr(writer_module, "_transaction", held)
    return gate, entered


async def test_exchanges_become_records_while_a_commit_waits_and_no_more_than_the_bound(tmp_path, monkeypatch):
    """What waits on the database is records, not exchanges (their bodies and parsed
    trees): while one transaction hangs, the writer builds what arrives, up to
    `_MAX_BUILT` batches. Past that the exchanges stay queued, where the back-pressure
    sees them. Once the database answers, every record goes in, in order."""
    db = tmp_path / "s.db"
    settings = AuditSettings(batch_size=2, flush_interval=0.001, queue_size=100)
    writer = AuditWriter(db, settings)
    await writer.start()
    gate, entered = _hold_transactions(monkeypatch)
    exchanges = [exchange(1_000_000 + i, msgs) for i, msgs in enumerate(turns(12))]
    for ex in exchanges[:2]:
        writer.submit(ex)
    await asyncio.to_thread(entered.wait, 10)  # the first batch's transaction hangs
    for ex in exchanges[2:]:
        writer.submit(ex)
    for _ in range(200):  # built while the commit waits: two batches of two
        if writer.depth == 12 - 2 - writer_module._MAX_BUILT * 2:
            break
        await asyncio.sleep(0.01)
    assert writer.depth == 12 - 2 - writer_module._MAX_BUILT * 2 and writer.written == 0
    gate.set()
    await writer.close()
    assert writer.written == 12 and writer.depth == 0
    conn = queries.connect(db)
    started = [r[0] for r in conn.execute("SELECT started FROM exchanges ORDER BY id")]
    assert started == [1_000_000 + i for i in range(12)]
    last = conn.execute("SELECT max(id) FROM exchanges").fetchone()[0]
    assert queries.show(conn, last)["request"]["messages"] == turns(12)[-1]


async def test_built_records_are_bounded_by_the_bytes_they_hold_too(tmp_path, monkeypatch):
    """Records of new conversations hold their serialised messages: while a transaction
    hangs, the writer stops building once they hold twice the batch's bytes, whatever
    their count, and the rest stay queued (seen by the back-pressure)."""
    db = tmp_path / "s.db"
    writer = AuditWriter(db, AuditSettings(batch_size=100, flush_interval=0.001, queue_bytes=1024 * 1024))
    await writer.start()
    gate, entered = _hold_transactions(monkeypatch)
    # Each its own conversation of ~200 KB: nothing the memo knows, all of it in parts.
    big = [exchange(1_000_000 + i, [{"role": "user", "content": f"task {i} " + "x" * 200_000}]) for i in range(12)]
    writer.submit(big[0])
    await asyncio.to_thread(entered.wait, 10)
    for ex in big[1:]:
        writer.submit(ex)
    for _ in range(200):
        if writer.depth and not writer._wake.is_set() and writer._idle:
            break
        await asyncio.sleep(0.01)
    held_bytes = writer._built_bytes
    assert writer._idle and 0 < writer.depth < 11 and writer.written == 0
    assert 2 * writer._batch_bytes <= held_bytes < 2 * writer._batch_bytes + 3 * 210_000
    gate.set()
    await writer.close()
    assert writer.written == 12
