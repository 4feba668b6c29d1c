"""A gateway on PostgreSQL when the database fails under it: real faults on a server of
the test's own (stopped and started, made read-only), driven by the official SDK.

What must hold: the agents are served throughout; every exchange is recorded once, none
lost, none twice, once the database is back; /readyz and /metrics say the state.
"""

from __future__ import annotations

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
        path.write_text(textwrap.dedent(TOML).format(state=tmp_path / "local.db", url=bare, fake=fake_url))
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
