"""The record budget of requests without a valid key: plain arithmetic, no server."""

from __future__ import annotations

from aiogw.exchange import Exchange
from aiogw.unauthenticated import KeylessRecords, RecordBudget


def taken(budget: RecordBudget, address: str, n: int, now: float = 0.0) -> int:
    return sum(budget.take(address, now) for _ in range(n))


def test_one_address_gets_a_minutes_burst_then_its_rate():
    budget = RecordBudget(10)
    assert taken(budget, "a", 15) == 10
    assert taken(budget, "a", 5, now=6.0) == 1  # 6 s at 10 a minute refills one


def test_all_addresses_together_get_ten_times_one_address():
    budget = RecordBudget(10)
    got = sum(taken(budget, f"10.0.{i // 256}.{i % 256}", 10) for i in range(30))
    assert got == 100  # each could take 10; together they stop at 10 x 10
    assert not budget.take("10.9.9.9", 0.0)  # a new address too, until the whole refills


def test_a_forgotten_address_starts_again_with_a_full_bucket():
    budget = RecordBudget(1)
    assert budget.take("first", 0.0) and not budget.take("first", 0.0)
    for i in range(10_000):  # 10,000 other addresses push it out of the memory
        budget.take(f"other-{i}", 0.0)
    # 6 s on, everyone's bucket has one record again, its own only a tenth: known, it
    # would be refused; forgotten, it has a full bucket (at most one burst more).
    assert budget.take("first", 6.0)


def test_the_stage_marks_keyless_exchanges_past_the_budget_quiet():
    stage = KeylessRecords(2)
    done = []
    for user in (None, None, "alice", None):
        ex = Exchange("GET")
        ex.user, ex.client = user, "1.2.3.4"
        ex.finish()
        stage.end(ex)
        done.append(ex.quiet)
    assert done == [False, False, False, True] and stage.unrecorded == 1  # a known user is never counted
