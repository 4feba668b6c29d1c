"""Audit ids: 26 Crockford digits that sort by time and never repeat."""

import os

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


def test_a_forked_child_does_not_hand_out_its_parents_next_ids():
    ids.new_id()  # the pool is drawn and partly used
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent; it never returns into pytest
        try:
            os.close(read)
            os.write(write, "".join(ids.new_id(1_790_000_000) for _ in range(8)).encode())
        finally:
            os._exit(0)
    os.close(write)
    child = b""
    while chunk := os.read(read, 4096):
        child += chunk
    os.close(read)
    os.waitpid(pid, 0)
    mine = "".join(ids.new_id(1_790_000_000) for _ in range(8))
    assert len(child) == len(mine) == 8 * 26
    assert {child[i : i + 26].decode() for i in range(0, len(child), 26)}.isdisjoint(
        mine[i : i + 26] for i in range(0, len(mine), 26)
    )
