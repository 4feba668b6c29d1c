"""Real servers on 127.0.0.1 for the integration tests.

The fake upstream and the gateway run in one background thread with their own uvloop
loop, so tests can drive them with the official SDKs' ordinary (sync) clients, exactly
as an agent would, and inspect what the fake received.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sqlite3
import textwrap
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import uvloop
from hypothesis import settings

from aiogw import config, keys
from aiogw.app import RUNTIME, start
from aiogw.exchange import Exchange
from aiogw.fake_upstream import FakeConfig, FakeUpstream
from aiogw.store import make_store
from tests.pgserver import pg_server_fixture, pg_url_fixture  # noqa: F401

# Property tests draw new examples on every local run, which is how they find new cases;
# CI (`.ci/run`) draws a fixed set, so a red run there is about the change under test.
# A case found locally goes into the test as an @example.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

PROVIDER_KEYS = {"FAKE_ANTHROPIC": "sk-ant-fake", "FAKE_OPENAI": "sk-openai-fake", "FAKE_GEMINI": "gemini-fake"}
# A route per dialect to one fake upstream at {fake}, with the keys above: a format
# template (braces doubled) to join into a test's own config.
FAKE_ROUTES = """
[[routes]]
name = "anthropic"
dialect = "anthropic"
upstream = "{fake}"
credential = {{ env = "FAKE_ANTHROPIC" }}
[[routes]]
name = "openai"
dialect = "openai"
upstream = "{fake}"
credential = {{ env = "FAKE_OPENAI" }}
[[routes]]
name = "google"
dialect = "gemini"
upstream = "{fake}"
credential = {{ env = "FAKE_GEMINI" }}
"""


class LoopThread:
    """An event loop in a daemon thread; `run` executes a coroutine there and waits."""

    def __init__(self) -> None:
        self.loop = uvloop.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="servers", daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn, *args) -> None:
        self.loop.call_soon_threadsafe(fn, *args)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def free_port() -> int:
    """A port nothing listens on (bound then released), for 'upstream unreachable'."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def full_backlog() -> tuple[int, list[socket.socket]]:
    """A port that never completes a connect: it listens but its accept queue is full,
    so the kernel drops new SYNs, the way a firewalled host does. For connect timeouts."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    held = [server]
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        try:
            filler.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        held.append(filler)
    return port, held


@dataclass
class Gateway:
    base: str  # http://127.0.0.1:PORT/llm-gateway
    key: str
    key_id: str
    state: Path
    cfg: config.Config
    fake: FakeUpstream
    fake_url: str
    gzip_fake: FakeUpstream
    servers: LoopThread
    exchanges: list[Exchange] = field(default_factory=list)
    proxy: Any = None  # aiogw.proxy.Proxy: how many requests are in flight
    finisher: Any = None  # aiogw.finish.Finisher: whether every finished exchange was seen
    writer: Any = None  # aiogw.audit.writer.AuditWriter: whether every record is stored
    store: Any = None  # the test's own aiogw.store.base.Store on the gateway's state, open on `servers`
    sql: Any = None  # PostgreSQL: an asyncpg connection on `servers` for `audit`; None on SQLite

    def create_key(self, user: str) -> tuple[Any, str]:
        """A key made as `aiogw keys create` makes it, once the gateway can see it (on
        PostgreSQL its NOTIFY must have reached the gateway's watch)."""
        index = self.proxy.keys
        seen = index.source.key_signature()
        record, key, digest = keys.new_key(user)
        self.servers.run(self.store.create_key(record, digest))
        assert poll(lambda: index.source.key_signature() != seen, 5), "the gateway never saw the new key"
        return record, key

    def revoke_key(self, key_id: str) -> bool:
        index = self.proxy.keys
        seen = index.source.key_signature()
        revoked = self.servers.run(self.store.revoke_key(key_id, time.time()))
        assert poll(lambda: index.source.key_signature() != seen, 5), "the gateway never saw the revocation"
        return revoked

    def show(self, ident: str) -> dict | None:
        """One exchange as `aiogw audit show --json` prints it."""
        return self.servers.run(self.store.show(ident))

    def url(self, route: str) -> str:
        return f"{self.base}/{route}"

    def last_exchange(self, timeout: float = 5.0) -> Exchange:
        """The newest finished exchange, once no request is open and the finisher has
        handed every one to the sinks (with its usage, cost and findings)."""
        done = self.wait_for(lambda: self.exchanges and not self.proxy.inflight and self.finisher.idle, timeout)
        assert done, (
            f"no finished exchange handed on within {timeout} s: {len(self.exchanges)} exchanges, "
            f"{self.proxy.inflight} requests in flight, finisher idle: {self.finisher.idle}"
        )
        return self.exchanges[-1]

    def audit(self, sql: str, *args):
        """Rows from the gateway's audit tables (read-only, beside the running writer),
        by SQL both stores read alike (`?` for parameters, `user` as a column name)."""
        if self.sql is None:
            return audit_rows(self.state, sql, *args)
        return self.servers.run(pg_rows(self.sql, sql, *args))

    def audited(self, since_id: str, count: int = 1, timeout: float = 10.0) -> list[dict]:
        """Wait until `count` exchanges after `since_id` are committed; oldest first."""
        rows = self.wait_for(
            lambda: (
                (r := self.audit("SELECT * FROM exchanges WHERE id > ? ORDER BY id", since_id))
                and len(r) >= count
                and r
            ),
            timeout,
        )
        assert rows and len(rows) >= count, f"expected {count} audit records after {since_id}, found {rows}"
        return rows

    def wait_for(self, predicate, timeout: float = 5.0):
        """Poll a condition set by the server thread; the test timeout bounds it too."""
        return poll(predicate, timeout)


def audit_rows(
    state: Path, sql: str, *args, missing_ok: bool = False, text_factory: Callable[[bytes], Any] | None = None,
) -> list[dict]:
    """Rows from a gateway's audit tables, read-only beside its running writer.

    `missing_ok`: no rows, not an error, before the writer has made its database or
    tables (a gateway just started). `text_factory` reads TEXT values (sqlite3's own
    decodes UTF-8 strictly)."""
    try:
        conn = sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=10)
    except sqlite3.OperationalError:
        if missing_ok and not state.exists():
            return []
        raise
    conn.row_factory = sqlite3.Row
    if text_factory is not None:
        conn.text_factory = text_factory
    try:
        return [dict(r) for r in conn.execute(sql, args)]
    except sqlite3.OperationalError as exc:
        if missing_ok and "no such table" in str(exc):
            return []
        raise
    finally:
        conn.close()


_PLACEHOLDER = re.compile(r"\?")
_USER = re.compile(r"(?<![\w\"'.-])user(?![\w\"'-])")


async def pg_rows(conn, sql: str, *args) -> list[dict]:
    """A test's SQLite-style query on PostgreSQL: `?` as $1, $2...; `user` quoted (a
    bare `user` is PostgreSQL's current_user)."""
    count = iter(range(1, 1000))
    sql = _PLACEHOLDER.sub(lambda _: f"${next(count)}", _USER.sub('"user"', sql))
    return [dict(r) for r in await conn.fetch(sql, *args)]


def poll(predicate, timeout: float = 5.0):
    """The predicate's first true value within `timeout` seconds, else its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    return predicate()


GATEWAY_TOML = """
[server]
host = "127.0.0.1"
port = 0
max_body_bytes = {max_body}
[state]
path = "{state}"
[audit]
flush_interval = 0.02
[upstream]
connect_timeout = 5
first_byte_timeout = 30
idle_timeout = 30
""" + FAKE_ROUTES + """[[routes]]
name = "anthropic-own-key"
dialect = "anthropic"
upstream = "{fake}"
credential = "client"
[[routes]]
name = "anthropic-gzip"
dialect = "anthropic"
upstream = "{gzip_fake}"
credential = {{ env = "FAKE_ANTHROPIC" }}
[[routes]]
name = "anthropic-slow"
dialect = "anthropic"
upstream = "{fake}"
credential = {{ env = "FAKE_ANTHROPIC" }}
first_byte_timeout = 0.5
idle_timeout = 0.5
[[routes]]
name = "openai-dead"
dialect = "openai"
upstream = "http://127.0.0.1:{dead_port}"
credential = {{ env = "FAKE_OPENAI" }}
[[routes]]
name = "openai-blackhole"
dialect = "openai"
upstream = "http://127.0.0.1:{blackhole_port}"
credential = {{ env = "FAKE_OPENAI" }}
connect_timeout = 0.3
[[routes]]
name = "openai-nocred"
dialect = "openai"
upstream = "{fake}"
credential = {{ env = "NOT_SET_ANYWHERE" }}
[[users]]
name = "alice"
[[users]]
name = "bob"
guards = {{ pii = "redact" }}
[[users]]
name = "carl"
guards = {{ response = "block" }}
"""

MAX_BODY = 4 * 1024 * 1024


@pytest.fixture(scope="session")
def servers():
    loop_thread = LoopThread()
    yield loop_thread
    loop_thread.close()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def gateway(request, servers: LoopThread, tmp_path_factory) -> Gateway:
    """The gateway every end-to-end test drives, on each store: SQLite (a file) and
    PostgreSQL (a database on the suite's own server, migrated as `aiogw migrate` does)."""
    tmp = tmp_path_factory.mktemp("gateway")
    fake = FakeUpstream(FakeConfig())
    gzip_fake = FakeUpstream(FakeConfig(compress=True))
    fake_port = servers.run(fake.start())
    gzip_port = servers.run(gzip_fake.start())
    fake_url = f"http://127.0.0.1:{fake_port}"
    blackhole_port, held_sockets = full_backlog()
    state = tmp / "state.db"
    state_toml, env, url = "", dict(PROVIDER_KEYS), None
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_server").create_database()
        parts = urllib.parse.urlsplit(url)
        state_toml = (f'url = "postgresql://{parts.username}@{parts.hostname}:{parts.port}{parts.path}"\n'
                      'password = { env = "AIOGW_TEST_DB_PASSWORD" }\n')
        env["AIOGW_TEST_DB_PASSWORD"] = parts.password
    path = tmp / "aiogw.toml"
    path.write_text(
        textwrap.dedent(GATEWAY_TOML).format(
            max_body=MAX_BODY,
            state=state,
            fake=fake_url,
            gzip_fake=f"http://127.0.0.1:{gzip_port}",
            dead_port=free_port(),
            blackhole_port=blackhole_port,
        ).replace("[state]\n", "[state]\n" + state_toml)
    )
    cfg = config.load(path, env=env)
    store = make_store(cfg.state_path, cfg.state_url, cfg.state_password)
    if url is not None:
        servers.run(store.connect())
        servers.run(store.migrate())
        servers.run(store.close())
    servers.run(store.open())
    record, key, digest = keys.new_key("alice")
    servers.run(store.create_key(record, digest))
    sql = servers.run(asyncpg.connect(url)) if url is not None else None
    exchanges: list[Exchange] = []
    runner, port = servers.run(start(cfg, sinks=[exchanges.append]))
    gw = Gateway(
        base=f"http://127.0.0.1:{port}/llm-gateway",
        key=key,
        key_id=record.id,
        state=state,
        cfg=cfg,
        fake=fake,
        fake_url=fake_url,
        gzip_fake=gzip_fake,
        servers=servers,
        exchanges=exchanges,
        proxy=runner.app[RUNTIME].proxy,
        finisher=runner.app[RUNTIME].parts.finisher,
        writer=runner.app[RUNTIME].audit[1],
        store=store,
        sql=sql,
    )
    yield gw
    servers.run(runner.cleanup())
    if sql is not None:
        servers.run(sql.close())
    servers.run(store.close())
    servers.run(fake.stop())
    servers.run(gzip_fake.stop())
    for sock in held_sockets:
        sock.close()


@pytest.fixture(autouse=True)
def close_sdk_clients(monkeypatch):
    """Close every SDK client a test made, so their pooled sockets never outlive it.

    Tests make clients inline, as agents do; left to the garbage collector, their
    connections would surface as ResourceWarnings (errors here) in a later test.
    """
    import anthropic
    import openai
    from google import genai

    made = []
    for cls in (anthropic.Anthropic, openai.OpenAI, genai.Client):
        original = cls.__init__

        def tracking(self, *args, _original=original, **kwargs):
            _original(self, *args, **kwargs)
            made.append(self)

        monkeypatch.setattr(cls, "__init__", tracking)
    yield
    for client in made:
        client.close()


@pytest.fixture
def gw(gateway: Gateway) -> Gateway:
    """The session gateway with a clean record of what the fakes received, and of its
    exchanges: once the last test's are over (a client has a stream's last event a
    moment before the gateway's handler ends, and it must not pass for this test's)."""
    assert gateway.wait_for(lambda: gateway.proxy.inflight == 0), "the last test left requests in flight"
    # Its exchanges finished and their records stored: none may pass for this test's.
    assert gateway.wait_for(lambda: gateway.finisher.idle and gateway.writer.settled, 10), "the last test's records"
    gateway.fake.clear()
    gateway.gzip_fake.clear()
    gateway.exchanges.clear()
    return gateway
