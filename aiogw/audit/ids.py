"""Sortable unique ids: 48 bits of milliseconds, then 80 random bits, in Crockford base32.

Ids sort by time as text, so the audit table's primary key is also its time index:
`since`/`until` filters become a range on the key.
"""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# A random byte -> a random digit (256 is a multiple of 32, so digits stay uniform).
_DIGIT_OF_BYTE = bytes(_ALPHABET[b & 31].encode()[0] for b in range(256))


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(at: float | None = None) -> str:
    ms = int((time.time() if at is None else at) * 1000)
    return _prefix(ms) + _random_digits()


# Random digits drawn 4,096 at a time (256 ids): os.urandom is a getrandom() call that
# lets go of the GIL, and beside the audit's database thread the loop then waits to take
# it back. One call an id was 2.8% of py-spy's samples of the audit-on gateway (1 KB),
# most of it that wait; the CPU it saves is within bench.audit_alone's noise.
_DRAW = 4096
_pool: list = ["", 0]  # digits, and how many are used; ids are made on the loop thread only


def _random_digits() -> str:
    digits, used = _pool
    if used + 16 > len(digits):
        digits, used = os.urandom(_DRAW).translate(_DIGIT_OF_BYTE).decode(), 0
        _pool[0] = digits
    _pool[1] = used + 16
    return digits[used : used + 16]


def _forget_pool() -> None:
    _pool[0], _pool[1] = "", 0  # a forked child must not hand out its parent's next ids


os.register_at_fork(after_in_child=_forget_pool)


_last: list = [-1, ""]  # the last millisecond and its digits: ids come many a millisecond


def _prefix(ms: int) -> str:
    if _last[0] != ms:
        _last[0], _last[1] = ms, _encode(ms, 10)
    return _last[1]


def bound(at: float, upper: bool = False) -> str:
    """The smallest (or largest) id of the millisecond `at`, for range queries."""
    return _encode(int(at * 1000), 10) + ("Z" * 16 if upper else "0" * 16)


def time_of(ident: str) -> float:
    ms = 0
    for ch in ident[:10]:
        ms = ms * 32 + _ALPHABET.index(ch)
    return ms / 1000
