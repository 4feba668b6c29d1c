"""`aiogw state copy` (aiogw.state_copy): a deployment moved whole, and resumed when cut.

A source gets a writer's history (agent conversations over three days written in
batches with the writer's `known` parts, so a part's last_seen is the first use of its
day, not the newest; small requests kept whole; a record under the metadata policy),
keys (one revoked), spend over two months and rate windows. After a copy the target
must read back the same: every `show`, `list_rows`, keys with their digests, every
spend row, and the content parts byte for byte with their last_seen. Also here: the
commands' one line when the PostgreSQL server is away (aiogw.cli_state).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import asyncpg
import orjson
import pytest

from aiogw import cli, cli_state, config, running, state_copy
from aiogw.audit import ids, record
from aiogw.audit.record import Record
from aiogw.exchange import Exchange
from aiogw.store import make_store
from aiogw.store.base import Filters, KeyRecord, SpendRow, StateUnavailable, WindowRow
from aiogw.store.postgres import connect
from tests.builders import exchange, turns
from tests.pgserver import PgServer, free_port, pg_server_fixture, pg_url_fixture  # noqa: F401

pytestmark = pytest.mark.timeout(120)

DAY = 86_400.0
PASSWORD_ENV = "AIOGW_TEST_COPY_PASSWORD"


# --- the ends of a copy -------------------------------------------------------------------


class End:
    """One database of a test: its store's arguments and its URL for the command."""

    def __init__(self, kind: str, tmp: Path, name: str, pg_server=None) -> None:
        self.kind = kind
        if kind == "sqlite":
            self.path, self.url, self.plain = tmp / f"{name}.db", None, None
            self.arg = f"sqlite://{self.path}"
        else:
            self.path, self.url = tmp / "unused.db", pg_server.create_database()
            self.plain = self.url.replace(f":{pg_server.password}@", "@")  # the command's: no password
            self.arg = self.plain
        self.password = pg_server.password if pg_server is not None else None

    def side(self, flag: str) -> state_copy.Side:
        if self.kind == "sqlite":
            return state_copy.side(flag, self.arg, None, {})
        return state_copy.side(flag, self.arg, PASSWORD_ENV, {PASSWORD_ENV: self.password})

    def argv(self, flag: str) -> list[str]:
        return [flag, self.arg] + ([f"{flag}-password-env", PASSWORD_ENV] if self.kind != "sqlite" else [])

    async def opened(self):
        store = make_store(self.path, self.url)
        if self.kind != "sqlite":
            await store.connect()
            await store.migrate()
        await store.open()
        return store


@pytest.fixture
def ends(request, tmp_path):
    """`ends("sqlite", "postgresql")`: a source and a target of those kinds, empty."""
    made: list[End] = []

    def make(*kinds: str) -> list[End]:
        server = request.getfixturevalue("pg_server") if "postgresql" in kinds else None
        for i, kind in enumerate(kinds):
            made.append(End(kind, tmp_path, f"end{i}", server))
        return made[-len(kinds):]

    yield make
    for end in made:
        if end.url is not None:
            server = request.getfixturevalue("pg_server")
            if server.running:
                server.drop_database(end.url.rsplit("/", 1)[1])


# --- a deployment's history ---------------------------------------------------------------


def small(started: float, text: str, user: str = "bob") -> Exchange:
    """An exchange whose request is kept whole (under SPLIT_MIN)."""
    ex = exchange(started, [{"role": "user", "content": text}])
    body = {"model": "gpt-4o", "max_tokens": 8, "messages": [{"role": "user", "content": text}]}
    ex.body, ex.json, ex.user, ex.route = orjson.dumps(body), body, user, "anthropic-b"
    return ex


def history(start: float) -> list[list[Record]]:
    """A writer's batches over three days: two agents' conversations, small requests, a
    record under the metadata policy."""
    batches = []
    for day in range(3):
        t = start + day * DAY
        batch = [record.build(exchange(t + 60 * i, messages, session=f"sess-{day % 2}"), "full")
                 for i, messages in enumerate(turns(4 + day))]
        batch += [record.build(small(t + 30 + i, f"question {day}.{i}"), "full") for i in range(5)]
        batch.append(record.build(small(t + 45, "kept without payloads"), "metadata"))
        batch.sort(key=lambda r: r.id)
        batches += [batch[: len(batch) // 2], batch[len(batch) // 2 :]]
    return batches


KEYS = [(KeyRecord("key_aaa", "alice", 1_700_000_000.5, None), b"a" * 32),
        (KeyRecord("key_bbb", "bob", 1_700_000_100.25, None), b"b" * 32),
        (KeyRecord("key_ccc", "carl", 1_700_000_200.0, None), b"c" * 32)]
SPEND = [SpendRow("alice", "2026-10-31", 1.25), SpendRow("alice", "2026-11-01", 0.5), SpendRow("bob", "2026-11-02", 3.0)]
WINDOWS = [WindowRow("alice", 10.0, 1_700_000_300.0, 5000.0, 1_700_000_300.0), WindowRow("bob", None, None, 7.5, 2.0)]


async def fill(store, start: float) -> int:
    """The history written as a gateway would; the number of records."""
    known: dict[bytes, int] = {}
    n = 0
    for batch in history(start):
        new = await store.write_batch(batch, known)
        known.update({h: int(seen // DAY) for h, (_, seen) in new.items()})
        n += len(batch)
    for key, digest in KEYS:
        await store.create_key(key, digest)
    assert await store.revoke_key("key_bbb", 1_700_000_400.75)
    await store.save_limits(SPEND, WINDOWS)
    return n


async def raw_parts(store) -> list[tuple]:
    """Every stored content part as its row: hash, data, size, last_seen."""
    sql = "SELECT hash, data, size, last_seen FROM blobs ORDER BY hash"
    if store.kind == "sqlite":
        conn = sqlite3.connect(store.path)
        try:
            return [(bytes(h), bytes(d), s, t) for h, d, s, t in conn.execute(sql)]
        finally:
            conn.close()
    conn = await asyncpg.connect(store.url)
    try:
        return [tuple(row) for row in await conn.fetch(sql)]
    finally:
        await conn.close()


async def snapshot(store) -> dict:
    """Everything a gateway and its commands read back."""
    rows = await store.list_rows(Filters(), -1)
    return {
        "rows": rows,
        "oldest": await store.list_rows(Filters(), -1, oldest_first=True),
        "shown": [await store.show(row["id"]) for row in rows],
        "keys": await store.list_keys(),
        "digests": await store.load_keys(),
        "limits": await store.load_limits(None),
        "parts": await raw_parts(store),
        "usage": await store.usage_rows("day", None, None, None),
    }


async def filled(end: End, start: float) -> tuple[dict, int]:
    store = await end.opened()
    try:
        n = await fill(store, start)
        return await snapshot(store), n
    finally:
        await store.close()


async def snapshot_of(end: End) -> dict:
    store = await end.opened()
    try:
        return await snapshot(store)
    finally:
        await store.close()


def start_time() -> float:
    return (time.time() // DAY - 6) * DAY + 3600


@pytest.fixture
def small_batches(monkeypatch):
    """Batches of a few records, so one copy takes several, and a part asked for again."""
    monkeypatch.setattr(state_copy, "FIRST_BATCH", 2)
    monkeypatch.setattr(state_copy, "MAX_BATCH", 5)
    monkeypatch.setattr(state_copy, "BATCH_BYTES", 4096)


# --- copying ------------------------------------------------------------------------------


@pytest.mark.parametrize(("source", "target"), [("sqlite", "postgresql"), ("postgresql", "sqlite"),
                                                ("sqlite", "sqlite"), ("postgresql", "postgresql")])
async def test_a_copy_reads_back_the_same(ends, small_batches, source: str, target: str) -> None:
    src, dst = ends(source, target)
    before, n = await filled(src, start_time())
    assert len(before["rows"]) == n and before["parts"] and len(before["keys"]) == 3
    # A part's last_seen is its first use of a day (the writer's `known`), not its newest use.
    newest = max(r["started"] for r in before["rows"])
    assert min(part[3] for part in before["parts"]) < newest
    lines: list[str] = []
    tally = await state_copy.copy(src.side("--from"), dst.side("--to"), say=lines.append, every=0)
    assert tally.records == n and tally.keys == 3 and tally.revoked == 1 and tally.spend == 3 and tally.windows == 2
    assert tally.last == before["oldest"][-1]["id"] and not tally.stopped
    assert any(line.startswith("copied ") and "/s), up to " in line for line in lines)  # progress
    assert "the target holds every record of the source up to" in tally.summary()
    after = await snapshot_of(dst)
    for what in before:
        assert after[what] == before[what], what
    # Again: nothing new, nothing twice.
    again = await state_copy.copy(src.side("--from"), dst.side("--to"), say=lines.append, every=0)
    assert again.records == 0 and again.resumed_after == tally.last
    assert await snapshot_of(dst) == before


@pytest.mark.parametrize(("source", "target"), [("sqlite", "postgresql"), ("postgresql", "sqlite")])
async def test_a_copy_cut_short_goes_on_where_it_stopped(ends, small_batches, source: str, target: str) -> None:
    src, dst = ends(source, target)
    before, n = await filled(src, start_time())
    ids_in_order = [row["id"] for row in before["oldest"]]
    first = await state_copy.copy(src.side("--from"), dst.side("--to"), max_records=7, say=lambda line: None)
    assert first.stopped and first.records == 7 and "--max-records" in first.summary()
    partial = await snapshot_of(dst)
    assert [row["id"] for row in partial["oldest"]] == ids_in_order[:7]  # a prefix, in id order
    assert partial["keys"] == before["keys"] and partial["limits"] == before["limits"]
    for shown in partial["shown"]:
        assert "missing_blob" not in str(shown)  # each record's parts came with it
    rest = await state_copy.copy(src.side("--from"), dst.side("--to"), say=lambda line: None)
    assert rest.resumed_after == ids_in_order[6] and rest.records == n - 7
    assert await snapshot_of(dst) == before


async def test_a_target_of_another_deployment_is_refused(ends) -> None:
    src, dst = ends("sqlite", "postgresql")
    await filled(src, start_time())
    other = await dst.opened()
    try:
        await other.write_batch([record.build(small(time.time() - 60, "another deployment's"), "full")], {})
    finally:
        await other.close()
    with pytest.raises(state_copy.CopyRefused, match=r"holds records the source does not: its newest, .* is not in"):
        await state_copy.copy(src.side("--from"), dst.side("--to"), say=lambda line: None)
    after = await snapshot_of(dst)
    assert len(after["rows"]) == 1 and after["keys"] == [] and after["limits"] == ([], [])  # nothing written


async def test_a_key_of_another_deployment_is_refused(ends) -> None:
    src, dst = ends("sqlite", "sqlite")
    await filled(src, start_time())
    other = await dst.opened()
    try:
        await other.create_key(KeyRecord("key_aaa", "mallory", 1.0, None), b"m" * 32)
    finally:
        await other.close()
    with pytest.raises(state_copy.CopyRefused, match="holds another key of id key_aaa"):
        await state_copy.copy(src.side("--from"), dst.side("--to"), say=lambda line: None)
    assert (await snapshot_of(dst))["rows"] == []


async def test_a_revocation_made_since_a_copy_is_copied(ends) -> None:
    src, dst = ends("sqlite", "postgresql")
    await filled(src, start_time())
    await state_copy.copy(src.side("--from"), dst.side("--to"), say=lambda line: None)
    store = await src.opened()
    try:
        assert await store.revoke_key("key_ccc", 1_700_000_500.0)
        expected = await store.list_keys()
    finally:
        await store.close()
    await state_copy.copy(src.side("--from"), dst.side("--to"), say=lambda line: None)
    assert (await snapshot_of(dst))["keys"] == expected


async def test_a_database_a_gateway_uses_is_refused(ends, monkeypatch) -> None:
    src, dst = ends("sqlite", "sqlite")
    await filled(src, start_time())
    for end, flag in ((src, "--from"), (dst, "--to")):
        gateway = running.Gateway(4242, end.path, "/etc/aiogw/aiogw.toml", "/")
        monkeypatch.setattr(running, "running", lambda gateway=gateway: [gateway])
        with pytest.raises(state_copy.CopyRefused, match=f"{flag}: the gateway of pid 4242 uses .*: stop it first"):
            await state_copy.copy(src.side("--from"), dst.side("--to"), say=lambda line: None)
    assert not dst.path.exists()


def test_the_forms_of_a_url() -> None:
    assert state_copy.side("--from", "sqlite:///var/lib/aiogw/state.db", None, {}).path == Path("/var/lib/aiogw/state.db")
    assert state_copy.side("--from", "sqlite:state.db", None, {}).path == Path("state.db")
    assert state_copy.side("--from", "sqlite:data/state.db", None, {}).path == Path("data/state.db")
    pg = state_copy.side("--to", "postgresql://gw@db:5432/aiogw", "PW", {"PW": "s3cret"})
    assert (pg.url, pg.password, pg.path) == ("postgresql://gw@db:5432/aiogw", "s3cret", None)
    assert "s3cret" not in repr(pg)
    assert state_copy.side("--to", "postgres:///aiogw?host=/run/postgresql", None, {}).password is None
    for text, said in [("sqlite:", "cannot read"), ("sqlite:///", "cannot read"), ("state.db", "cannot read"),
                       ("postgresql://gw@db/aiogw?password=x", "holds a password")]:
        with pytest.raises(ValueError, match=said):
            state_copy.side("--to", text, None, {})
    with pytest.raises(ValueError, match="a SQLite database takes no password"):
        state_copy.side("--to", "sqlite:x.db", "PW", {"PW": "x"})


def test_what_the_postgresql_store_says_of_its_failures() -> None:
    where = "postgresql://gw@db.internal:5432/aiogw"
    gone = connect.failure(asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
                           where)
    assert gone is not None and gone.startswith(f"the PostgreSQL state database {where} failed during the command: ")
    assert "the connection closed under it" in gone and gone.endswith("then run the command again")
    closed = connect.failure(asyncpg.InterfaceError("cannot call Connection.fetch(): connection is closed"), where)
    assert closed is not None and "the connection closed under it" in closed
    refused = connect.failure(asyncpg.InsufficientPrivilegeError("permission denied for table exchanges"), where)
    assert refused is not None and "the server said: permission denied for table exchanges" in refused
    assert "run the command again" not in refused
    assert "the connection was refused" in connect.failure(ConnectionRefusedError(111, "refused"), where)
    for ours in (BrokenPipeError(), ValueError("a bug"), KeyError("x"),
                 asyncpg.InterfaceError("the pool is closing")):  # the command's own, or a bug: not the store's
        assert connect.failure(ours, where) is None
    assert make_store(Path("x.db")).failure(ConnectionRefusedError()) is None  # SQLite's errors: aiogw.cli's


# --- the command --------------------------------------------------------------------------


def command(*argv: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "aiogw", "state", "copy", *argv], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})
    assert "Traceback" not in done.stderr, done.stderr
    return done


def many(start: float, n: int) -> list[Record]:
    """`n` small records a second apart, made fast: one record's row and payload under new ids."""
    model = record.build(small(start, "the same question, asked many times"), "full")
    out = []
    for i in range(n):
        at = start + i
        ident = ids.new_id(at)
        row = (ident, at, *model.row[2:])
        out.append(Record(ident, row, (ident, *model.payload[1:]), [], at))
    return out


async def pg_count(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("SELECT count(*) FROM exchanges")
    except asyncpg.UndefinedTableError:
        return 0
    finally:
        await conn.close()


def test_a_copy_killed_half_way_resumes_with_no_record_twice(ends) -> None:
    src, dst = ends("sqlite", "postgresql")
    n = 20_000

    async def make() -> None:
        store = await src.opened()
        try:
            records = many(start_time(), n)
            for i in range(0, n, 1000):
                await store.write_batch(records[i : i + 1000], {})
        finally:
            await store.close()

    asyncio.run(make())
    env = {**os.environ, PASSWORD_ENV: dst.password}
    proc = subprocess.Popen([sys.executable, "-m", "aiogw", "state", "copy", *src.argv("--from"), *dst.argv("--to")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 60
        while asyncio.run(pg_count(dst.url)) == 0 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    stored = asyncio.run(pg_count(dst.url))
    assert 0 < stored < n, "the kill did not land half-way"
    done = command(*src.argv("--from"), *dst.argv("--to"), env={PASSWORD_ENV: dst.password})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("resumed after ") and f"copied {n - stored:,} records" in done.stdout
    assert asyncio.run(rows_of(dst)) == asyncio.run(rows_of(src))
    assert asyncio.run(pg_count(dst.url)) == n


async def rows_of(end: End) -> list[dict]:
    store = await end.opened()
    try:
        return await store.list_rows(Filters(), -1)
    finally:
        await store.close()


def test_bad_input_is_one_line_and_exit_2(ends, tmp_path, capsys, monkeypatch) -> None:
    src, dst = ends("sqlite", "postgresql")
    asyncio.run(filled(src, start_time()))
    url = dst.plain
    with_password = url.replace("aiogw@", "aiogw:hunter2@")
    wrong = {PASSWORD_ENV: "not-the-password"}
    cases = [
        (["--from", "mysql://x@y/z", "--to", src.arg], {}, "--from: cannot read 'mysql://x@y/z' as a state database"),
        (["--from", "sqlite://host/x.db", "--to", src.arg], {}, "names a host"),
        (["--from", f"sqlite://{tmp_path}/none.db", "--to", src.arg], {}, "--from: no state database at"),
        (["--from", src.arg, "--to", src.arg], {}, "--from and --to name the same database"),
        ([*src.argv("--from"), "--to", with_password], {}, "--to: the URL holds a password"),
        ([*src.argv("--from"), "--to", url, "--to-password-env", "AIOGW_UNSET_VAR"], {}, "AIOGW_UNSET_VAR is unset"),
        ([*src.argv("--from"), *dst.argv("--to")], wrong, "--to: cannot connect to the PostgreSQL state database"),
        ([*src.argv("--from"), "--to", url.rsplit(":", 1)[0] + f":{free_port()}/x"], {}, "connection was refused"),
    ]
    for argv, env, said in cases:
        with monkeypatch.context() as patch:
            for name, value in env.items():
                patch.setenv(name, value)
            code = cli.main(["state", "copy", *argv])
        err = capsys.readouterr().err
        assert code == 2, (argv, err)
        lines = [line for line in err.splitlines() if not line.startswith("aiogw: copying ")]
        assert len(lines) == 1 and said in lines[0], (argv, err)
        assert "hunter2" not in err and dst.password not in err


@pytest.mark.parametrize(("version", "said"), [(0, "schema version 0; this aiogw needs version 1"),
                                               (2, "this aiogw is older than the database's schema")])
def test_a_target_of_another_schema_is_refused(ends, capsys, monkeypatch, version: int, said: str) -> None:
    src, dst = ends("sqlite", "postgresql")
    asyncio.run(filled(src, start_time()))

    async def mark() -> None:
        await (await dst.opened()).close()
        conn = await asyncpg.connect(dst.url)
        try:
            await conn.execute("UPDATE aiogw_schema SET version = $1", version)
        finally:
            await conn.close()

    asyncio.run(mark())
    monkeypatch.setenv(PASSWORD_ENV, dst.password)
    assert cli.main(["state", "copy", *src.argv("--from"), *dst.argv("--to")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and err[1].startswith("aiogw: --to: ") and said in err[1], err


def test_an_empty_postgresql_target_is_migrated_by_the_copy(ends) -> None:
    src, dst = ends("postgresql", "postgresql")
    _, n = asyncio.run(filled(src, start_time()))
    assert asyncio.run(pg_count(dst.url)) == 0  # no tables yet: the database only
    done = command(*src.argv("--from"), *dst.argv("--to"), env={PASSWORD_ENV: dst.password})
    assert done.returncode == 0, done.stderr
    assert "created the tables of schema version 1" in done.stderr
    assert done.stdout.count("\n") == 1 and f"copied {n} records" in done.stdout
    assert asyncio.run(snapshot_of(dst)) == asyncio.run(snapshot_of(src))


# --- the commands when the PostgreSQL server is away ---------------------------------------


def config_on(tmp_path: Path, url: str) -> Path:
    parts = urllib.parse.urlsplit(url)
    path = tmp_path / "aiogw.toml"
    path.write_text(f'[state]\nurl = "postgresql://{parts.username}@{parts.hostname}:{parts.port}{parts.path}"\n'
                    f'password = {{ env = "{PASSWORD_ENV}" }}\n'
                    '[[routes]]\nname = "a"\ndialect = "anthropic"\nupstream = "http://127.0.0.1:9"\n'
                    'credential = "client"\n')
    return path


def test_a_server_that_is_not_there_is_one_line(pg_server, tmp_path) -> None:
    url = f"postgresql://aiogw:{pg_server.password}@127.0.0.1:{free_port()}/aiogw"
    path = config_on(tmp_path, url)
    done = subprocess.run([sys.executable, "-m", "aiogw", "audit", "list", "--config", str(path)],
                          capture_output=True, text=True, timeout=30,
                          env={**os.environ, PASSWORD_ENV: pg_server.password})
    assert done.returncode == 2
    # What the error is, apart from the `state:` line and a warning of gateways running on
    # this machine with other databases (aiogw.running: a developer's own, say).
    lines = [line for line in done.stderr.splitlines()
             if not line.startswith(("state: ", "aiogw: warning: ", "  "))]
    assert len(lines) == 1 and "connection was refused" in lines[0], done.stderr
    assert pg_server.password not in done.stderr


@pytest.fixture(scope="module")
def lone_server():
    """A server of this module's own: stopping the suite's would cut every other user of
    it (the session gateway's key watch, which logs that it lost its connection)."""
    server = PgServer()
    server.start()
    yield server
    server.close()


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_a_server_gone_after_open_is_one_line(lone_server, tmp_path, caplog, mode: str) -> None:
    pg_server = lone_server
    pg_url = pg_server.create_database()
    asyncio.run(_migrate(pg_url))
    cfg = config.load(config_on(tmp_path, pg_url), env={PASSWORD_ENV: pg_server.password})

    async def work(store) -> list:
        await store.list_rows(Filters(), 1)  # the pool's connection is made
        await asyncio.to_thread(pg_server.stop, mode)
        return await store.list_rows(Filters(), 1)

    try:
        with pytest.raises(StateUnavailable) as caught:
            cli_state.run(cfg, work)
    finally:
        pg_server.start()
    said = str(caught.value)
    assert said.startswith(f"the PostgreSQL state database {cfg.state_url} failed during the command: ")
    assert "run the command again" in said and "\n" not in said
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    # The driver's own retries and the key watch's warning are not logged: the line says it.
    assert [r for r in caplog.records if r.name.startswith(("asyncpg", "aiogw.store"))] == []


async def _migrate(url: str) -> None:
    store = make_store(Path("unused.db"), url)
    await store.connect()
    try:
        await store.migrate()
    finally:
        await store.close()
