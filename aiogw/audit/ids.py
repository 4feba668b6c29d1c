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
    return _prefix(ms) + os.urandom(16).translate(_DIGIT_OF_BYTE).decode()


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
