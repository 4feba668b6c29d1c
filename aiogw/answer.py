"""A finished exchange's response, read back once: decoded bytes and the dialect's Answer.

The accounting (usage and cost, at the end of the exchange) and the audit record (in
the writer) both need it; whichever comes first reads it and leaves it on the
exchange for the other. A stream whose answer guard only logs is scanned here, once,
on the reassembled message: both read it before they report or store the findings.
"""

from __future__ import annotations

import dataclasses
import logging

from aiogw import encoding
from aiogw.dialects import DIALECTS, Answer, Usage
from aiogw.exchange import Exchange

log = logging.getLogger("aiogw.guards")

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


def read(ex: Exchange) -> tuple[bytes | None, Answer | None]:
    """(the response as the provider meant it, its Answer or None). Never raises on
    odd provider data; cached on the exchange."""
    if ex.answer_read:
        return ex.raw_response, ex.answer
    # usage_only may have joined and decoded the chunks already: not twice.
    raw = ex.raw_response if ex.raw_response is not None else _response_bytes(ex)
    dialect = DIALECTS.get(ex.dialect)
    answer = dialect.answer(ex.endpoint, ex.status, ex.stream, raw) if dialect is not None and raw is not None else None
    if answer is not None and max(answer.usage) > TOKENS_MAX:
        answer = dataclasses.replace(answer, usage=_bounded(answer.usage, ex))
    ex.raw_response, ex.answer, ex.answer_read = raw, answer, True
    if ex.scan_answer is not None:
        guard, ex.scan_answer = ex.scan_answer, None
        try:
            found = guard.scan_message(ex.dialect, answer.message, "log") if answer is not None else None
        except Exception:  # a guard fault must not cost the exchange its usage or record
            log.exception("answer guard failed on a %s answer; it is not scanned", ex.dialect)
            found = None
        if found:
            ex.findings = (ex.findings or []) + found
    return raw, answer


def usage_only(ex: Exchange) -> Usage | None:
    """A success's usage without reading the answer whole: a stream's from its usage
    events alone (every dialect but Gemini's JSON array), a JSON body's from its usage
    object. None when only the whole read can tell, or once it was made (ex.answer
    has it). The decoded bytes stay on the exchange for that read."""
    if ex.answer_read:
        return None
    dialect = DIALECTS.get(ex.dialect)
    raw = ex.raw_response = _response_bytes(ex)
    usage = dialect.usage(ex.endpoint, ex.stream, raw) if dialect is not None and raw is not None else None
    return _bounded(usage, ex) if usage is not None and max(usage) > TOKENS_MAX else usage


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
