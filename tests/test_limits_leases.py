"""Leases (aiogw.limits.lease): a busy user's admissions made on a share of its limits
that each process holds in Redis. Two ledgers stand for two processes on one Redis the
test starts; every bound README states for leases is driven here to its edge."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import time

import pytest

from aiogw.errors import GatewayError, NotAllowed, RateLimited, Unavailable
from aiogw.limits import lease as lease_mod
from aiogw.limits.lease import LeaseHold
from aiogw.limits.ledger import day_of
from aiogw.limits.settings import Limits
from aiogw.limits.shared import Reservation, SharedLedger
from tests.redisserver import RedisServer, redis_server_fixture, redis_url_fixture  # noqa: F401
from tests.test_limits_redis import admit, ledger, processes

# Far above what a test sends, unless a test is about one of them.
ROOMY = {"requests_per_minute": 10**6, "tokens_per_minute": 10**9, "max_concurrent": 10**5,
         "daily_budget_usd": 10**6}
FLUSHED = lease_mod.INTERVAL * 2.5  # long enough for a flush to have come back


def roomy(**given) -> Limits:
    return Limits(**{**ROOMY, **given})


def db(url: str) -> int:
    return int(url.rsplit("/", 1)[1])


def evalsha_calls(server: RedisServer) -> int:
    stats = server.command("INFO", "commandstats").decode()
    for line in stats.splitlines():
        if line.startswith("cmdstat_evalsha:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


async def busy(shared: SharedLedger, n: int = 2 * lease_mod.BUSY, *, leased: bool = True) -> None:
    """Make alice busy in this process (admitted and settled `n` times at once), then let
    a flush lease her (or, not `leased`, let two flushes refuse to)."""
    got = await asyncio.gather(*(admit(shared) for _ in range(n)))
    for held in got:
        shared.settle("alice", held, 10, 0.0, time.time())
    if leased:
        await until(lambda: shared.leases.by_user["alice"].r >= 1)
    else:
        await asyncio.sleep(2 * FLUSHED)


async def until(condition, seconds: float = 3.0) -> None:
    """Until `condition()` holds (a flush has come back); fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the lease's flush did not come"
        await asyncio.sleep(0.005)


async def take(shared: SharedLedger, **kw) -> object:
    """An admission's outcome: what it holds, or the refusal."""
    try:
        return await admit(shared, **kw)
    except GatewayError as refused:
        return refused


async def test_a_busy_user_is_admitted_on_a_lease_with_no_round_trip(redis_server, redis_url):
    async with processes(redis_url, roomy(), 1) as (a,):
        await busy(a, 32)
        before = evalsha_calls(redis_server)
        held = [await admit(a) for _ in range(50)]  # fewer than the grant: twice the last interval's demand
        assert all(isinstance(h, LeaseHold) for h in held)
        assert evalsha_calls(redis_server) - before <= 1  # at most a flush on its way, no admission
        assert a.leases.leased == 50 and a.leases.held == 1
        # The lease holds its slots in Redis: the requests in flight and its free ones.
        state = redis_server.command("HGET", "{aiogw:alice}:st", "hs", db=db(redis_url))
        assert int(state) >= 50


async def both(a: SharedLedger, b: SharedLedger, n: int, **kw) -> list[tuple[SharedLedger, object]]:
    """`n` admissions in each process at once: (the process, the outcome) each."""
    owners = [a] * n + [b] * n
    return list(zip(owners, await asyncio.gather(*(take(x, **kw) for x in owners)), strict=True))


async def test_a_leased_rate_never_admits_more_than_the_limit_across_processes(redis_url):
    rpm = 4000  # a grant is at most 1/32 of what is left: 125 requests
    async with processes(redis_url, Limits(requests_per_minute=rpm)) as (a, b):
        started, first_refusal = time.monotonic(), None
        admitted = 0
        # Until half a second after the first refusal: the grants left are used by then,
        # and what the bucket refills is admitted request by request.
        while first_refusal is None or time.monotonic() - first_refusal < 0.5:
            got = await both(a, b, 40)
            ok = [(x, h) for x, h in got if not isinstance(h, GatewayError)]
            assert all(isinstance(h, RateLimited) and h.kind == "rate_limit:requests_per_minute"
                       for _, h in got if isinstance(h, GatewayError))
            for x, h in ok:
                x.settle("alice", h, 10, 0.0, time.time())
            admitted += len(ok)
            if first_refusal is None and len(ok) < len(got):
                first_refusal = time.monotonic()
            await asyncio.sleep(lease_mod.INTERVAL / 2)
        refill = (time.monotonic() - started) * rpm / 60
        assert a.leases.leased > 0 and b.leases.leased > 0  # both admitted on leases
        # Never more than the limit (and what a minute's rate refilled meanwhile); and
        # once grants stop, the rest is admitted request by request: no request of the
        # limit is lost in a lease either.
        assert rpm <= admitted <= rpm + refill + 1


async def test_a_leased_concurrency_is_held_exactly_across_processes(redis_url):
    most = 640
    async with processes(redis_url, roomy(max_concurrent=most)) as (a, b):
        await asyncio.gather(busy(a, 64), busy(b, 64))
        held: list[tuple[SharedLedger, object]] = []
        quiet = 0
        while quiet < 3:
            ok = [(x, h) for x, h in await both(a, b, 32) if not isinstance(h, GatewayError)]
            held += ok
            assert len(held) <= most
            quiet = quiet + 1 if not ok else 0
            await asyncio.sleep(lease_mod.INTERVAL)
        assert any(isinstance(h, LeaseHold) for _, h in held)
        assert len(held) == most  # every slot taken, none twice
        owner, first = held[0]  # one ends: its slot is its process's again
        owner.settle("alice", first, 10, 0.0, time.time())
        await asyncio.sleep(FLUSHED)
        assert not isinstance(await take(owner), GatewayError)


async def test_a_leased_budget_is_overshot_by_no_more_than_the_requests_in_flight(redis_server, redis_url):
    budget, estimate, cost, in_flight = 1.0, 0.001, 0.003, 8  # each costs three times its estimate
    async with processes(redis_url, roomy(daily_budget_usd=budget)) as (a, b):
        spent, refused = 0.0, 0
        while refused < 3 * in_flight:
            for x, h in await both(a, b, in_flight // 2, usd=estimate):
                if isinstance(h, GatewayError):
                    assert isinstance(h, NotAllowed) and h.kind == "budget:daily_budget_usd"
                    refused += 1
                else:
                    x.settle("alice", h, 10, cost, time.time())
                    spent += cost
            await asyncio.sleep(0.01)
        assert a.leases.leased > 0 and b.leases.leased > 0
        # The bound: what the requests in flight at the crossing spend beyond their estimate.
        assert budget - cost <= spent <= budget + in_flight * (cost - estimate) + 1e-9
    # Closed: every lease flushed its spend. Redis has every cent, once.
    day = redis_server.command("GET", f"{{aiogw:alice}}:d:{day_of(time.time())}", db=db(redis_url))
    assert float(day) == pytest.approx(spent)


async def test_a_quiet_user_gives_its_lease_back(redis_server, redis_url):
    async with processes(redis_url, roomy(requests_per_minute=6400), 1) as (a,):
        await busy(a, 64)
        assert a.leases.held == 1
        await until(lambda: a.leases.held == 0)  # two quiet intervals: everything given back
        st = redis_server.command("HMGET", "{aiogw:alice}:st", "rl", "hs", "ht", db=db(redis_url))
        assert 6400 - 64 - 1 <= float(st[0]) and int(st[1]) == 0 and float(st[2]) == 0
        # Its entry stays, holding nothing, while the lease may come back; quiet for
        # longer, it goes.
        entries = redis_server.command("ZRANGE", "{aiogw:alice}:lease", 0, -1, db=db(redis_url))
        assert [e.split(b"|")[1:3] for e in entries] == [[b"0", b"0"]]
        await until(lambda: "alice" not in a.leases.by_user, 2 * lease_mod.INTERVAL * (lease_mod._IDLE + 5))
        assert redis_server.command("ZCARD", "{aiogw:alice}:lease", db=db(redis_url)) == 0


async def test_a_dead_processs_lease_expires_and_its_slots_come_back(redis_url):
    most = 320
    live = await ledger(redis_url, roomy(max_concurrent=most), ttl=1)
    dead = await ledger(redis_url, roomy(max_concurrent=most), ttl=1)
    try:
        await busy(dead, 64)
        assert dead.leases.held == 1
        dead.leases._task.cancel()  # it dies: no flush, no renewal, nothing given back
        dead._renewing.cancel()
        got = [await take(live) for _ in range(most)]
        assert sum(not isinstance(h, GatewayError) for h in got) < most  # the dead one's lease holds slots
        await asyncio.sleep(1.5)  # past its ttl
        for h in got:
            if not isinstance(h, GatewayError):
                live.settle("alice", h, 10, 0.0, time.time())
        await asyncio.sleep(FLUSHED)
        again = [await take(live) for _ in range(most)]
        assert sum(not isinstance(h, GatewayError) for h in again) == most
        await dead.link.close()
    finally:
        await live.close()


async def test_redis_away_drops_every_lease_closed_refuses_at_once(tmp_path):
    server = RedisServer(password="s3cret")
    server.start()
    try:
        a = await ledger(server.url, roomy(), on_failure="closed", password="s3cret")
        try:
            await busy(a)
            assert isinstance(await admit(a), LeaseHold)
            server.stop()
            deadline = time.monotonic() + 2
            while a.up and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            with pytest.raises(Unavailable):  # not admitted on a lease Redis no longer keeps
                await admit(a)
        finally:
            await a.close()
    finally:
        server.close()


async def test_small_limits_and_leases_off_are_never_leased(redis_url):
    async with processes(redis_url, Limits(requests_per_minute=60), 1) as (a,):
        await busy(a, leased=False)  # 60/32: less than two requests a grant
        assert isinstance(await admit(a), Reservation) and a.leases.held == 0
    async with processes(redis_url, roomy(), 1) as (a,):
        a.settings = dataclasses.replace(a.settings, leases=False)  # as a reload sets it
        await busy(a, leased=False)
        assert isinstance(await admit(a), Reservation) and a.leases.held == 0 and a.leases.leased == 0


async def test_a_reload_that_lowers_a_limit_is_not_admitted_on_the_old_grant(redis_url):
    async with processes(redis_url, roomy(), 1) as (a,):
        await busy(a, 64)
        assert a.leases.by_user["alice"].r >= 100  # a grant far above what comes next
        a.local.reconfigure(Limits(requests_per_minute=60), {})  # as a reload does: new limits
        got = [await take(a) for _ in range(100)]
        assert not any(isinstance(h, LeaseHold) for h in got)
        assert sum(not isinstance(h, GatewayError) for h in got) <= 60 + 1  # the new limit, from Redis


async def test_what_redis_lost_of_a_dead_lease_is_counted_again_by_the_next_sweep(redis_server, redis_url):
    most = 320
    live = await ledger(redis_url, roomy(max_concurrent=most), ttl=1)
    dead = await ledger(redis_url, roomy(max_concurrent=most), ttl=1)
    try:
        await busy(dead, 64)
        dead.leases._closing = True  # it dies: no flush, no renewal, nothing given back
        dead._renewing.cancel()
        await asyncio.sleep(lease_mod.INTERVAL * 2)
        # Its entry is gone from Redis, not swept (a key that expired whole): the slots
        # the hash still counts for it must come back all the same.
        redis_server.command("DEL", "{aiogw:alice}:lease", db=db(redis_url))
        held = int(redis_server.command("HGET", "{aiogw:alice}:st", "hs", db=db(redis_url)))
        assert held > 0
        await asyncio.sleep(1.2)  # past its ttl: the next admission sweeps
        got = [await take(live) for _ in range(most)]
        assert sum(not isinstance(h, GatewayError) for h in got) == most
        await dead.link.close()
    finally:
        await live.close()


async def test_a_flush_whose_reply_a_stalled_redis_lost_adds_its_spend_once():
    server = RedisServer()
    server.start()
    try:
        a = await ledger(server.url, roomy())
        try:
            await busy(a)
            spent = 0.0
            for _ in range(3):  # spend on the lease, then Redis stalls past the link's timeout
                for held in [await admit(a) for _ in range(10)]:
                    assert isinstance(held, LeaseHold)
                    a.settle("alice", held, 10, 0.01, time.time())
                    spent += 0.01
                server._process.send_signal(signal.SIGSTOP)
                await until(lambda: not a.up)  # the flush's reply never came: the link gave up
                server._process.send_signal(signal.SIGCONT)  # ...and Redis runs that flush now
                await until(lambda: a.up)
                await until(lambda: not a.leases.by_user["alice"].pending)  # the next flush, the same totals
                await busy(a)
            assert a.link.failures == 3
        finally:
            await a.close()
        day = server.command("GET", f"{{aiogw:alice}}:d:{day_of(time.time())}")
        assert float(day) == pytest.approx(spent)  # not once more for each lost reply
    finally:
        server.close()


async def test_a_lease_is_flushed_again_after_redis_lost_its_scripts(redis_server, redis_url):
    async with processes(redis_url, roomy(), 1) as (a,):
        await busy(a, 32)
        redis_server.command("SCRIPT", "FLUSH", db=db(redis_url))
        held = await admit(a)
        assert isinstance(held, LeaseHold)
        a.settle("alice", held, 10, 0.25, time.time())
        lease = a.leases.by_user["alice"]
        await until(lambda: not lease.pending)  # the flush met NOSCRIPT, loaded LEASE and ran it
        day = redis_server.command("GET", f"{{aiogw:alice}}:d:{day_of(time.time())}", db=db(redis_url))
        assert float(day) == pytest.approx(0.25)
