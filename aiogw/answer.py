"""A finished exchange's response, read back once: decoded bytes and the dialect's Answer.

The on-loop charge of a user with limits, the answer guard's deferred scan, the
accounting and the audit record all read it, in the finisher's order; the `Reading`
on the exchange makes sure the bytes are joined and decoded once and the answer
parsed once, whoever asks first.
"""

from __future__ import annotations

import dataclasses

from aiogw import encoding
from aiogw.dialects import DIALECTS, Answer, Usage
from aiogw.exchange import Exchange

# A compressed answer is decoded up to this size: a bound against decompression bombs
# far above any real model answer.
MAX_DECODED = 64 * 1024 * 1024
# A token count is clamped to SQLite's INTEGER, the widest int orjson writes too. orjson
# reads a number past 2^64 as a float, which the dialects make an int of any size: left
# as it is, it broke the log line, and the audit record could be neither stored nor
# spilled. Clamped here, the one place usage is read back (for the accounting, the log
# line and the audit), and said in the exchange's reason.
TOKENS_MAX = 2**63 - 1
CLAMPED = "usage past 64 bits, clamped"


class Reading:
    """A finished exchange's response, read back once for whoever needs it (the on-loop
    charge of a user with limits, the answer guard's deferred scan, the accounting, the
    audit record): the decoded bytes when first asked, the whole answer when first
    asked, and the usage from whichever is cheaper. It is kept on the exchange and
    holds no reference back to it (a cycle would leave every exchange to the cyclic
    collector, which the gateway runs rarely: the heap grew to ~1 GB under load)."""

    __slots__ = ("_raw", "whole", "whole_read")

    def __init__(self) -> None:
        self._raw: bytes | bool | None = False  # False: not joined and decoded yet
        self.whole: Answer | None = None
        self.whole_read = False

    def raw(self, ex: Exchange) -> bytes | None:
        """The response as the provider meant it: chunks joined, content-encoding undone."""
        if self._raw is False:
            self._raw = _response_bytes(ex)
        return self._raw  # type: ignore[return-value]

    def answer(self, ex: Exchange) -> Answer | None:
        """The dialect's reading of the whole answer, or None. Never raises on odd
        provider data."""
        if not self.whole_read:
            raw = self.raw(ex)
            dialect = DIALECTS.get(ex.dialect)
            answer = dialect.answer(ex.endpoint, ex.status, ex.stream, raw) if dialect and raw is not None else None
            if answer is not None and max(answer.usage) > TOKENS_MAX:
                answer = dataclasses.replace(answer, usage=_bounded(answer.usage, ex))
            self.whole, self.whole_read = answer, True
        return self.whole

    def usage(self, ex: Exchange) -> Usage:
        """The usage the provider reported: from the whole answer once it is read; else
        a stream's usage events alone, or a JSON body's usage object (every dialect but
        Gemini's JSON array), which is cheaper; else the whole answer."""
        if not self.whole_read:
            dialect = DIALECTS.get(ex.dialect)
            raw = self.raw(ex)
            found = dialect.usage(ex.endpoint, ex.stream, raw) if dialect is not None and raw is not None else None
            if found is not None:
                return _bounded(found, ex) if max(found) > TOKENS_MAX else found
        answer = self.answer(ex)
        return answer.usage if answer is not None else Usage()


def reading(ex: Exchange) -> Reading:
    """The exchange's response reading, made on first use and kept on the exchange."""
    if ex.reading is None:
        ex.reading = Reading()
    return ex.reading


def read(ex: Exchange) -> tuple[bytes | None, Answer | None]:
    """(the response as the provider meant it, its Answer or None); read once."""
    r = reading(ex)
    return r.raw(ex), r.answer(ex)


def _bounded(usage: Usage, ex: Exchange) -> Usage:
    """`usage` with every count at most TOKENS_MAX; the exchange's reason says which were
    not (once, though both the accounting and the audit may read it)."""
    if ex.reason is None or CLAMPED not in ex.reason:
        names = ", ".join(name for name, n in zip(usage._fields, usage, strict=True) if n > TOKENS_MAX)
        ex.reason = (ex.reason + "; " if ex.reason else "") + f"{CLAMPED}: {names}"
    return Usage(*(min(n, TOKENS_MAX) for n in usage))


def _response_bytes(ex: Exchange) -> bytes | None:
    """Chunks joined, content-encoding undone."""
    if ex.response_body is not None:
        data = ex.response_body
    elif ex.chunks:
        data = b"".join(ex.chunks)
    else:
        return None
    coding = ex.response_headers.get("Content-Encoding") if ex.response_headers is not None else None
    if not coding:
        return data
    try:
        return encoding.decode(data, coding, limit=MAX_DECODED)
    except ValueError:
        return data  # an unknown coding: keep the bytes as they came
