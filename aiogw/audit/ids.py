"""Sortable unique ids: 48 bits of milliseconds, then 80 random bits, in Crockford base32.

Ids sort by time as text, so the audit table's primary key is also its time index:
`since`/`until` filters become a range on the key.
"""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(at: float | None = None) -> str:
    ms = int((time.time() if at is None else at) * 1000)
    return _encode(ms, 10) + _encode(int.from_bytes(os.urandom(10), "big"), 16)


def bound(at: float, upper: bool = False) -> str:
    """The smallest (or largest) id of the millisecond `at`, for range queries."""
    return _encode(int(at * 1000), 10) + ("Z" * 16 if upper else "0" * 16)


def time_of(ident: str) -> float:
    ms = 0
    for ch in ident[:10]:
        ms = ms * 32 + _ALPHABET.index(ch)
    return ms / 1000
