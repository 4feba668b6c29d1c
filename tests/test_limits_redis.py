"""Limits shared in Redis (aiogw.limits.shared): two ledgers stand for two processes on
one Redis, started by the test; Redis stopped, stalled and flushed under them; and a
gateway process whose Redis goes away under load and comes back."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anthropic
import hiredis
import httpx
import pytest

from aiogw.config_reader import ConfigError
from aiogw.errors import NotAllowed, RateLimited, Unavailable
from aiogw.fake_upstream.model import FakeConfig
from aiogw.fake_upstream.server import FakeUpstream
from aiogw.limits.ledger import Admission, Ledger, day_of
from aiogw.limits.settings import Limits, SharedStore
from aiogw.limits.shared import Reservation, SharedLedger
from aiogw.store.base import SpendRow, WindowRow
from tests.redisserver import RedisServer, free_port, redis_server_fixture, redis_url_fixture  # noqa: F401
from tests.served import Served
from tests.throwaway import Throwaway


class Spend:
    """The state store's spend, as a seed reads it."""

    def __init__(self, rows: list[SpendRow] | None = None) -> None:
        self.rows = rows or []
        self.reads = 0

    async def load_limits(self, month: str | None) -> tuple[list[SpendRow], list[WindowRow]]:
        self.reads += 1
        return [r for r in self.rows if month is None or r.day.startswith(month)], []


async def ledger(url: str, limits: Limits, *, ttl: int = 30, on_failure: str = "open", spend: Spend | None = None,
                 password: str | None = None) -> SharedLedger:
    shared = SharedLedger(SharedStore(url, password, on_failure, ttl), Ledger(limits, {}), spend or Spend())
    await shared.start()
    return shared


@contextlib.asynccontextmanager
async def processes(url: str, limits: Limits, n: int = 2) -> AsyncIterator[list[SharedLedger]]:
    """`n` ledgers on one Redis: as many gateway processes, closed after."""
    made = [await ledger(url, limits) for _ in range(n)]
    try:
        yield made
    finally:
        for shared in made:
            await shared.close()


async def admit(shared: SharedLedger, tokens: int = 10, usd: float = 0.0, user: str = "alice"):
    return await shared.admit(user, shared.local.limits(user), "anthropic", "claude-haiku-4-5", tokens, usd)


async def settled(shared: SharedLedger) -> None:
    """Until what the process sent has been done: Redis answers a connection in order."""
    await shared.link.call("PING")


async def outcomes(calls) -> list[str]:
    """Each call's outcome: ok, or the refusal's kind."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    return ["ok" if isinstance(r, Reservation) else getattr(r, "kind", repr(r)) for r in results]


async def test_two_processes_admit_exactly_the_rate_between_them(redis_url):
    limits = Limits(requests_per_minute=60)
    async with processes(redis_url, limits) as (a, b):
        got = await outcomes([admit(x) for _ in range(70) for x in (a, b)])
        assert got.count("ok") == 60
        assert set(got) == {"ok", "rate_limit:requests_per_minute"}
        with pytest.raises(RateLimited) as refused:
            await admit(a)
        assert 1 <= refused.value.retry_after <= 2  # one request's worth of a minute: a second


async def test_concurrency_is_held_across_processes_and_freed_by_settling(redis_url):
    limits = Limits(max_concurrent=3)
    async with processes(redis_url, limits) as (a, b):
        got = await asyncio.gather(*(admit(x) for x in (a, b, a, b, a)), return_exceptions=True)
        held = [r for r in got if isinstance(r, Reservation)]
        assert len(held) == 3
        assert all(isinstance(r, RateLimited) and r.kind == "rate_limit:max_concurrent" for r in got
                   if r not in held)
        owner = a if held[0].id in a.open else b
        owner.settle("alice", held[0], 10, 0.0, time.time())
        await settled(owner)
        assert isinstance(await admit(b), Reservation)  # the freed slot, taken by the other process
        with pytest.raises(RateLimited):
            await admit(a)


async def test_an_admission_its_client_gave_up_on_gives_its_slot_back_at_once(redis_url):
    limits = Limits(max_concurrent=1)
    async with processes(redis_url, limits) as (a, b):
        waiting = asyncio.create_task(admit(a))
        await asyncio.sleep(0)  # the script is on its way
        waiting.cancel()  # the client left (the handler is cancelled)
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await settled(a)
        assert isinstance(await admit(b), Reservation)  # not after reservation_seconds: now
        assert not a.open


async def test_a_budget_counts_reservations_and_real_spend_of_every_process(redis_url):
    limits = Limits(daily_budget_usd=1.0)
    async with processes(redis_url, limits) as (a, b):
        first = await admit(a, usd=0.6)
        await admit(b, usd=0.5)  # 0.6 held of 1.0: it fits, and now 1.1 is held
        with pytest.raises(NotAllowed) as over:
            await admit(b, usd=0.01)
        assert "(and $1.10 is held by requests in flight)" in over.value.message
        a.settle("alice", first, 10, 0.9, time.time())  # it cost more than its estimate
        await settled(a)
        with pytest.raises(NotAllowed) as spent:
            await admit(b)
        assert "daily budget of $1.00" in spent.value.message and spent.value.kind == "budget:daily_budget_usd"


async def test_a_dead_processs_reservations_expire_and_a_live_ones_are_renewed(redis_url):
    limits = Limits(max_concurrent=1)
    live = await ledger(redis_url, limits, ttl=1)
    try:
        held = await admit(live)
        await asyncio.sleep(2.5)  # past its ttl twice: renewed every third of it
        with pytest.raises(RateLimited):
            await admit(live)
        live.settle("alice", held, 10, 0.0, time.time())
        await settled(live)
        dead = await ledger(redis_url, limits, ttl=1)
        await admit(dead)
        dead._renewing.cancel()  # it dies: no settle, no renewal
        with pytest.raises(RateLimited):
            await admit(live)
        await asyncio.sleep(1.3)
        assert isinstance(await admit(live), Reservation)  # the dead one's slot came back
        await dead.link.close()
    finally:
        await live.close()


async def test_a_month_redis_has_not_seen_is_seeded_from_the_state_store_once(redis_url):
    today = day_of(time.time())
    spend = Spend([SpendRow("alice", today, 0.7), SpendRow("alice", today[:7] + "-01", 0.2),
                   SpendRow("bob", today, 5.0)])
    a = await ledger(redis_url, Limits(daily_budget_usd=1.0, monthly_budget_usd=0.95), spend=spend)
    b = await ledger(redis_url, Limits(daily_budget_usd=1.0, monthly_budget_usd=0.95), spend=spend)
    try:
        assert isinstance(await admit(a), Reservation)  # 0.7 today, 0.9 this month
        await admit(b, usd=0.05)  # 0.9 of 0.95 this month: it fits, and holds 0.05
        with pytest.raises(NotAllowed) as over:
            await admit(b, usd=0.01)
        assert over.value.kind == "budget:monthly_budget_usd"
        assert spend.reads == 1  # b found the month seeded by a
    finally:
        await a.close()
        await b.close()


async def test_tokens_per_minute_is_corrected_by_what_a_request_really_used(redis_url):
    limits = Limits(tokens_per_minute=1000)
    a = await ledger(redis_url, limits)
    try:
        held = await admit(a, tokens=100)
        a.settle("alice", held, 900, 0.0, time.time())  # it used 900, not the 100 estimated
        await settled(a)
        with pytest.raises(RateLimited) as over:
            await admit(a, tokens=200)
        assert over.value.kind == "rate_limit:tokens_per_minute"
        assert isinstance(await admit(a, tokens=50), Reservation)
    finally:
        await a.close()


async def test_a_script_flushed_from_redis_is_loaded_again(redis_server, redis_url):
    a = await ledger(redis_url, Limits(requests_per_minute=5))
    try:
        await admit(a)
        redis_server.command("SCRIPT", "FLUSH")
        assert isinstance(await admit(a), Reservation)
    finally:
        await a.close()


@pytest.fixture
def own_redis(tmp_path):
    """A Redis of this test's own, to stop and stall (the session's serves other tests)."""
    server = RedisServer(password="s3cret")
    server.start()
    yield server
    server.close()


async def test_redis_away_open_admits_on_own_counters_and_adds_the_spend_on_return(own_redis):
    today = day_of(time.time())
    a = await ledger(own_redis.url, Limits(requests_per_minute=2, daily_budget_usd=5.0), password="s3cret")
    try:
        held = await admit(a)
        assert a.up and isinstance(held, Reservation)
        own_redis.stop()
        a.settle("alice", held, 10, 0.25, time.time())  # its spend waits for Redis
        await asyncio.sleep(0.1)
        assert not a.up
        got = [await admit(a) for _ in range(2)]
        assert all(isinstance(x, Admission) for x in got)  # this process's own counters...
        with pytest.raises(RateLimited):  # ...which still hold the limit, in this process
            await admit(a)
        assert a.unshared == 2
        own_redis.start()
        deadline = time.monotonic() + 5
        while not a.up and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert a.up
        await asyncio.sleep(0.2)
        key = f"{{aiogw:alice}}:d:{today}"
        # Redis lost its data in the restart (no persistence): the next admission seeds
        # the month from the state store; the spend kept while away was not lost either.
        assert own_redis.command("GET", key) in (None, b"0.25")
    finally:
        await a.close()


async def test_redis_away_closed_refuses_with_a_503_that_says_why(own_redis):
    a = await ledger(own_redis.url, Limits(requests_per_minute=100), on_failure="closed", password="s3cret")
    try:
        await admit(a)
        own_redis.stop()
        await asyncio.sleep(0.1)
        with pytest.raises(Unavailable) as away:
            await admit(a)
        assert away.value.status == 503 and away.value.kind == "limits_store_away"
        assert "limits store" in away.value.message and "retry" in away.value.message
        assert a.refused_away == 1
    finally:
        await a.close()


async def test_a_stalled_redis_is_away_within_the_timeout_not_a_hang(own_redis):
    a = await ledger(own_redis.url, Limits(requests_per_minute=100), password="s3cret")
    try:
        await admit(a)
        own_redis._process.send_signal(signal.SIGSTOP)
        try:
            # The first waits for the link to give up on Redis (a second); then it is away.
            got = await asyncio.wait_for(admit(a), 5)
            assert isinstance(got, Admission)  # away: this process's own counters
            assert not a.up
            # The link tries again: the kernel takes its connection for the stopped
            # server, and the hello waits for a reply. Requests do not wait with it.
            while a.link._protocol is None:
                await asyncio.sleep(0.01)
            for _ in range(5):
                assert isinstance(await asyncio.wait_for(admit(a), 0.5), Admission)
            assert a.link._protocol is not None and not a.up  # that hello still waits
        finally:
            own_redis._process.send_signal(signal.SIGCONT)
    finally:
        await a.close()


async def test_a_wrong_password_stops_the_start_and_one_changed_later_is_said_once(own_redis, caplog):
    with pytest.raises(ConfigError, match=r"refused the gateway's credentials \(WRONGPASS.*check \[limits\] password"):
        await ledger(own_redis.url, Limits(requests_per_minute=100), password="wrong")
    a = await ledger(own_redis.url, Limits(requests_per_minute=100), password="s3cret")
    try:
        assert a.up
        own_redis.command("CONFIG", "SET", "requirepass", "rotated")  # on the server's side only
        own_redis.password = "rotated"
        own_redis.command("CLIENT", "KILL", "TYPE", "normal")  # the gateway's connection too
        await asyncio.sleep(5)  # the reconnects' backoff, a few times over
        assert not a.up
        assert isinstance(await admit(a), Admission)  # away: this process's own counters
        refused = [r for r in caplog.records if "refused the gateway's credentials" in r.getMessage()]
        assert len(refused) == 1, [r.getMessage() for r in caplog.records]
    finally:
        await a.close()


# --- a gateway whose Redis goes away under load --------------------------------------

def _limits(url: str, on_failure: str) -> str:
    return f"""
[limits]
requests_per_minute = 100000
store = "{url}"
password = {{ env = "AIOGW_TEST_REDIS_PASSWORD" }}
on_store_failure = "{on_failure}"
[[users]]
name = "alice"
[metrics]
enabled = true
"""


def _metric(base: str, name: str) -> float:
    for line in httpx.get(f"{base}/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


@pytest.fixture(scope="module")
def fake_url(servers):
    fake = FakeUpstream(FakeConfig())
    port = servers.run(fake.start())
    yield f"http://127.0.0.1:{port}"
    servers.run(fake.stop())


@pytest.mark.parametrize("on_failure", ["open", "closed"])
def test_redis_stopped_under_load_and_started_again(own_redis, fake_url, tmp_path, on_failure, request):
    """Four agents ask without pause while Redis stops and starts again: "open" serves
    every request, "closed" answers 503 in the provider's envelope while it is away;
    either way the log, /metrics and /readyz say so, and counting resumes in Redis."""
    gw = Served(tmp_path, fake_url, _limits(own_redis.url, on_failure),
                env={"AIOGW_TEST_REDIS_PASSWORD": "s3cret"})
    request.addfinalizer(gw.kill)
    outcomes: list[str] = []
    stop = threading.Event()

    def agent() -> None:
        client = gw.anthropic(timeout=20)
        while not stop.is_set():
            try:
                client.messages.create(model="claude-haiku-4-5", max_tokens=8,
                                       messages=[{"role": "user", "content": "hi"}])
                outcomes.append("ok")
            except anthropic.APIStatusError as exc:
                outcomes.append(f"{exc.status_code}: {exc.message}")
            except anthropic.APIError as exc:
                outcomes.append(f"{type(exc).__name__}: {exc}")

    agents = [threading.Thread(target=agent) for _ in range(4)]
    try:
        for t in agents:
            t.start()
        gw.wait(lambda: outcomes.count("ok") >= 20, what="requests through the gateway")
        assert _metric(gw.base, "aiogw_limits_store_up") == 1
        own_redis.stop()
        gw.wait(lambda: _metric(gw.base, "aiogw_limits_store_up") == 0, what="the gateway to see Redis away")
        away = len(outcomes)
        gw.wait(lambda: len(outcomes) >= away + 20, what="requests while Redis is away")
        ready = httpx.get(f"{gw.base}/readyz").json()
        assert ready["limits"] == {"store": "away", "on_store_failure": on_failure}
        log = gw.stdout() + gw.stderr()
        assert "limits: Redis at 127.0.0.1" in log and "is away" in log
        own_redis.start()
        gw.wait(lambda: _metric(gw.base, "aiogw_limits_store_up") == 1, what="the gateway to find Redis again")
        back = len(outcomes)
        gw.wait(lambda: len(outcomes) >= back + 20, what="requests after Redis returned")
    finally:
        stop.set()
        for t in agents:
            t.join(30)
    after = outcomes[back + 4:]  # the four in flight at the return may have been admitted either way
    assert after and set(after) == {"ok"}
    if on_failure == "open":
        assert set(outcomes) == {"ok"}
        assert _metric(gw.base, "aiogw_limits_unshared_admissions_total") > 0
    else:
        refused = [o for o in outcomes if o != "ok"]
        assert refused and all(o.startswith("503:") and "aiogw: the gateway cannot reach its limits store" in o
                               for o in refused)
        assert _metric(gw.base, "aiogw_limits_store_refusals_total") == len(refused)
    # Counting resumed in Redis: alice's bucket is there again, at her limit.
    assert own_redis.command("HGET", "{aiogw:alice}:st", "rc") == b"100000"
    assert httpx.get(f"{gw.base}/readyz").json()["limits"] == {"store": "up", "on_store_failure": on_failure}
    assert gw.stop() == 0


# --- gateways of both kinds on one database -----------------------------------------

def test_gateways_counting_in_memory_and_in_redis_never_share_a_database(servers, fake_url, tmp_path, redis_url):
    """A rolling move to Redis must not double the limits meanwhile: a gateway with
    limits in its memory and one with them in Redis refuse each other's database,
    whichever starts first; gateways sharing Redis share it."""
    from aiogw.store.base import StateUnavailable
    from tests.served import BASE_TOML, LimitedGateway

    state = tmp_path / "state.db"
    memory = BASE_TOML + "[limits]\nrequests_per_minute = 5\n"
    redis = BASE_TOML + f'[limits]\nrequests_per_minute = 5\nstore = "{redis_url}"\n'

    def start(toml: str) -> LimitedGateway:
        return LimitedGateway(servers, None, fake_url, state, toml=toml)

    first = start(memory)
    try:
        with pytest.raises(StateUnavailable, match="a gateway with limits in its own memory uses the state database"):
            start(redis)
    finally:
        first.stop()
    shared = [start(redis), start(redis)]  # two of Redis's: fine
    try:
        with pytest.raises(StateUnavailable, match=r"another gateway .* set \[limits\] store"):
            start(memory)
    finally:
        for g in shared:
            g.stop()
    start(memory).stop()  # all gone: the database is free again


def test_a_reload_changes_what_admission_does_while_redis_is_away_but_another_redis_waits(servers, fake_url, tmp_path,
                                                                                         redis_url):
    from aiogw.app import RUNTIME
    from tests.served import BASE_TOML, LimitedGateway

    toml = BASE_TOML + f'[limits]\nrequests_per_minute = 5\nstore = "{redis_url}"\n'
    g = LimitedGateway(servers, None, fake_url, tmp_path / "state.db", toml=toml)
    try:
        shared = g.runner.app[RUNTIME].parts.accountant.shared
        assert shared.settings.on_failure == "open"
        g.path.write_text(g.path.read_text() + 'on_store_failure = "closed"\nreservation_seconds = 60\n')
        assert g.reload() == []  # nothing waits for a restart
        assert (shared.settings.on_failure, shared.settings.reservation_seconds) == ("closed", 60)
        assert httpx.get(g.base.rsplit("/llm-gateway", 1)[0] + "/readyz").json()["limits"]["on_store_failure"] == "closed"
        g.path.write_text(g.path.read_text().replace(redis_url, redis_url.rsplit("/", 1)[0] + "/9"))
        assert g.reload() == ["limits.store"]  # another Redis: at restart
        assert shared.settings.url == redis_url
    finally:
        g.stop()


# --- Sentinel: the master asked of the sentinels, and found again after a failover ---

class Sentinel(Throwaway):
    """One redis-server in sentinel mode watching `master` as "mymaster" (quorum 1)."""

    LOG = "sentinel.log"

    def __init__(self, master: RedisServer) -> None:
        super().__init__()
        self.master = master
        self.port = 0

    def start(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="aiogw-sentinel-", dir="/tmp"))
        self.port = free_port()
        conf = self.folder / "sentinel.conf"  # sentinel rewrites it: its own, writable
        conf.write_text(f"port {self.port}\nbind 127.0.0.1\ndir {self.folder}\nlogfile {self.folder / self.LOG}\n"
                        f"sentinel monitor mymaster 127.0.0.1 {self.master.port} 1\n"
                        "sentinel down-after-milliseconds mymaster 1000\nsentinel failover-timeout mymaster 5000\n")
        self._process = subprocess.Popen([str(self.master.binary), str(conf), "--sentinel"], cwd=self.folder,
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not self.master_port():
            time.sleep(0.05)
        assert self.master_port() == self.master.port, self.log_tail()

    def command(self, *args: str) -> object:
        with socket.create_connection(("127.0.0.1", self.port), 2) as sock:
            sock.sendall(hiredis.pack_command(args))
            reader = hiredis.Reader()
            while (reply := reader.gets()) is False:
                reader.feed(sock.recv(65536))
            return reply

    def master_port(self) -> int | None:
        try:
            reply = self.command("SENTINEL", "get-master-addr-by-name", "mymaster")
        except OSError:
            return None
        return int(reply[1]) if isinstance(reply, list) else None


@pytest.fixture
def failover():
    """A master, its replica and a sentinel watching them, all of this test's own."""
    master = RedisServer()
    master.start()
    replica = RedisServer()
    replica.settings_given = ["--replicaof", "127.0.0.1", str(master.port)]
    replica.start()
    sentinel = Sentinel(master)
    try:
        sentinel.start()
        yield master, replica, sentinel
    finally:
        for server in (sentinel, replica, master):
            server.close()


async def test_sentinel_names_the_master_and_a_failover_moves_the_limits_to_the_new_one(failover):
    master, replica, sentinel = failover
    a = await ledger(f"redis+sentinel://127.0.0.1:{sentinel.port}/mymaster/0", Limits(requests_per_minute=1000))
    try:
        assert a.up and isinstance(await admit(a), Reservation)
        assert master.command("HGET", "{aiogw:alice}:st", "rc") == b"1000"  # counted on the master
        deadline = time.monotonic() + 10
        while b"master_link_status:up" not in replica.command("INFO", "replication"):
            assert time.monotonic() < deadline, "the replica did not sync"
            await asyncio.sleep(0.05)
        assert sentinel.command("SENTINEL", "FAILOVER", "mymaster") == b"OK"
        deadline = time.monotonic() + 30
        while sentinel.master_port() != replica.port:
            assert time.monotonic() < deadline, sentinel.log_tail()
            await asyncio.sleep(0.1)
        while master.command("ROLE")[0] != b"slave":  # the sentinel turns the old master into a replica
            assert time.monotonic() < deadline, sentinel.log_tail()
            await asyncio.sleep(0.1)
        # The next write on the old master is refused (READONLY) or its connection was
        # cut by the sentinel: the link drops, asks the sentinel again, counts on the new one.
        while True:
            got = await admit(a, user="bob")
            if isinstance(got, Reservation) and a.up:
                break
            assert time.monotonic() < deadline, "the limits never reached the new master"
            await asyncio.sleep(0.1)
        assert a.link.failures >= 1
        assert replica.command("ROLE")[0] == b"master"
        assert replica.command("HGET", "{aiogw:bob}:st", "rc") == b"1000"  # admitted there, after the failover
    finally:
        await a.close()


# --- TLS: rediss:// with the server's CA, and a server the client cannot verify -------

@pytest.fixture
def tls_redis(tmp_path):
    """A Redis of the test's own that also speaks TLS, with a certificate for 127.0.0.1."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                           str(cert), "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                          capture_output=True, timeout=60)
    if made.returncode != 0:
        pytest.skip(f"openssl could not make a certificate: {made.stderr.decode(errors='replace')}")
    server = RedisServer()
    tls_port = free_port()
    server.settings_given = ["--tls-port", str(tls_port), "--tls-cert-file", str(cert), "--tls-key-file", str(key),
                             "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no"]
    server.start()
    yield f"rediss://127.0.0.1:{tls_port}/0", cert
    server.close()


async def test_limits_over_tls_verify_the_servers_certificate(tls_redis, tmp_path):
    url, cert = tls_redis
    a = await ledger(f"{url}?ssl_ca_certs={cert}", Limits(requests_per_minute=3))
    try:
        assert a.up
        got = await outcomes([admit(a) for _ in range(5)])
        assert got.count("ok") == 3  # counted in Redis, over TLS
    finally:
        await a.close()
    # A server whose certificate the client cannot verify (no CA given: the system's)
    # is away, and says why; told not to verify, it is reached.
    stranger = await ledger(url, Limits(requests_per_minute=3))
    try:
        assert not stranger.up
    finally:
        await stranger.close()
    unverified = await ledger(f"{url}?ssl_cert_reqs=none", Limits(requests_per_minute=3))
    try:
        assert unverified.up and isinstance(await admit(unverified, user="bob"), Reservation)
    finally:
        await unverified.close()


async def test_limits_over_a_unix_socket_and_as_an_acl_user(tmp_path):
    server = RedisServer()
    socket_path = tmp_path / "redis.sock"
    server.settings_given = ["--unixsocket", str(socket_path), "--unixsocketperm", "700"]
    server.start()
    try:
        a = await ledger(f"unix://{socket_path}?db=2", Limits(requests_per_minute=2))
        try:
            assert (await outcomes([admit(a) for _ in range(3)])).count("ok") == 2
            assert server.command("HGET", "{aiogw:alice}:st", "rc", db=2) == b"2"  # in the database it named
        finally:
            await a.close()
        server.command("ACL", "SETUSER", "limits", "on", ">acl-secret", "~{aiogw:*", "+@all")
        b = await ledger(f"redis://limits@127.0.0.1:{server.port}/0", Limits(requests_per_minute=2),
                         password="acl-secret")
        try:
            assert b.up and isinstance(await admit(b), Reservation)
        finally:
            await b.close()
        with pytest.raises(ConfigError, match="WRONGPASS"):
            await ledger(f"redis://limits@127.0.0.1:{server.port}/0", Limits(requests_per_minute=2), password="nope")
    finally:
        server.close()
