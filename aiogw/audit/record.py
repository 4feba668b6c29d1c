"""Exchange → Record: the audit row, its payloads and its content-addressed parts.

Runs in the audit writer, never on the hot path: this is where a stream's chunks are
joined, decoded and read back into one answer, and where the request is split into
system prompt, messages and tool definitions, each hashed so that a conversation
resent on every turn is stored once (the writer skips parts it has already stored):
the split, and the conversation's id, are `audit.conversation`'s.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import orjson

from aiogw import jsonout, untrusted
from aiogw.answer import CLAMPED
from aiogw.answer import read as read_answer
from aiogw.audit import storable
from aiogw.audit.conversation import conversation_id, split_request
from aiogw.audit.ids import new_id
from aiogw.audit.memo import PartsMemo
from aiogw.dialects import DIALECTS, Answer, Usage
from aiogw.exchange import Exchange
from aiogw.guards import redact

FULL, REDACTED, METADATA = "full", "redacted", "metadata"

# The exchanges table's columns, in the order of Record.row.
COLUMNS = (
    "id",
    "started",
    "duration_ms",
    "ttfb_ms",
    "user",
    "key_id",
    "route",
    "dialect",
    "endpoint",
    "model",
    "stream",
    "status",
    "outcome",
    "reason",
    "input_tokens",
    "output_tokens",
    "cache_write_tokens",
    "cache_read_tokens",
    "reasoning_tokens",
    "findings",
    "request_id",
    "client",
    "user_agent",
    "conversation",
    "request_bytes",
    "response_bytes",
    "method",
    "path",
    "cost_usd",
    "priced",
)
PAYLOAD_COLUMNS = (
    "id",
    "request_meta",
    "system_ref",
    "tools_ref",
    "message_refs",
    "request_raw",
    "response",
    "raw_stream",
    "findings",
)
BLOB_LEVEL = 6
# Request bodies from this size on are split into content-addressed parts.
SPLIT_MIN = 16 * 1024


# Stored bytes carry one leading byte: 0 as they are, 1 zlib. Small values are kept as
# they are: zlib's set-up costs more than the few bytes it would save.
_PLAIN, _ZLIB = b"\x00", b"\x01"
_SQUEEZE_MIN = 4096


def squeeze(data: bytes, level: int = 1) -> bytes:
    """Level 1 for what each record writes anew (speed); blobs, written once, use 6."""
    if len(data) < _SQUEEZE_MIN:
        return _PLAIN + data
    return _ZLIB + zlib.compress(data, level)


def unsqueeze(data: bytes) -> bytes:
    return zlib.decompress(data[1:]) if data[:1] == _ZLIB else data[1:]


def pack(value: Any) -> bytes:
    return squeeze(orjson.dumps(value))


def unpack(data: bytes | None) -> Any:
    return None if data is None else orjson.loads(unsqueeze(data))


@dataclass(slots=True)
class Record:
    id: str
    row: tuple | None  # None: a record's parts stored alone (its row went to the spill file)
    payload: tuple | None
    # (digest, serialized JSON, or the parsed value when the memo knew its digest) of
    # the system prompt, the tools and each message
    parts: list[tuple[bytes, Any]]
    started: float
    mended: bool = False  # a value of its row was made storable (see storable.row)

    @property
    def size(self) -> int:
        """The bytes it holds of its own: payloads and serialised parts (a part given
        as a parsed value is the memo's, kept alive there anyway)."""
        n = sum(len(data) for _, data in self.parts if isinstance(data, bytes))
        if self.payload is not None:
            n += sum(len(value) for value in self.payload if isinstance(value, bytes))
        return n


def build(ex: Exchange, policy: str, memo: PartsMemo | None = None) -> Record:
    """The record of one finished exchange. Never raises on odd provider data, and
    every value of its row is storable (`storable.row`; what was mended is said in
    `reason`)."""
    ident = ex.id or new_id(ex.started)  # the log line may have named it already
    ex.id = ident
    dialect = DIALECTS.get(ex.dialect)
    raw_response, answer = read_answer(ex)
    usage = answer.usage if answer is not None else Usage()
    parts: list[tuple[bytes, Any]] = []
    refs: dict[str, Any] = {}
    meta: bytes | None = None
    notes: list[str] = []
    # Only a conversation big enough to be resent at cost is split into stored parts;
    # a small body is kept whole, which is cheaper to write and no larger.
    body, parsed = ex.body, ex.json
    if policy == REDACTED and ex.findings:
        if parsed is not None:
            body, parsed = _masked(parsed, ex.findings) or (body, parsed)
        elif _to_mask(ex.findings):
            # Only on the recorder's second try (audit.recorder: the first raised and
            # took the parsed body): unmasked, the body would keep what the policy
            # says the audit must not.
            body = None
            notes.append("the request could not be masked, so it is not kept")
    # The proxy read the session id through untrusted.text already; an exchange it did
    # not read (a later path in, a test) is cleaned by the same rule here.
    session = ex.session or None
    if session is not None and not untrusted.is_utf8(session):
        session = untrusted.text(session, untrusted.SESSION)
        notes.append("conversation (the session id) held bytes that are not UTF-8 (shown escaped)")
    split = parsed is not None and dialect is not None and len(body or b"") >= SPLIT_MIN
    if split:
        hint = ex.history if parsed is ex.json else None  # a masked copy: compare anew
        day = int(ex.started // 86_400)
        meta_json, refs, parts = split_request(dialect, ex.endpoint, parsed, len(body or b""), memo, day, hint, session)
        meta = squeeze(meta_json)
    conversation = session or conversation_id(dialect, ex, refs)
    payload = None
    if policy != METADATA:
        message_refs = refs.get("messages")
        payload = (
            ident,
            meta,
            refs.get("system"),
            refs.get("tools"),
            b"".join(message_refs) if message_refs is not None else None,
            squeeze(body) if body and not split else None,
            _answer_payload(answer, raw_response, ex),
            squeeze(raw_response) if ex.chunks and raw_response else None,
            storable.json(ex.findings) if ex.findings else None,
        )
    else:
        parts = []
    t_end = ex.t_end if ex.t_end is not None else ex.t0
    row, mended = storable.row((
        ident,
        ex.started,
        round((t_end - ex.t0) * 1000, 3),
        round((ex.t_first_byte - ex.t0) * 1000, 3) if ex.t_first_byte is not None else None,
        ex.user,
        ex.key_id,
        ex.route or None,
        ex.dialect or None,
        ex.endpoint or None,
        ex.model or (answer.model if answer is not None else None),
        int(ex.stream),
        ex.status,
        ex.outcome,
        ex.reason,
        usage.input,
        usage.output,
        usage.cache_write,
        usage.cache_read,
        usage.reasoning,
        len(ex.findings) if ex.findings else 0,
        dialect.request_id(ex.response_headers) if dialect is not None and ex.response_headers is not None else None,
        ex.client,
        ex.user_agent,
        conversation,
        len(ex.body) if ex.body else 0,
        len(raw_response) if raw_response else 0,
        ex.method,
        ex.path or None,
        ex.cost,
        int(ex.priced),
    ), COLUMNS)
    if notes or mended:
        row = _noted(row, notes + mended)
    # A count the answer's reader clamped (aiogw.answer) is a value mended too.
    mended_any = bool(mended) or (ex.reason is not None and CLAMPED in ex.reason)
    return Record(ident, row, payload, parts, ex.started, mended_any)


_REASON = COLUMNS.index("reason")


def _noted(row: tuple, notes: list[str]) -> tuple:
    """The row with `notes` added to its reason: the record says what it does not hold
    as it came."""
    said = "audit: " + "; ".join(notes)
    reason = row[_REASON]
    reason = untrusted.text(f"{reason}; {said}" if reason else said, 4096)
    return (*row[:_REASON], reason, *row[_REASON + 1 :])


def _answer_payload(answer: Answer | None, raw: bytes | None, ex: Exchange) -> bytes | None:
    """The answer as {"complete", "stop_reason", "message" | "error"}: for a plain JSON
    response its own bytes are spliced in, not parsed and dumped again; a stream's
    answer is written at any depth (its tool input may nest as deep as orjson reads)."""
    if answer is None:
        return squeeze(raw) if raw is not None else None
    head = b'{"complete":' + (b"true" if answer.complete else b"false")
    if answer.stop_reason is not None:
        head += b',"stop_reason":' + jsonout.dumps(answer.stop_reason)
    if not ex.chunks and raw is not None and (answer.message is not None or answer.error is not None):
        return squeeze(head + (b',"message":' if answer.message is not None else b',"error":') + raw + b"}")
    if answer.message is not None:
        return squeeze(head + b',"message":' + jsonout.dumps(answer.message) + b"}")
    if answer.error is not None:
        return squeeze(head + b',"error":' + jsonout.dumps(answer.error) + b"}")
    if raw is not None and not ex.chunks:
        return squeeze(raw)  # a body no dialect could read: kept as it was
    return None


def _masked(parsed: dict, findings: list[dict[str, Any]]) -> tuple[bytes, dict] | None:
    """For the `redacted` policy: (its bytes, a copy of the request with every finding
    masked), None when no finding is left to mask (`_to_mask`). The copy is the body written and read again: deepcopy recurses,
    and orjson reads back whatever depth it parsed."""
    pending = _to_mask(findings)
    if not pending:
        return None
    copy = orjson.loads(jsonout.dumps(parsed))
    redact.apply(copy, pending)
    return jsonout.dumps(copy), copy


def _to_mask(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The findings the `redacted` policy masks in the record: the `redact` ones were
    masked before forwarding already."""
    return [f for f in findings if f.get("action") != "redact" and "path" in f]
