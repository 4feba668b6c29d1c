"""Hostile values never wedge the audit (issue 16, findings 1 and 7's record side).

Each test runs `aiogw serve` as a subprocess (as systemd does), sends what an attacker
or a broken provider sends, and then asserts the same four things: the odd exchange's
record is in the database (or, when it cannot be, counted and named in the log), a
later exchange is still recorded (the writer drains), SIGTERM exits 0, and the audit's
counter moved. The counters are read where an operator reads them: the gateway's
/metrics, once its records are committed and before it is stopped (what happens at
shutdown is read in its log).

The tests after them drive the recorder and the writer in-process, with records the
database cannot take and a database that refuses writes for real (a trigger).
"""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from aiogw.audit import record as rec
from aiogw.audit import spill, spool
from aiogw.audit.recorder import Recorder
from aiogw.config import AuditSettings
from aiogw.store.sqlite import audit_read as queries
from aiogw.store.sqlite import audit_tables as store
from tests.builders import SYSTEM, close_writer, exchange, nested_value, refuse_writes, started, turns, until, writer_on
from tests.served import Served

HI = [{"role": "user", "content": "hello"}]
# The audit's counters in /metrics, by the names the tests use.
COUNTERS = {
    "written": "aiogw_audit_records_written_total",
    "spilled": "aiogw_audit_spilled_total",
    "sanitized": "aiogw_audit_records_sanitized_total",
    "unstorable": "aiogw_audit_records_unstorable_total",
    "lost": "aiogw_audit_records_lost_total",
    "write_errors": "aiogw_audit_write_errors_total",
}


class Hostile(Served):
    """`Served` (`aiogw serve` as systemd runs it) whose anthropic route may go to another
    `upstream`."""

    def __init__(self, tmp_path: Path, fake_url: str, drain: float = 5, upstream: str | None = None) -> None:
        self.upstream = upstream
        super().__init__(tmp_path, fake_url, drain=drain)

    def write(self, extra: str = "", drain: float = 30, port: int | None = None, upstream: str | None = None) -> None:
        super().write(extra, drain=drain, port=port, upstream=upstream or self.upstream)

    @property
    def spill(self) -> Path:
        return self.state.with_name(self.state.name + ".audit-spill.jsonl")

    def counters(self, until: Callable[[dict], bool] = lambda counted: True) -> dict:
        """The audit's counters from /metrics, once `until` holds of them (a record's row
        is in the database a moment before the writer counts it)."""
        got: dict = {}

        def scraped() -> bool:
            text = httpx.get(f"{self.base}/metrics").raise_for_status().text
            values = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
            got.update({name: float(values[metric]) for name, metric in COUNTERS.items()})
            return until(got)

        try:
            self.wait(scraped, what="the audit's counters to settle")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last read: {got}") from None
        return got

    def rows(self, where: str = "1=1", *args) -> list[dict]:
        return self.audit(f"SELECT * FROM exchanges WHERE {where} ORDER BY id", *args)

    def recorded(self, where: str, *args) -> dict:
        """The one record matching `where`, once the writer committed it."""
        (row,) = self.wait(lambda: self.rows(where, *args), what=f"a record where {where}")
        return row

    def ask(self, marker: str, **kw) -> None:
        """An ordinary exchange, named by its model, answered and then recorded."""
        got = self.anthropic(**kw).messages.create(model=marker, max_tokens=8, messages=HI)
        assert got.content
        self.recorded("model = ?", marker)


@pytest.fixture
def hostile(gateway, tmp_path) -> Iterator:
    made: list[Hostile] = []

    def make(**kw) -> Hostile:
        made.append(Hostile(tmp_path, gateway.fake_url, **kw))
        return made[-1]

    yield make
    for s in made:
        s.kill()


def raw_http(port: int, request: bytes) -> bytes:
    """Bytes as they are on the wire (no client library cleans them); the answer's
    status line."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer.split(b"\r\n", 1)[0]


def stopped_cleanly(s: Hostile, retried: bool = False) -> str:
    """Stopped by SIGTERM with exit status 0; no traceback from the audit in its log but,
    when the database was made to fail (`retried`), those of the writer's retries; no
    exception left in a callback or a task."""
    assert s.stop() == 0
    err = s.stderr()
    for line in err.splitlines():
        if '"logger":"aiogw.audit"' in line and "Traceback" in line:
            assert retried and "records not written (attempt" in line, line
        assert "Exception in callback" not in line and "exception was never retrieved" not in line, line
    return err


ANSWER = (b'{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"odd"}],'
          b'"stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":2}}')
# orjson reads a number past 2^64 as a float, which the dialects make an int of any size.
HUGE = ANSWER.replace(b'"input_tokens":3,"output_tokens":2', b'"input_tokens":36893488147419103232,'
                      b'"output_tokens":9223372036854775808,"cache_read_input_tokens":1e300')


@pytest.fixture
def odd_upstream(gateway) -> Iterator[str]:
    """An Anthropic upstream on a raw socket, so it can send what aiohttp would not: a
    `request-id` that is not UTF-8 when asked with `x-odd-id: 1`, usage counts past 64
    bits with `x-huge: 1`, an ordinary answer otherwise."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                lines = head.decode("latin-1").lower().split("\r\n")
                length = next((int(line.split(":", 1)[1]) for line in lines if line.startswith("content-length:")), 0)
                await reader.readexactly(length)
                body = HUGE if "x-huge: 1" in lines else ANSWER
                request_id = b"req_\xff\xfe" if "x-odd-id: 1" in lines else b"req_1"
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nrequest-id: " + request_id
                             + b"\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def start() -> asyncio.Server:
        return await asyncio.start_server(serve, "127.0.0.1", 0)

    server = gateway.servers.run(start())
    yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    async def stop() -> None:
        server.close()
        await server.wait_closed()

    gateway.servers.run(stop())


@pytest.mark.timeout(120)
def test_header_bytes_that_are_not_utf8_are_recorded_and_the_audit_drains(hostile, odd_upstream):
    """A User-Agent of one byte 0xff (no key needed; the proxy refuses it at its entry)
    and an upstream's request-id with bytes that are not UTF-8 (relayed as they came):
    both records are stored, the bytes shown as escapes, and the exchanges after them too."""
    s = hostile(upstream=odd_upstream)
    status = raw_http(s.port, b"GET /llm-gateway/anthropic/v1/models HTTP/1.1\r\nHost: x\r\n"
                              b"User-Agent: \xff\r\nConnection: close\r\n\r\n")
    assert status.startswith((b"HTTP/1.1 400", b"HTTP/1.1 401"))
    got = s.anthropic().messages.create(model="odd-id", max_tokens=8, messages=HI, extra_headers={"x-odd-id": "1"})
    assert got.content[0].text == "odd"
    s.ask("after-the-odd-bytes")

    refused = s.recorded("status = ?", int(status.split()[1]))
    assert refused["user_agent"] == "\\xff"  # escaped by the proxy at its entry (untrusted.text)
    odd = s.recorded("model = 'odd-id'")
    assert odd["request_id"] == "req_\\xff\\xfe" and odd["outcome"] == "ok" and odd["output_tokens"] == 2
    assert odd["reason"] == "audit: request_id held bytes that are not UTF-8 (shown escaped)"
    counted = s.counters(until=lambda counted: counted["written"] == 3)
    assert counted["lost"] == counted["unstorable"] == counted["spilled"] == 0
    assert counted["sanitized"] == 1  # the request-id: the User-Agent came storable from the proxy
    stopped_cleanly(s)
    assert not s.spill.exists()


@pytest.mark.timeout(120)
def test_token_counts_past_64_bits_are_clamped_said_and_the_batch_kept(hostile, odd_upstream):
    s = hostile(upstream=odd_upstream)
    client = s.anthropic()
    for i in range(3):  # one batch: the exchanges before and after the huge one are kept with it
        got = client.messages.create(model=f"batch-{i}", max_tokens=8, messages=HI,
                                     extra_headers={"x-huge": "1"} if i == 1 else None)
        assert got.content[0].text == "odd"
    s.ask("after-the-huge-counts")

    big = s.recorded("model = 'batch-1'")
    top = 2**63 - 1
    assert (big["input_tokens"], big["output_tokens"], big["cache_read_tokens"]) == (top, top, top)
    assert big["reason"] == "usage past 64 bits, clamped: input, output, cache_read"
    assert [r["input_tokens"] for r in s.rows("model IN ('batch-0', 'batch-2')")] == [3, 3]
    counted = s.counters(until=lambda counted: counted["written"] == 4)
    assert counted["sanitized"] == 1 and counted["lost"] == counted["unstorable"] == counted["write_errors"] == 0
    stopped_cleanly(s)


@pytest.mark.timeout(120)
def test_a_spill_that_cannot_be_written_is_counted_logged_and_shutdown_still_exits(hostile):
    """The disk is full: first one record the database refuses on its own (it goes to
    the spill file, which cannot take it either), then the database refuses everything
    (the spool cannot take it either) and SIGTERM comes. Each lost record is counted (in /metrics, while the gateway runs)
    and named (in the log, the one lost at shutdown too); the writer keeps draining in
    between; the gateway exits 0."""
    s = hostile(drain=2)
    s.ask("before")
    s.spill.symlink_to("/dev/full")  # every write: ENOSPC
    spool.path_for(s.state).symlink_to("/dev/full")  # the spool's too
    db = sqlite3.connect(s.state, timeout=10, isolation_level=None)
    db.execute("CREATE TRIGGER poison BEFORE INSERT ON exchanges WHEN NEW.model = 'poison' "
               "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")
    s.anthropic().messages.create(model="poison", max_tokens=8, messages=HI)
    s.ask("after-the-lost-one")  # the writer drains past the record it could not keep
    s.wait(lambda: "could not be written to the spill file" in s.stderr(), what="the lost record's log line")
    # Now the database itself fails on every insert (a table its trigger writes is gone).
    db.executescript("DROP TRIGGER poison; CREATE TABLE gone (x); CREATE TRIGGER refuse BEFORE INSERT ON exchanges "
                     "BEGIN INSERT INTO gone VALUES (1); END; DROP TABLE gone;")
    db.close()
    s.anthropic().messages.create(model="at-shutdown", max_tokens=8, messages=HI)
    s.wait(lambda: "cannot be written (No space left on device); 1 records wait in memory" in s.stderr(),
           what="the database to refuse, and the spool")
    counted = s.counters(until=lambda counted: counted["write_errors"] >= 2)  # the poison's, then the database's
    assert counted["lost"] == 1 and counted["spilled"] == 0 and counted["unstorable"] == 1 and counted["written"] == 2
    err = stopped_cleanly(s, retried=True)
    assert [r["model"] for r in s.rows()] == ["before", "after-the-lost-one"]
    # Each lost record is named in the log by its id, which the exchange log line has too.
    ids = {line["model"]: line["id"] for line in map(orjson.loads, s.stdout().splitlines())}
    lost = [line for line in err.splitlines() if "could not be written to the spill file" in line]
    assert len(lost) == 2 and ids["poison"] in lost[0] and ids["at-shutdown"] in lost[1]
    assert "No space left on device" in lost[0]


@pytest.mark.timeout(120)
def test_a_request_nested_past_orjsons_depth_keeps_its_request_and_answer(hostile):
    """A body nested 400 deep parses (orjson reads 1,024 levels) though orjson cannot
    write it again (it writes 255): the record keeps the request, split into its parts
    as any other (`aiogw.jsonout` writes them), and the answer."""
    s = hostile()
    deep = nested_value(400, arrays=True)
    messages = [
        {"role": "user", "content": "pad " * 5_000},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "probe", "input": {"v": deep}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]},
    ]
    got = s.anthropic().messages.create(model="deep", max_tokens=8, messages=messages)
    assert got.content
    s.ask("after-the-deep-one")
    row = s.recorded("model = 'deep'")
    assert row["outcome"] == "ok" and row["reason"] is None and row["output_tokens"] > 0
    conn = queries.connect(s.state)
    try:
        shown = queries.show(conn, row["id"])
    finally:
        conn.close()
    assert shown["request"]["messages"][1]["content"][0]["input"]["v"] == deep
    assert shown["response"]["message"]["content"] == [{"type": "text", "text": got.content[0].text}]
    counted = s.counters(until=lambda counted: counted["written"] == 2)
    assert counted["lost"] == counted["unstorable"] == 0
    stopped_cleanly(s)


# --- the writer on plain exchanges: its own guard, whatever the proxy cleans first ----


def test_every_value_of_a_row_is_made_storable_and_the_record_says_what_was_mended():
    ex = exchange(1_000_000, [{"role": "user", "content": "x" * 20_000}], session="s-\udcfe\udcff")
    ex.user_agent = "agent/\udcc3\udca9 \udcff\ud800"  # é sent as two bytes; 0xff; a surrogate from nowhere
    ex.client = "1" * 5_000
    ex.cost = float("inf")
    ex.path = "/v1/messages\x00?x=1"  # NUL: SQLite keeps it, PostgreSQL's text cannot
    record = rec.build(ex, "full", rec.PartsMemo())
    row = dict(zip(rec.COLUMNS, record.row, strict=True))
    assert row["user_agent"] == "agent/é \\xff\\ud800" and row["conversation"] == "s-\\xfe\\xff"
    assert row["path"] == "/v1/messages\\x00?x=1" and "path held NUL characters (shown as \\x00)" in row["reason"]
    assert row["client"] == "1" * 1024 + "…[3976 more characters]" and row["cost_usd"] is None
    for said in ("conversation (the session id) held bytes", "user_agent held bytes that are not UTF-8",
                 "client cut to 1024 characters", "cost_usd was inf, left empty"):
        assert said in row["reason"]
    assert record.mended and record.parts  # split into stored parts all the same
    orjson.dumps(row)
    conn = sqlite3.connect(":memory:")
    conn.executescript(store.SCHEMA)
    conn.execute(next(store.inserts(store.INSERT_EXCHANGE, [record.row]))[0], record.row)


def test_a_request_too_deep_for_orjson_to_write_is_masked_under_the_redacted_policy():
    """Before `aiogw.jsonout`, such a request could not be copied to be masked and was
    dropped from the record; now it is masked and kept, and the secret is not stored."""
    ex = exchange(1_000_000, [])
    ex.body = (b'{"model":"m","max_tokens":8,"messages":[{"role":"user","content":"hi"},{"role":"user","content":'
               b'[{"type":"x","v":' + b"[" * 300 + b'"a secret"' + b"]" * 300 + b"}]}]}")
    ex.json = orjson.loads(ex.body)  # orjson reads 1,024 levels, writes 255
    path = ["messages", 1, "content", 0, "v", *[0] * 300]
    ex.findings = [{"id": "s", "category": "credential", "subcategory": "s", "place": "user", "action": "log",
                    "path": path, "start": 2, "end": 8}]
    record = rec.build(ex, "redacted")
    stored = rec.unsqueeze(record.payload[5]) if record.payload[5] is not None else b"".join(
        rec.unsqueeze(data) for _, data in record.parts)
    assert b"secret" not in stored and b"[REDACTED:s]" in stored
    assert record.payload[6] is not None  # the answer is kept
    assert record.row[rec.COLUMNS.index("reason")] is None


def poisoned(record: rec.Record, name: str, value: object) -> rec.Record:
    """The record with a value in its row that no database or JSON can take, as if the
    recorder had let it through: the writer must still isolate, spill and go on."""
    i = rec.COLUMNS.index(name)
    record.row = (*record.row[:i], value, *record.row[i + 1 :])
    return record


async def test_a_record_the_database_refuses_is_taken_out_of_its_batch_spilled_and_the_writer_drains(tmp_path):
    db = tmp_path / "s.db"
    settings = AuditSettings(batch_size=4, flush_interval=0.001)
    writer = await writer_on(db, settings)
    recorder = Recorder(settings)
    poisons = {1_000_001: ("user_agent", "\udcff"), 1_000_002: ("input_tokens", 2**70)}

    def record(i: int) -> rec.Record:
        made = recorder.build(exchange(1_000_000 + i, history[i]))
        return poisoned(made, *poisons[made.started]) if made.started in poisons else made

    history = turns(6)
    for i in range(4):  # one batch: two records in it cannot be stored
        writer.add(record(i))
    writer.flush()
    assert await until(lambda: writer.written == 2 and writer.unstorable == 2)
    for i in range(4, 6):  # and the writer goes on
        writer.add(record(i))
    writer.flush()
    assert await until(lambda: writer.written == 4)
    await asyncio.wait_for(close_writer(writer), 30)
    started_at = [r[0] for r in sqlite3.connect(db).execute("SELECT started FROM exchanges ORDER BY started")]
    assert started_at == [1_000_000, 1_000_003, 1_000_004, 1_000_005]
    lines = [orjson.loads(line) for line in spill.path_for(db).read_bytes().splitlines()]  # every line encodes
    assert [(r["started"], r["user_agent"], r["input_tokens"]) for r in lines] == [
        (1_000_001, "\\xff", 10), (1_000_002, None, 2**63 - 1)
    ]
    assert (writer.spilled, writer.lost, writer.write_errors) == (2, 0, 3)  # the batch, then each of the two
    # The contents the spilled records carried are stored all the same: the next turns,
    # which refer to them without carrying them, read back whole.
    conn = queries.connect(db)
    for (ident,) in conn.execute("SELECT id FROM exchanges"):
        shown = queries.show(conn, ident)
        assert shown["request"]["system"] == SYSTEM and len(shown["request"]["messages"]) % 2 == 1


async def test_a_spill_file_that_cannot_be_written_at_shutdown_costs_its_records_not_the_exit(tmp_path, caplog):
    """The database refuses every write (its own error, retried: a trigger writes a table
    that is gone) and the disk is full, for the spool and the spill file: close() still
    returns, after its five attempts, and every record is counted lost and named."""
    db = tmp_path / "s.db"
    spill.path_for(db).symlink_to("/dev/full")  # every write: ENOSPC
    spool.path_for(db).symlink_to("/dev/full")
    audit = await started(db, AuditSettings(batch_size=2, flush_interval=0.001))
    refuse_writes(db, "exchanges")
    exchanges = [exchange(1_000_000 + i, msgs) for i, msgs in enumerate(turns(5))]
    audit.end(exchanges)
    await asyncio.wait_for(audit.close(), 30)
    writer = audit.writer
    assert (writer.lost, writer.spilled, writer.written) == (5, 0, 0) and writer.write_errors >= 5
    assert audit.recorder.lost == 0 and audit.finisher.finished == 5
    assert "No space left on device" in caplog.text
    assert all(ex.id in caplog.text for ex in exchanges)
