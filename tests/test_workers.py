"""`aiogw serve --workers N`: worker processes on one port under a supervisor that owns
the signals and systemd's notify protocol (aiogw.workers).

Every test starts the real command in a subprocess against a fake provider on the
session's loop, and waits by polling with deadlines: the workers' log lines (each says
which worker it is), their /readyz (which worker answered, and its pid), a fake
NOTIFY_SOCKET, the audit tables. A connection stays with the worker that accepted
it, so a test that must reach one worker keeps a client whose /readyz named it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.parse
from collections import Counter
from pathlib import Path

import anthropic
import asyncpg
import httpx2 as httpx  # the HTTP client of the anthropic SDK installed: one a test hands it
import orjson
import pytest

from aiogw import config, keys
from aiogw.app import RUNTIME, reload, start
from aiogw.fake_upstream import FakeConfig, FakeUpstream
from aiogw.serving import restartable
from aiogw.store import make_store
from tests.builders import create_key
from tests.conftest import PROVIDER_KEYS, audit_rows, free_port, pg_rows, poll
from tests.pgserver import pg_server_fixture, pg_url_fixture  # noqa: F401
from tests.served import SOURCE
from tests.test_notify import path_systemd, wait_for_message
from tests.test_reload_drain import Streamer

HI = [{"role": "user", "content": "hello"}]


def route(name: str, url: str) -> str:
    return f'[[routes]]\nname = "{name}"\ndialect = "anthropic"\nupstream = "{url}"\ncredential = {{ env = "FAKE_ANTHROPIC" }}\n'


class Workers:
    """`aiogw serve --config FILE --workers N` (or `[server] workers` in the file, with
    `flag=False`) on a free port; its stderr in a file. Started once the supervisor says
    every worker listens, unless `wait` is false."""

    def __init__(self, tmp: Path, fake_url: str, *, workers: int = 2, flag: bool = True, state: str = "",
                 env: dict[str, str] | None = None, wait: bool = True, port: int | None = None, extra: str = "",
                 drain: float = 30) -> None:
        self.tmp, self.fake_url, self.workers = tmp, fake_url, workers
        self.port = free_port() if port is None else port
        self.base = f"http://127.0.0.1:{self.port}"
        self.path = tmp / "aiogw.toml"
        self.state = tmp / "state.db"
        self.state_toml = state
        self.flag, self.drain = flag, drain
        self.write(extra=extra)
        self.err = tmp / "stderr"
        argv = [sys.executable, "-m", "aiogw", "serve", "--config", str(self.path)]
        with self.err.open("wb") as err:
            self.proc = subprocess.Popen(
                [*argv, "--workers", str(workers)] if flag else argv, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=err, cwd=tmp,
                env={"PATH": "/usr/bin:/bin", "PYTHONPATH": SOURCE, **PROVIDER_KEYS, **(env or {})},
            )
        if wait:
            self.until(lambda: "workers listen on" in self.stderr(), "every worker to listen")

    def write(self, *routes: str, extra: str = "", workers: int | None = None) -> None:
        """(Re)write the config: the anthropic route to the fake, and `routes`."""
        head = f"[server]\nport = {self.port}\ndrain_seconds = {self.drain}\n"
        if not self.flag:
            head += f"workers = {self.workers if workers is None else workers}\n"
        self.path.write_text(head + f'[state]\npath = "{self.state}"\n{self.state_toml}[audit]\nflush_interval = 0.05\n'
                             + route("anthropic", self.fake_url) + "".join(routes) + extra)

    def until(self, predicate, what: str, timeout: float = 30, alive: bool = True):
        def check():
            assert not alive or self.proc.poll() is None, (
                f"aiogw exited {self.proc.returncode} while waiting for {what}:\n{self.stderr()[-4000:]}")
            return predicate()

        value = poll(check, timeout)
        assert value, f"timed out waiting for {what}:\n{self.stderr()[-4000:]}"
        return value

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def messages(self) -> list[str]:
        """The log's messages (the lines that are JSON records)."""
        out = []
        for line in self.stderr().splitlines():
            with contextlib.suppress(orjson.JSONDecodeError):
                out.append(orjson.loads(line)["message"])
        return out

    def said(self, text: str) -> list[str]:
        return [m for m in self.messages() if text in m]

    def pids(self) -> dict[int, int]:
        """Worker number -> pid, as the supervisor last started them."""
        out = {}
        for message in self.said("started worker "):
            number, pid = message.removeprefix("started worker ").split(" (pid ")
            out[int(number.split("/")[0])] = int(pid.rstrip(")"))
        return out

    def readyz(self, client: httpx.Client | None = None) -> dict:
        response = (client or httpx).get(f"{self.base}/readyz")
        assert response.status_code == 200, response.text
        return response.json()

    def client_on(self, worker: int) -> httpx.Client:
        """An HTTP client whose one kept-alive connection the worker `worker` accepted."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            client = httpx.Client(limits=httpx.Limits(max_connections=1))
            if self.readyz(client)["worker"] == worker:
                return client
            client.close()
        raise AssertionError(f"no connection reached worker {worker} in 20 s")

    def anthropic(self, client: httpx.Client | None = None, route_name: str = "anthropic", **kw) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=f"{self.base}/llm-gateway/{route_name}", api_key=self.key, max_retries=0,
                                   http_client=client, **kw)

    def stop(self, timeout: float = 60) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """Whatever is left of it after a test: the workers, then the supervisor."""
        for pid in self.pids().values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def gone(pid: int) -> bool:
    """The process has exited (a zombie nobody reaped counts: it runs no more)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.fixture(scope="module")
def fake(servers):
    upstream = FakeUpstream(FakeConfig())
    port = servers.run(upstream.start())
    yield upstream, f"http://127.0.0.1:{port}"
    servers.run(upstream.stop())


@pytest.fixture
def made():
    """Gateways a test starts (`made.append`), killed after it if still running."""
    gateways: list[Workers] = []
    yield gateways
    for g in gateways:
        g.kill()


def start_sqlite(made, tmp_path, fake_url, **kw) -> Workers:
    tmp_path.mkdir(parents=True, exist_ok=True)
    key = create_key(tmp_path / "state.db", "alice")[1]
    g = Workers(tmp_path, fake_url, **kw)
    g.key = key
    made.append(g)
    return g


def test_ready_only_once_every_worker_listens_and_the_watchdog_follows_their_loops(made, tmp_path, fake):
    systemd = path_systemd(tmp_path)
    try:
        # WatchdogSec=0.4s: the supervisor pings every 0.2 s while every worker beats.
        g = start_sqlite(made, tmp_path / "gw", fake[1], wait=False,
                         env={"NOTIFY_SOCKET": systemd.env_value, "WATCHDOG_USEC": "400000"})
        seen = wait_for_message(systemd, g.proc, "READY=1")
        assert len(seen) == 1, seen  # nothing before it, and READY once every worker listened:
        for number in (0, 1):
            assert g.said(f"worker {number}/2: aiogw listening on {g.base}/llm-gateway/"), g.stderr()
        assert "STATUS=serving 1 routes for any users with 2 workers" in seen[0].splitlines()
        wait_for_message(systemd, g.proc, "WATCHDOG=1")

        stuck = g.pids()[1]
        os.kill(stuck, signal.SIGSTOP)  # its loop turns no more
        try:
            # The pings stop: a second without one (five intervals) within a deadline.
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                try:
                    assert systemd.recv(timeout=1.0)
                except TimeoutError:
                    break
            else:
                pytest.fail("the watchdog pings went on while a worker was stopped")
            g.until(lambda: g.said(f"worker 1/2 (pid {stuck}): its event loop has not answered"), "the warning")
        finally:
            os.kill(stuck, signal.SIGCONT)
        wait_for_message(systemd, g.proc, "WATCHDOG=1")
        g.until(lambda: g.said(f"worker 1/2 (pid {stuck}): its event loop answers again"), "the all-clear")

        g.proc.send_signal(signal.SIGTERM)
        stopping = wait_for_message(systemd, g.proc, "STOPPING=1")[-1]
        assert "STATUS=stopping 2 workers, each drains (up to 30s)" in stopping.splitlines()
        assert g.proc.wait(30) == 0
    finally:
        systemd.close()
    assert "Traceback" not in g.stderr() and "cannot notify systemd" not in g.stderr()


def test_both_workers_serve_and_a_killed_one_is_started_again(made, tmp_path, fake):
    g = start_sqlite(made, tmp_path, fake[1])
    pids = g.pids()
    assert sorted(pids) == [0, 1] and os.getpid() not in pids.values()
    answered = g.until(lambda: (seen := {(r["worker"], r["pid"]) for r in (g.readyz() for _ in range(40))})
                       and len(seen) == 2 and seen, "fresh connections to reach both workers")
    assert answered == set(pids.items())
    with httpx.Client(limits=httpx.Limits(max_keepalive_connections=0)) as fresh:  # a connection a request
        for _ in range(6):
            reply = g.anthropic(fresh).messages.create(model="claude-haiku-4-5", max_tokens=16, messages=HI)
            assert reply.content[0].text

    os.kill(pids[1], signal.SIGKILL)
    g.until(lambda: g.said(f"worker 1/2 (pid {pids[1]}) was killed by SIGKILL; starting it again"), "the death logged")
    again = g.until(lambda: (p := g.pids()[1]) != pids[1] and p, "worker 1 to be started again")
    g.until(lambda: any((r := g.readyz())["worker"] == 1 and r["pid"] == again for _ in range(20)),
            "the new worker 1 to answer")
    with contextlib.closing(g.client_on(1)) as client:
        assert g.anthropic(client).messages.create(model="claude-haiku-4-5", max_tokens=16, messages=HI).content

    # Its supervisor gone (SIGKILL: no forward), each worker stops by itself.
    os.kill(g.proc.pid, signal.SIGKILL)
    g.proc.wait(10)
    g.until(lambda: all(gone(pid) for pid in (pids[0], again)), "the workers to stop without it", alive=False)
    assert len(g.said("the supervisor is gone: stopping")) == 2
    assert "Traceback" not in g.stderr()


GOOD_GUARD = """
[[guards.patterns]]
id = "acme-token"
category = "credential"
expression = 'acme_[A-Za-z0-9]{32}'
"""
BAD_GUARD = GOOD_GUARD.replace("acme_", "(acme_")


def test_a_reload_is_checked_once_and_then_applied_in_every_worker(made, tmp_path, fake):
    systemd = path_systemd(tmp_path)
    try:
        # `[server] workers` in the file, this time: a reload that changes it waits for a restart.
        g = start_sqlite(made, tmp_path / "gw", fake[1], flag=False, env={"NOTIFY_SOCKET": systemd.env_value})
        wait_for_message(systemd, g.proc, "READY=1")
        for bad, why in (("[server\n", "not valid TOML"),
                         (BAD_GUARD, "Hyperscan cannot compile it")):
            g.path.write_text(g.path.read_text() + bad)
            refused = len(g.said("reload refused"))
            g.proc.send_signal(signal.SIGHUP)
            ready = wait_for_message(systemd, g.proc, "READY=1")
            assert [m.splitlines()[0] for m in ready] == ["RELOADING=1", "READY=1"]
            assert f"STATUS=reload refused: {g.path}" in ready[-1]
            (said,) = g.said("reload refused")[refused:]
            assert said.startswith("reload refused, no worker was told") and why in said
            g.write()
        told = ("reload applied", "reload refused", "reloaded")
        assert not [m for m in g.messages() if m.startswith("worker ") and any(t in m for t in told)]  # none was told
        b = "claude-b"
        with httpx.Client() as client:  # the new route is not there yet
            assert client.post(f"{g.base}/llm-gateway/{b}/v1/messages").status_code == 404

        g.write(route(b, fake[1]), extra=GOOD_GUARD, workers=3)
        g.proc.send_signal(signal.SIGHUP)
        ready = wait_for_message(systemd, g.proc, "READY=1")
        assert [m.splitlines()[0] for m in ready] == ["RELOADING=1", "READY=1"]
        for number in (0, 1):  # READY=1 once both had applied it
            assert g.said(f"worker {number}/2: reload applied: routes (+{b}), guards"), g.stderr()
        assert g.said("reload applied in every worker")
        assert g.said(f"changed in {g.path} but applied only at restart: server.workers") == [
            f"changed in {g.path} but applied only at restart: server.workers"]  # the supervisor's, once
        for number in (0, 1):
            with contextlib.closing(g.client_on(number)) as client:
                reply = g.anthropic(client, b).messages.create(model="claude-haiku-4-5", max_tokens=16, messages=HI)
                assert reply.content[0].text
                with pytest.raises(anthropic.PermissionDeniedError):  # the new guard, in this worker
                    g.anthropic(client, b).messages.create(model="m", max_tokens=8, messages=[
                        {"role": "user", "content": "my token is acme_" + "x" * 32}])
        assert g.stop() == 0
    finally:
        systemd.close()
    assert "Traceback" not in g.stderr()


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_sigterm_drains_an_open_stream_and_every_exchange_is_recorded_once(made, tmp_path, fake, servers, request,
                                                                            store):
    upstream, fake_url = fake
    sql = None
    if store == "sqlite":
        g = start_sqlite(made, tmp_path, fake_url, wait=True)
    else:
        url = request.getfixturevalue("pg_url")
        key = servers.run(_pg_key(url))
        parts = urllib.parse.urlsplit(url)
        state = (f'url = "postgresql://{parts.username}@{parts.hostname}:{parts.port}{parts.path}"\n'
                 'password = { env = "AIOGW_TEST_DB_PASSWORD" }\n')
        g = Workers(tmp_path, fake_url, state=state, env={"AIOGW_TEST_DB_PASSWORD": parts.password})
        g.key = key
        made.append(g)
        sql = servers.run(asyncpg.connect(url))
    try:
        sent = []
        for number in (0, 1):  # some through each worker, streamed and not
            with contextlib.closing(g.client_on(number)) as client:
                for i in range(5):
                    model = f"model-w{number}-{i}"
                    if i % 2:
                        with g.anthropic(client).messages.stream(model=model, max_tokens=16, messages=HI) as s:
                            assert s.get_final_text()
                    else:
                        assert g.anthropic(client).messages.create(model=model, max_tokens=16, messages=HI).content
                    sent.append(model)
        gate = f"workers-{store}-{time.monotonic_ns()}"
        held = g.client_on(1)
        stream = Streamer(g.anthropic(held, default_headers={"x-fake-gate": gate, "x-fake-chunks": "8",
                                                              "x-fake-text": "one two three four five six seven"}))
        stream.start()
        assert stream.started.wait(30) and stream.error is None, stream.error
        sent.append("claude-haiku-4-5")

        g.proc.send_signal(signal.SIGTERM)
        g.until(lambda: g.said("worker 1/2: aiogw stopping: 1 open exchange,"), "worker 1 to drain its stream")
        g.until(lambda: g.said(f"worker 0/2 (pid {g.pids()[0]}) stopped"), "worker 0 to stop, worker 1 draining")
        servers.call(upstream.open_gate, gate)
        stream.join(30)
        assert stream.error is None and "".join(stream.text) == "one two three four five six seven"
        assert stream.events[-1] == "message_stop"
        assert g.proc.wait(30) == 0
        held.close()

        query = "SELECT id, model, outcome FROM exchanges"
        rows = audit_rows(g.state, query) if sql is None else servers.run(pg_rows(sql, query))
        assert len({r["id"] for r in rows}) == len(rows)
        assert Counter(r["model"] for r in rows) == Counter(sent)  # each once: none lost, none twice
        assert {r["outcome"] for r in rows} == {"ok"}
    finally:
        if sql is not None:
            servers.run(sql.close())
    assert "Traceback" not in g.stderr()


def test_a_workers_own_stop_signal_does_not_cut_its_drain_the_supervisors_second_does(made, tmp_path, fake, servers):
    """systemd's stop (KillMode=control-group) and a terminal's Ctrl-C signal every process,
    on top of what the supervisor forwards: a worker drains once, and only the
    supervisor's second signal cuts."""
    g = start_sqlite(made, tmp_path, fake[1], drain=3600)  # uncut, the stream would hold the stop for an hour
    gate = f"cut-{time.monotonic_ns()}"
    held = g.client_on(1)
    stream = Streamer(g.anthropic(held, default_headers={"x-fake-gate": gate, "x-fake-chunks": "8"}))
    stream.start()
    assert stream.started.wait(30) and stream.error is None, stream.error
    pids = g.pids()
    for pid in (g.proc.pid, *pids.values()):
        os.kill(pid, signal.SIGTERM)
    g.until(lambda: g.said("worker 1/2: aiogw stopping: 1 open exchange,"), "worker 1 to drain")
    g.until(lambda: g.said(f"worker 0/2 (pid {pids[0]}) stopped"), "worker 0 to stop")
    assert not g.said("cutting") and stream.is_alive()  # two SIGTERMs each, and still draining

    g.proc.send_signal(signal.SIGINT)
    assert g.proc.wait(30) == 0
    stream.join(30)
    held.close()
    servers.call(fake[0].open_gate, gate)
    assert stream.final is None and "message_stop" not in stream.events
    assert g.said("aiogw stopping: SIGINT again: the workers cut their open exchanges (1 left)")
    assert g.said("worker 1/2: aiogw stopping: cutting 1 open exchanges")
    rows = audit_rows(g.state, "SELECT outcome, reason FROM exchanges")
    assert rows == [{"outcome": "shutdown", "reason": "gateway stopping: cut by a second signal"}]


async def _pg_key(url: str) -> str:
    """The database migrated as `aiogw migrate` does it, and alice's key in it."""
    parts = urllib.parse.urlsplit(url)
    store = make_store(Path("unused.db"), url.replace(f":{parts.password}@", "@"), parts.password)
    await store.connect()
    await store.migrate()
    await store.close()
    await store.open()
    record, key, digest = keys.new_key("alice")
    await store.create_key(record, digest)
    await store.close()
    return key


def test_a_worker_that_cannot_start_stops_the_start_with_its_message(tmp_path):
    with socket.socket() as taken:  # a plain listener: no SO_REUSEPORT to share with
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        g = Workers(tmp_path, "http://127.0.0.1:9", wait=False, port=port)
        try:
            code = g.proc.wait(60)
        finally:
            g.kill()
    assert code == 2
    err = g.stderr()
    assert err.count(f"aiogw: cannot listen on 127.0.0.1:{port}: ") == 1 and "set [server] port" in err
    assert g.said(f"worker 0/2 (pid {g.pids()[0]}) exited with status 2 before it listened: the gateway does not "
                  "start (its error is above)")
    assert sorted(g.pids()) == [0] and "Traceback" not in err  # the others were not started


def test_guards_that_do_not_compile_stop_the_start_with_their_message(tmp_path):
    g = Workers(tmp_path, "http://127.0.0.1:9", wait=False, extra=BAD_GUARD)
    try:
        assert g.proc.wait(60) == 2
    finally:
        g.kill()
    err = g.stderr()
    assert err.count(f"aiogw: config error: {g.path}: [guards]: guard pattern 'acme-token': expression: Hyperscan "
                     "cannot compile it") == 1
    assert g.said("before it listened: the gateway does not start") and "Traceback" not in err


LIMITS = "[limits]\nrequests_per_minute = 60\n"


def test_workers_with_counted_limits_need_a_store_they_share(made, tmp_path, fake):
    path = tmp_path / "aiogw.toml"
    path.write_text(f'[server]\nport = 0\n[state]\npath = "{tmp_path / "state.db"}"\n{LIMITS}'
                    + route("anthropic", "http://127.0.0.1:9"))
    done = subprocess.run([sys.executable, "-m", "aiogw", "serve", "--config", str(path), "--workers", "2"],
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": SOURCE, **PROVIDER_KEYS})
    assert done.returncode == 2
    assert done.stderr == f"aiogw: {path}: --workers 2: {config.unshared_limits(2)}\n"
    # The routes a user may take count nothing: each worker checks them alone.
    g = start_sqlite(made, tmp_path / "gw", fake[1], extra='[limits]\nroutes = ["anthropic"]\n')
    assert g.stop() == 0


def test_one_worker_is_the_gateway_of_one_process(made, tmp_path, fake):
    """--workers 1: no supervisor, the process serves itself (limits in its memory are fine)."""
    g = start_sqlite(made, tmp_path, fake[1], workers=1, wait=False, extra=LIMITS)
    listening = g.until(lambda: g.said("aiogw listening on"), "the gateway to listen")
    assert listening == [f"aiogw listening on {g.base}/llm-gateway/<route>/ (routes: anthropic; pid {g.proc.pid}, "
                         "SIGHUP reloads the config)"]
    assert "worker" not in g.readyz() and "aiogw.workers" not in g.stderr()
    assert g.stop() == 0


async def _reloaded(cfg: config.Config, fresh: config.Config) -> config.Config:
    runner, _ = await start(cfg)
    try:
        await reload(runner.app, fresh)
        return runner.app[RUNTIME].config
    finally:
        await runner.cleanup()


def test_a_worker_started_after_a_reload_runs_what_the_others_run(servers, fake, tmp_path):
    """What app.reload applies, and what it leaves for a restart, is what a worker forked
    after the reload starts with (aiogw.serving.restartable)."""
    text = textwrap.dedent("""
        [server]
        port = 0
        drain_seconds = {drain}
        [state]
        path = "{state}"
        [audit]
        enabled = {audit}
        flush_interval = {flush}
        [clients]
        idle_timeout = {idle}
        """)
    before, after = tmp_path / "before.toml", tmp_path / "after.toml"
    before.write_text(text.format(drain=30, state=tmp_path / "a.db", audit="true", flush=0.05, idle=60)
                      + route("anthropic", fake[1]))
    after.write_text(text.format(drain=5, state=tmp_path / "b.db", audit="false", flush=0.2, idle=30)
                     + route("anthropic", fake[1]) + route("claude-b", fake[1]) + GOOD_GUARD)
    cfg, fresh = config.load(before, env=PROVIDER_KEYS), config.load(after, env=PROVIDER_KEYS)
    assert servers.run(_reloaded(cfg, fresh)) == restartable(cfg, fresh)


def _samples(text: str, name: str) -> dict[str, float]:
    """`name`'s samples in an exposition: the label part -> the value."""
    out = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            labels, _, value = line[len(name):].rpartition(" ")
            out[labels] = float(value)
    return out


def test_metrics_through_the_port_are_every_workers_each_labelled_with_its_worker(made, tmp_path, fake):
    """A scrape reaches one worker; it answers for both, so the totals never depend on
    which one the kernel picked, and a counter never goes back between scrapes."""
    g = start_sqlite(made, tmp_path, fake[1], extra="[metrics]\nenabled = true\n")
    with httpx.Client(limits=httpx.Limits(max_keepalive_connections=0)) as fresh:  # a connection a request
        for _ in range(10):
            g.anthropic(fresh).messages.create(model="claude-haiku-4-5", max_tokens=16, messages=HI)
    answered = set()
    for _ in range(20):
        with httpx.Client() as fresh:
            answered.add(g.readyz(fresh)["worker"])
    assert answered == {0, 1}, "both workers answer"

    def requests_by_worker(text: str) -> dict[str, float]:
        counts: dict[str, float] = {}
        for labels, value in _samples(text, "aiogw_requests_total").items():
            worker = labels.split('worker="', 1)[1].split('"', 1)[0]
            counts[worker] = counts.get(worker, 0) + value
        return counts

    scrapes = []
    for _ in range(12):  # fresh connections: the kernel sends them to either worker
        with httpx.Client() as client:
            scrapes.append(g.until(lambda c=client: (r := c.get(f"{g.base}/metrics")).status_code == 200 and r.text,
                                   "a scrape"))
    for text in scrapes:
        counts = requests_by_worker(text)
        assert set(counts) == {"0", "1"} and sum(counts.values()) == 10, counts
        assert _samples(text, "aiogw_scrape_workers_missing") == {"": 0}
        assert text.count("# TYPE aiogw_requests_total counter") == 1  # one family, samples of both
        assert set(_samples(text, "process_start_time_seconds")) == {'{worker="0"}', '{worker="1"}'}

    # A reload the supervisor refuses is counted by every worker (it told none to apply it).
    good = g.path.read_text()
    g.path.write_text(good + "[nonsense]\n")
    g.proc.send_signal(signal.SIGHUP)
    g.until(lambda: g.said("reload refused"), "the reload refused")
    g.path.write_text(good)

    def refused() -> dict[str, float]:
        with httpx.Client() as client:
            return _samples(client.get(f"{g.base}/metrics").text, "aiogw_config_reloads_total")

    counted = g.until(lambda: (r := refused()) and sum(v for k, v in r.items() if "refused" in k) == 2 and r,
                      "both workers to count the refused reload")
    assert set(counted) >= {'{worker="0",result="refused"}', '{worker="1",result="refused"}'}

    # A worker restarting is left out and said, never waited for.
    pids = g.pids()
    with contextlib.closing(g.client_on(0)) as client:  # before: a stopped worker still gets connections
        os.kill(pids[1], signal.SIGSTOP)
        try:
            text = client.get(f"{g.base}/metrics", timeout=10).text
        finally:
            os.kill(pids[1], signal.SIGCONT)
    assert _samples(text, "aiogw_scrape_workers_missing") == {"": 1}
    assert set(requests_by_worker(text)) == {"0"}
