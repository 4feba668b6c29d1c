"""Audit ids: 26 Crockford digits that sort by time and never repeat."""

from aiogw.audit import ids


def test_ids_sort_by_time_and_are_unique():
    made = [ids.new_id(1_790_000_000 + i / 1000) for i in range(2000)]
    assert made == sorted(made)
    assert len(set(made)) == len(made)
    again = [ids.new_id(1_790_000_000.5) for _ in range(10_000)]  # one millisecond
    assert len(set(again)) == len(again)
    assert all(len(i) == 26 and set(i) <= set(ids._ALPHABET) for i in made + again)


def test_time_of_and_bounds():
    i = ids.new_id(1_790_000_123.456)
    assert ids.time_of(i) == 1_790_000_123.456
    assert ids.bound(1_790_000_123.456) <= i <= ids.bound(1_790_000_123.456, upper=True)
    assert ids.bound(1_790_000_123.457) > i
