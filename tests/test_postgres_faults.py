"""A gateway on PostgreSQL when the database fails under it: real faults on a server of
the test's own (stopped and started, made read-only), driven by the official SDK.

What must hold: the agents are served throughout; every exchange is recorded once, none
lost, none twice, once the database is back; /readyz and /metrics say the state.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
import urllib.parse

import anthropic
import httpx
import pytest

from aiogw import config, keys
from aiogw.app import RUNTIME, start
from aiogw.fake_upstream import FakeConfig, FakeUpstream
from aiogw.store import make_store
from aiogw.store.base import Filters
from tests.conftest import FAKE_ROUTES, PROVIDER_KEYS, free_port, poll
from tests.pgserver import PgServer

HI = [{"role": "user", "content": "hi"}]

TOML = """
[server]
host = "127.0.0.1"
port = 0
[state]
path = "{state}"
url = "{url}"
password = {{ env = "AIOGW_TEST_DB_PASSWORD" }}
[audit]
flush_interval = 0.02
""" + FAKE_ROUTES


class PgGateway:
    """A gateway on a PostgreSQL server of its own, in the suite's server thread."""

    def __init__(self, servers, tmp_path) -> None:
        self.servers = servers
        self.pg = PgServer()
        self.pg.start()
        url = self.pg.create_database()
        parts = urllib.parse.urlsplit(url)
        self.fake = FakeUpstream(FakeConfig())
        fake_url = f"http://127.0.0.1:{servers.run(self.fake.start())}"
        path = tmp_path / "aiogw.toml"
        bare = f"postgresql://{parts.username}@{parts.hostname}:{parts.port}{parts.path}"
        # A [state] path whose folder is not there yet: the gateway makes it (the spool's).
        path.write_text(textwrap.dedent(TOML).format(state=tmp_path / "not-yet" / "local.db", url=bare, fake=fake_url))
        self.cfg = config.load(path, env={**PROVIDER_KEYS, "AIOGW_TEST_DB_PASSWORD": parts.password})
        self.store = make_store(self.cfg.state_path, self.cfg.state_url, self.cfg.state_password)
        servers.run(self.store.connect())
        servers.run(self.store.migrate())
        record, self.key, digest = keys.new_key("alice")
        servers.run(self.store.create_key(record, digest))
        self.runner, port = servers.run(start(self.cfg))
        self.base = f"http://127.0.0.1:{port}"
        runtime = self.runner.app[RUNTIME]
        self.writer = runtime.audit[1]
        self.finisher = runtime.parts.finisher

    def client(self) -> anthropic.Anthropic:
        return anthropic.Anthropic(api_key=self.key, base_url=f"{self.base}/llm-gateway/anthropic", max_retries=0)

    def ids(self) -> list[str]:
        """Every audit id stored, with repeats if any were stored twice."""
        rows = self.servers.run(self.store.list_rows(Filters(), 1_000_000))
        return [row["id"] for row in rows]

    def close(self) -> None:
        if not self.pg.running:
            self.pg.start()
        self.servers.run(self.runner.cleanup())
        self.servers.run(self.store.close())
        self.servers.run(self.fake.stop())
        self.pg.close()


@pytest.fixture
def pgw(servers, tmp_path):
    gw = PgGateway(servers, tmp_path)
    yield gw
    gw.close()


def ask(gw: PgGateway, text: str) -> None:
    client = gw.client()
    try:
        client.messages.create(model="claude-haiku-4-5", max_tokens=8, messages=[{"role": "user", "content": text}])
    finally:
        client.close()


def settled(gw: PgGateway) -> bool:
    return gw.finisher.idle and gw.writer.settled and gw.writer.database_up and not gw.writer.spool.pending


def test_the_server_stopped_under_load_and_started_again_loses_no_record_and_stores_none_twice(pgw):
    """Four agents keep asking while the server is stopped and, a moment later, started
    again: every request is answered, /readyz says where the records wait, and once the
    server is back every exchange is stored exactly once."""
    answered: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def agent() -> None:
        client = pgw.client()
        try:
            while not stop.is_set():
                client.messages.create(model="claude-haiku-4-5", max_tokens=8, messages=HI)
                answered.append(1)
        except BaseException as exc:  # said by the assertion below
            errors.append(exc)
        finally:
            client.close()

    agents = [threading.Thread(target=agent) for _ in range(4)]
    for t in agents:
        t.start()
    try:
        assert poll(lambda: len(answered) >= 20, 30)
        pgw.pg.stop()  # a fast shutdown: sessions cut, batches under way fail
        at_stop = len(answered)
        assert poll(lambda: len(answered) >= at_stop + 40, 30), "the agents were not served while it was down"
        ready = httpx.get(f"{pgw.base}/readyz").json()
        assert ready["status"] == "ready" and ready["audit"]["database"] == "away", ready
        assert ready["audit"]["spool_bytes"] > 0
        metrics = httpx.get(f"{pgw.base}/metrics").text
        assert "aiogw_audit_database_up 0" in metrics
        pgw.pg.start()
        at_start = len(answered)
        assert poll(lambda: len(answered) >= at_start + 20, 30)
    finally:
        stop.set()
        for t in agents:
            t.join(30)
    assert not errors, errors[:3]
    assert poll(lambda: settled(pgw), 60), (pgw.writer.database_up, pgw.writer.spool.pending)
    ids = pgw.ids()
    assert len(ids) == len(set(ids)) == len(answered)  # every exchange once: none lost, none twice
    assert pgw.writer.spooled > 0 and pgw.writer.replayed > 0 and pgw.writer.lost == 0
    ready = httpx.get(f"{pgw.base}/readyz").json()
    assert ready["audit"] == {"database": "up", "spool_bytes": 0}


def test_a_database_that_refuses_writes_keeps_the_records_in_the_spool_until_it_takes_them(pgw):
    """The server turns read-only (as a standby does after a failover): the gateway
    serves, its records wait in the spool, and they are stored once writes are taken."""
    ask(pgw, "before")
    assert poll(lambda: settled(pgw) and len(pgw.ids()) == 1, 10)
    pgw.pg.sql("ALTER ROLE aiogw SET default_transaction_read_only = on",
               "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'aiogw'")
    for i in range(5):
        ask(pgw, f"read-only {i}")
    assert poll(lambda: not pgw.writer.database_up and pgw.writer.spooled >= 5, 20)
    pgw.pg.sql("ALTER ROLE aiogw RESET default_transaction_read_only",
               "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'aiogw'")
    ask(pgw, "after")
    assert poll(lambda: settled(pgw), 30), (pgw.writer.database_up, pgw.writer.spool.pending)
    ids = pgw.ids()
    assert len(ids) == len(set(ids)) == 7


def test_a_gateway_keeps_its_keys_while_the_server_is_away_and_learns_a_revocation_when_it_returns(pgw):
    ask(pgw, "known")
    pgw.pg.stop()
    try:
        ask(pgw, "still served")  # the key was loaded: the gateway does not need the server for it
    finally:
        pgw.pg.start()
    (record,) = pgw.servers.run(pgw.store.list_keys())
    # The test's own store reconnects (its pool makes new connections once the server is back).
    assert poll(lambda: _revoked(pgw, record.id), 10)
    client = pgw.client()
    try:
        def refused() -> bool:
            try:
                client.messages.create(model="claude-haiku-4-5", max_tokens=8, messages=HI)
            except anthropic.AuthenticationError:
                return True
            return False

        assert poll(refused, 10), "the revocation made while reconnecting never reached the gateway"
    finally:
        client.close()


def _revoked(pgw: PgGateway, key_id: str) -> bool:
    try:
        return pgw.servers.run(pgw.store.revoke_key(key_id, 0.0)) or True
    except Exception:  # the pool's old connections fail until replaced: try again
        return False


@pytest.fixture(scope="module")
def lone_pg():
    server = PgServer()
    server.start()
    yield server
    server.close()


def serve(tmp_path, url: str, password: str) -> subprocess.CompletedProcess:
    parts = urllib.parse.urlsplit(url)
    bare = f"postgresql://{parts.username}@{parts.hostname}:{parts.port}{parts.path}"
    path = tmp_path / "aiogw.toml"
    path.write_text(textwrap.dedent(TOML).format(state=tmp_path / "local.db", url=bare, fake="http://127.0.0.1:9"))
    env = {**os.environ, **PROVIDER_KEYS, "AIOGW_TEST_DB_PASSWORD": password}
    return subprocess.run([sys.executable, "-m", "aiogw", "serve", "--config", str(path)], capture_output=True,
                          text=True, timeout=60, env=env)


def test_a_gateway_that_cannot_use_its_database_says_why_at_start_and_exits(lone_pg, tmp_path):
    url = lone_pg.create_database()
    password = urllib.parse.urlsplit(url).password
    wrong = serve(tmp_path, url, "not-the-password")
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr
    assert "password" in wrong.stderr and "aiogw@127.0.0.1" in wrong.stderr and "not-the-password" not in wrong.stderr
    empty = serve(tmp_path, url, password)  # never migrated
    assert empty.returncode == 2 and "Traceback" not in empty.stderr
    assert "aiogw migrate --config" in empty.stderr and password not in empty.stderr
    nobody = serve(tmp_path, url.replace(f":{lone_pg.port}/", f":{free_port()}/"), password)
    assert nobody.returncode == 2 and "Traceback" not in nobody.stderr and password not in nobody.stderr


class Stallable:
    """A TCP relay to the server whose open connections can be frozen: their bytes stop
    both ways and their sockets stay open, as on a connection that stalls. Connections
    made after the freeze flow."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.open: list[asyncio.Event] = []
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    def freeze(self) -> None:
        for flowing in self.open:
            flowing.clear()

    def thaw(self) -> None:
        for flowing in self.open:
            flowing.set()

    async def stop(self) -> None:
        self.thaw()
        if self.server is not None:
            self.server.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        flowing = asyncio.Event()
        flowing.set()
        self.open.append(flowing)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    await flowing.wait()
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))


def test_a_connection_that_stalls_mid_batch_costs_the_batch_a_timeout_not_the_record(servers, tmp_path):
    """Every connection the gateway has to the database stops answering mid-batch: the
    batch's statement times out (`[state] timeout`), the batch goes to the spool, the
    agents are served, and the records are stored once over new connections."""
    pg = PgServer()
    pg.start()
    relay = Stallable(pg.port)
    gw = None
    try:
        relay_port = servers.run(relay.start())
        url = pg.create_database()
        direct = make_store(tmp_path / "x.db", url)
        servers.run(direct.connect())
        servers.run(direct.migrate())
        parts = urllib.parse.urlsplit(url)
        path = tmp_path / "aiogw.toml"
        fake = FakeUpstream(FakeConfig())
        fake_url = f"http://127.0.0.1:{servers.run(fake.start())}"
        path.write_text(textwrap.dedent(TOML).format(
            state=tmp_path / "local.db", url=f"postgresql://aiogw@127.0.0.1:{relay_port}{parts.path}", fake=fake_url,
        ).replace("[audit]\n", "timeout = 1\n[audit]\n"))
        cfg = config.load(path, env={**PROVIDER_KEYS, "AIOGW_TEST_DB_PASSWORD": parts.password})
        assert cfg.state_timeout == 1
        record, key, digest = keys.new_key("alice")
        servers.run(direct.create_key(record, digest))
        runner, port = servers.run(start(cfg))
        gw = (runner, fake)
        writer = runner.app[RUNTIME].audit[1]
        client = anthropic.Anthropic(api_key=key, base_url=f"http://127.0.0.1:{port}/llm-gateway/anthropic",
                                     max_retries=0)
        try:
            client.messages.create(model="claude-haiku-4-5", max_tokens=8, messages=HI)
            assert poll(lambda: writer.written == 1, 10)
            relay.freeze()
            for _ in range(3):
                client.messages.create(model="claude-haiku-4-5", max_tokens=8, messages=HI)  # served all the same
            assert poll(lambda: writer.spooled >= 1, 15), "the stalled batch never timed out into the spool"
            assert poll(lambda: writer.database_up and not writer.spool.pending and writer.written == 4, 30), (
                writer.written, writer.spool.pending)
        finally:
            client.close()
        rows = servers.run(direct.list_rows(Filters(), 100))
        assert len(rows) == len({r["id"] for r in rows}) == 4
        servers.run(direct.close())
    finally:
        servers.run(relay.stop())
        if gw is not None:
            servers.run(gw[0].cleanup())
            servers.run(gw[1].stop())
        pg.close()


def test_a_role_without_rights_on_its_tables_is_one_line_at_start(lone_pg, tmp_path):
    url = lone_pg.create_database()
    password = urllib.parse.urlsplit(url).password
    database = urllib.parse.urlsplit(url).path.lstrip("/")
    migrated = subprocess.run([sys.executable, "-m", "aiogw", "migrate", "--config", str(_config(tmp_path, url))],
                              capture_output=True, text=True, timeout=60,
                              env={**os.environ, **PROVIDER_KEYS, "AIOGW_TEST_DB_PASSWORD": password})
    assert migrated.returncode == 0, migrated.stderr
    lone_pg.sql("REVOKE ALL ON aiogw_schema FROM aiogw", database=database)
    refused = serve(tmp_path, url, password)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "refused the gateway: permission denied for table aiogw_schema" in refused.stderr
    assert "must own the database" in refused.stderr


def _config(tmp_path, url: str):
    parts = urllib.parse.urlsplit(url)
    path = tmp_path / "aiogw.toml"
    path.write_text(textwrap.dedent(TOML).format(
        state=tmp_path / "local.db", url=f"postgresql://{parts.username}@{parts.hostname}:{parts.port}{parts.path}",
        fake="http://127.0.0.1:9"))
    return path
