"""What happens to a pattern's candidate after Hyperscan reports it: where its span
starts and ends (`span` rules), and whether it passes (validators, `min_entropy`,
`max_length`, a prefilter's confirmation)."""

from __future__ import annotations

import re
from collections.abc import Callable

from aiogw.guards.catalog import Pattern
from aiogw.guards.credential_validators import shannon_entropy
from aiogw.guards.validators import VALIDATORS

# Longest match a SOM-less pattern may have: its start is searched for this far back.
REMATCH_WINDOW = 4096
# How far past a PEM header the END line is looked for (span = "block"): a 4096-bit RSA
# key is ~3.3 KB; 16 KB leaves room for escaped newlines and PGP blocks.
PEM_REACH = 16 * 1024
# Characters of a secret value (span = "value"); "=" only as trailing base64 padding, so
# walking back from the end stops at the assignment operator.
_VALUE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_~.!@#%^&*-")
_EMAIL_LOCAL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+-")


def value_span(text: str, end: int) -> tuple[int, int]:
    """The secret value that ends at (or just before) `end`: trailing punctuation and
    base64 padding kept out of the walk, then back over value characters."""
    e = end
    while e > 0 and text[e - 1] not in _VALUE_CHARS and text[e - 1] != "=":
        e -= 1
    s = e
    while s > 0 and text[s - 1] == "=":
        s -= 1
    while s > 0 and text[s - 1] in _VALUE_CHARS:
        s -= 1
    return s, e


class Rule:
    """What happens to a candidate of one pattern after Hyperscan reports it."""

    __slots__ = ("check", "confirm", "max_length", "min_entropy", "pattern", "rematch", "span", "start_free")

    def __init__(self, p: Pattern) -> None:
        self.pattern = p
        self.check: Callable[[str], bool] | None = VALIDATORS[p.validator] if p.validator else None
        self.min_entropy = p.min_entropy
        self.max_length = p.max_length
        self.span = p.span
        self.rematch: re.Pattern[str] | None = None
        # "value" spans are found from the end alone: no start-of-match needed.
        self.start_free = p.span == "value"
        # A prefilter's hits are only candidates: the expression itself must match.
        self.confirm = p.prefilter is not None

    def start(self, text: str, end: int) -> int | None:
        """The start of a candidate Hyperscan reported without one; None when a
        prefilter hit is not confirmed by the expression."""
        if self.start_free:
            return value_span(text, end)[0]
        lo = max(0, end - (self.max_length or REMATCH_WINDOW))
        m = self.rematch.search(text, lo, end) if self.rematch is not None else None
        if m is None:
            return None if self.confirm else lo
        return m.start()

    def accept(self, text: str, s: int, e: int) -> tuple[int, int] | None:
        """The span to report for candidate [s, e) of `text`, or None if it fails."""
        if self.max_length is not None and e - s > self.max_length:
            return None
        span = self.span
        if span == "value":
            s, e = value_span(text, e)
        elif span == "token" or span == "number":
            while s < e and not (text[s].isalnum() or text[s] == "+"):
                s += 1
            while e > s and not text[e - 1].isalnum():
                e -= 1
            if span == "number" and _inside_number(text, s, e):
                return None
        elif span == "email":
            lo = max(0, s - 64)
            while s > lo and text[s - 1] in _EMAIL_LOCAL:
                s -= 1
            while text[s] == ".":
                s += 1
        elif span == "block":
            j = text.find("-----END", e, e + PEM_REACH)
            k = text.find("-----", j + 8, j + 80) if j >= 0 else -1
            if k >= 0:
                e = k + 5
        if s >= e:
            return None
        if self.check is not None or self.min_entropy is not None:
            value = text[s:e]
            if self.check is not None and not self.check(value):
                return None
            if self.min_entropy is not None and shannon_entropy(value) < self.min_entropy:
                return None
        return s, e


def _inside_number(text: str, s: int, e: int) -> bool:
    """Whether [s, e) is part of something longer: a decimal (0.4532…), a signed, dashed
    or path-like id (-4532…, ID-4532…, a/4532…), a number with thousands separators, a
    word (x4532…); a comma before it is a CSV separator unless digits surround it."""
    before = text[s - 1] if s else " "
    if before.isalnum() or before in "_+":
        return True
    if s >= 2 and ((before in ".-/" and text[s - 2].isalnum()) or (before == "," and text[s - 2].isdigit())):
        return True
    after = text[e] if e < len(text) else " "
    if after.isalnum() or after == "_":
        return True
    return e + 1 < len(text) and after in ".-" and text[e + 1].isdigit()
