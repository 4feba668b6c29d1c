"""Spend saved by gateways that share one state store: each adds what it charged, none
overwrites another's, and a restart neither loses nor doubles what was charged. On both
stores (tests/stores.py)."""

import time

import pytest

from aiogw.limits.ledger import Ledger, day_of
from aiogw.limits.persistence import LimitStore
from aiogw.limits.settings import Limits
from tests.pgserver import pg_server_fixture, pg_url_fixture  # noqa: F401
from tests.stores import STORES, fresh_store

BUDGET = Limits(daily_budget_usd=100.0)


@pytest.fixture(params=STORES)
async def store(request, tmp_path):
    async with fresh_store(request, tmp_path) as opened:
        yield opened


async def gateway(store) -> tuple[Ledger, LimitStore]:
    """A gateway's limits: its ledger and what saves it, loaded from the store."""
    ledger = Ledger(BUDGET, {})
    counters = LimitStore(store, ledger)
    await counters.start()
    return ledger, counters


def charge(ledger: Ledger, usd: float, now: float) -> None:
    ledger.settle("alice", None, 0, usd, now)


async def spent(store, now: float) -> float:
    rows, _ = await store.load_limits(day_of(now)[:7])
    return sum(row.usd for row in rows if row.user == "alice" and row.day == day_of(now))


async def test_two_gateways_add_their_spend_and_a_restart_neither_loses_nor_doubles_it(store):
    now = time.time()
    a_ledger, a = await gateway(store)
    b_ledger, b = await gateway(store)
    charge(a_ledger, 1.0, now)
    charge(b_ledger, 2.0, now)
    await a.flush()
    await b.flush()
    assert await spent(store, now) == pytest.approx(3.0)
    charge(a_ledger, 0.5, now)
    await a.flush()
    await a.flush()  # nothing new: nothing added
    await b.close()
    await a.close()
    assert await spent(store, now) == pytest.approx(3.5)
    c_ledger, c = await gateway(store)  # a restart reads what both charged
    assert c_ledger.state("alice", now).day_usd == pytest.approx(3.5)
    charge(c_ledger, 0.25, now)
    await c.close()
    assert await spent(store, now) == pytest.approx(3.75)


async def test_a_day_that_ends_is_saved_whole_once(store):
    day = 86_400.0 * (time.time() // 86_400)
    ledger, counters = await gateway(store)
    charge(ledger, 1.0, day + 100)
    await counters.flush()
    charge(ledger, 2.0, day + 200)
    charge(ledger, 4.0, day + 86_400 + 10)  # the next day: yesterday is closed with 3.0
    await counters.close()
    assert await spent(store, day + 100) == pytest.approx(3.0)
    assert await spent(store, day + 86_400 + 10) == pytest.approx(4.0)
