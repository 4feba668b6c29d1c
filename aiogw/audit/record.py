"""Exchange → Record: the audit row, its payloads and its content-addressed parts.

Runs in the audit writer, never on the hot path: this is where a stream's chunks are
joined, decoded and read back into one answer, and where the request is split into
system prompt, messages and tool definitions, each hashed so that a conversation
resent on every turn is stored once (the writer skips parts it has already stored).
"""

from __future__ import annotations

import dataclasses
import hashlib
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson

from aiogw.answer import read as read_answer
from aiogw.audit.ids import new_id
from aiogw.dialects import DIALECTS, Answer, Usage
from aiogw.dialects.texts import same_prefix
from aiogw.exchange import Exchange
from aiogw.guards import redact

FULL, REDACTED, METADATA = "full", "redacted", "metadata"
POLICIES = (FULL, REDACTED, METADATA)

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
_CONTENT = ("system", "messages", "tools")
BLOB_LEVEL = 6
# Request bodies from this size on are split into content-addressed parts.
SPLIT_MIN = 16 * 1024


def digest(data: bytes) -> bytes:
    """16-byte BLAKE2b: collision-safe for content addressing, and fast."""
    return hashlib.blake2b(data, digest_size=16).digest()


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
    row: tuple
    payload: tuple | None
    # (digest, serialized JSON, or the parsed value when the memo knew its digest) of
    # the system prompt, the tools and each message
    parts: list[tuple[bytes, Any]]
    started: float

    @property
    def size(self) -> int:
        """The bytes it holds of its own: payloads and serialised parts (a part given
        as a parsed value is the memo's, kept alive there anyway)."""
        n = sum(len(data) for _, data in self.parts if isinstance(data, bytes))
        if self.payload is not None:
            n += sum(len(value) for value in self.payload if isinstance(value, bytes))
        return n


def build(ex: Exchange, policy: str, memo: PartsMemo | None = None) -> Record:
    """The record of one finished exchange. Never raises on odd provider data."""
    ident = ex.id or new_id(ex.started)  # the log line may have named it already
    ex.id = ident
    dialect = DIALECTS.get(ex.dialect)
    raw_response, answer = read_answer(ex)
    usage = answer.usage if answer is not None else Usage()
    parts: list[tuple[bytes, bytes]] = []
    refs: dict[str, Any] = {}
    meta: dict[str, Any] | None = None
    # Only a conversation big enough to be resent at cost is split into stored parts;
    # a small body is kept whole, which is cheaper to write and no larger.
    body, parsed = ex.body, ex.json
    if policy == REDACTED and ex.findings and parsed is not None:
        body, parsed = _masked(parsed, ex.findings) or (body, parsed)
    split = parsed is not None and dialect is not None and len(body or b"") >= SPLIT_MIN
    if split:
        hint = ex.history if parsed is ex.json else None  # a masked copy: compare anew
        meta, refs, parts = _split(
            dialect, ex.endpoint, parsed, len(body or b""), memo, int(ex.started // 86_400), hint, ex.session
        )
    conversation = ex.session[:128] if ex.session else _opening(dialect, ex, refs)
    payload = None
    if policy != METADATA:
        message_refs = refs.get("messages")
        payload = (
            ident,
            pack(meta) if meta is not None else None,
            refs.get("system"),
            refs.get("tools"),
            b"".join(message_refs) if message_refs is not None else None,
            squeeze(body) if body and not split else None,
            _answer_payload(answer, raw_response, ex),
            squeeze(raw_response) if ex.chunks and raw_response else None,
            orjson.dumps(ex.findings) if ex.findings else None,
        )
    else:
        parts = []
    t_end = ex.t_end if ex.t_end is not None else ex.t0
    row = (
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
    )
    return Record(ident, row, payload, parts, ex.started)


def _answer_payload(answer: Answer | None, raw: bytes | None, ex: Exchange) -> bytes | None:
    """The answer as {"complete", "stop_reason", "message" | "error"}: for a plain JSON
    response its own bytes are spliced in, not parsed and dumped again."""
    if answer is None:
        return squeeze(raw) if raw is not None else None
    head = b'{"complete":' + (b"true" if answer.complete else b"false")
    if answer.stop_reason is not None:
        head += b',"stop_reason":' + orjson.dumps(answer.stop_reason)
    if not ex.chunks and raw is not None and (answer.message is not None or answer.error is not None):
        return squeeze(head + (b',"message":' if answer.message is not None else b',"error":') + raw + b"}")
    if answer.message is not None:
        return squeeze(head + b',"message":' + orjson.dumps(answer.message) + b"}")
    if answer.error is not None:
        return squeeze(head + b',"error":' + orjson.dumps(answer.error) + b"}")
    if raw is not None and not ex.chunks:
        return squeeze(raw)  # a body no dialect could read: kept as it was
    return None


def _masked(parsed: dict, findings: list[dict[str, Any]]) -> tuple[bytes, dict] | None:
    """For the `redacted` policy: a copy of the request with every finding masked (the
    `redact` ones were masked before forwarding already)."""
    pending = [f for f in findings if f.get("action") != "redact" and "path" in f]
    if not pending:
        return None
    copy = orjson.loads(orjson.dumps(parsed))
    redact.apply(copy, pending)
    return orjson.dumps(copy), copy


class PartsMemo:
    """The parts of recent requests, so a turn's resent history is not hashed again.

    Keyed by the digest of a request's first message (one small hash); a hit is checked
    part by part with `==` on the parsed values, which is ten times cheaper than
    serialising and hashing them, and only the new messages of a turn are hashed.
    Entries are also found by their last message object (`made_from`), for the guard's
    hint: the very request the guard compared this one with. Bounded by the request
    bytes it keeps alive.
    """

    def __init__(self, max_bytes: int = 16 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[bytes, tuple[int, dict[str, Any]]] = OrderedDict()
        self._by_last: dict[int, dict[str, Any]] = {}
        self._bytes = 0
        # Keys put since `mark()`: a batch whose records were not written takes its
        # entries back (`drop_fresh`), or the next turns would take parts that were
        # never stored for handed.
        self._fresh: list[bytes] = []

    def mark(self) -> None:
        self._fresh.clear()

    def drop_fresh(self) -> None:
        for key in self._fresh:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[0]
                self._forget(old[1])
        self._fresh.clear()

    def get(self, key: bytes) -> dict[str, Any] | None:
        hit = self._entries.get(key)
        return hit[1] if hit is not None else None

    def made_from(self, last: Any) -> dict[str, Any] | None:
        """The entry whose messages end with this very object, if it is kept."""
        entry = self._by_last.get(id(last))
        return entry if entry is not None and entry["messages"] and entry["messages"][-1] is last else None

    def put(self, key: bytes, size: int, entry: dict[str, Any]) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= old[0]
            self._forget(old[1])
        self._entries[key] = (size, entry)
        self._fresh.append(key)
        if entry.get("messages"):
            self._by_last[id(entry["messages"][-1])] = entry
        self._bytes += size
        while self._bytes > self.max_bytes and len(self._entries) > 1:
            _, (dropped, gone) = self._entries.popitem(last=False)
            self._bytes -= dropped
            self._forget(gone)

    def _forget(self, entry: dict[str, Any]) -> None:
        messages = entry.get("messages")
        if messages and self._by_last.get(id(messages[-1])) is entry:
            del self._by_last[id(messages[-1])]


def _hashed(value: Any) -> tuple[bytes, bytes]:
    data = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    return digest(data), data


def _split(
    dialect: Any, endpoint: str, body: dict, size: int, memo: PartsMemo | None, day: int = 0,
    hint: tuple[list[Any], int] | None = None, session: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any], list[tuple[bytes, Any]]]:
    """Request → (inline metadata, refs by part, parts). Content parts are hashed.

    A part is (digest, bytes) when it was serialised here, or (digest, value) when its
    digest came from the memo; the writer serialises those only if it never stored them.
    Parts the memo's previous turn of this conversation already handed to the writer
    the same UTC `day` are left out: they are stored (or in an earlier batch), and a
    blob's `last_seen` only moves by the day.
    """
    parts_obj = dialect.request_parts(endpoint, body)
    meta: dict[str, Any] = {
        f.name: getattr(parts_obj, f.name) for f in dataclasses.fields(parts_obj) if f.name not in _CONTENT
    }
    refs: dict[str, Any] = {}
    parts: list[tuple[bytes, Any]] = []
    messages = parts_obj.messages if isinstance(parts_obj.messages, list) else None
    key = None
    prev = None
    if memo is not None and messages:
        # By the agent's session id too, when it sends one: conversations that open
        # alike must not push each other's entry out (see guards.history).
        key = _hashed(messages[0])[0]
        if session:
            key = digest(session.encode() + b"\0" + key)
        prev = memo.get(key)
        if hint is not None and hint[0]:  # the request the guard compared this one with
            prev = memo.made_from(hint[0][-1]) or prev
    handed = prev is not None and prev["day"] == day  # the previous turn's parts are with the writer
    entry: dict[str, Any] = {"day": day}
    for name in ("system", "tools"):
        value = getattr(parts_obj, name)
        if value is None:
            continue
        if prev is not None and prev.get(name) == value:
            h = prev[name + "_ref"]
            if not handed:
                parts.append((h, value))
        else:
            h, data = _hashed(value)
            parts.append((h, data))
        refs[name] = h
        entry[name], entry[name + "_ref"] = value, h
    if messages is not None:
        old = prev["messages"] if prev is not None else []
        old_refs = prev["message_refs"] if prev is not None else []
        same = _known_same(hint, old, messages)
        if same is None:
            same = same_prefix(old, messages)
        hashes = old_refs[:same]
        if not handed:
            parts.extend(zip(hashes, messages[:same], strict=True))
        for message in messages[same:]:
            h, data = _hashed(message)
            parts.append((h, data))
            hashes.append(h)
        opening = next(
            (i + 1 for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "user"), None
        )
        refs["messages"] = hashes
        refs["opening"] = hashes[: opening or 1]
        entry["messages"], entry["message_refs"] = messages, hashes
    if key is not None and memo is not None:
        memo.put(key, size, entry)
    return meta, refs, parts


def _known_same(hint: tuple[list[Any], int] | None, old: list[Any], new: list[Any]) -> int | None:
    """How many entries `new` shares with `old`, when the guard already compared them:
    it compared `new` with a list `hint[0]` and found `hint[1]` equal. If `old` holds the
    very objects of that list (one parsed body's objects are its own, so one shared
    object at the last compared place says both lists come from that body), the answer
    is the guard's."""
    if hint is None:
        return None
    seen, same = hint
    if same == 0 or same > len(old) or same > len(seen) or same > len(new):
        return None
    return same if old[same - 1] is seen[same - 1] and len(old) == len(seen) else None


def _opening(dialect: Any, ex: Exchange, refs: dict[str, Any]) -> str | None:
    """The conversation of a request without a session id: every turn resends the same
    opening (system prompt, then messages up to the first user message), so its hash
    groups the turns of one conversation. The user is hashed with it: two users' agents
    that open alike (one system prompt, one task) hold two conversations, not one."""
    opening = refs.get("opening")
    system = refs.get("system")
    if opening is None and ex.json is not None and dialect is not None:
        parts = dialect.request_parts(ex.endpoint, ex.json)
        if parts.system is not None:
            system = digest(orjson.dumps(parts.system, option=orjson.OPT_SORT_KEYS))
        opening = []
        for message in parts.messages or ():
            opening.append(digest(orjson.dumps(message, option=orjson.OPT_SORT_KEYS)))
            if isinstance(message, dict) and message.get("role") == "user":
                break
    if not opening:
        return None
    user = (ex.user or "").encode()
    return "p-" + digest(user + b"\0" + (system or b"") + b"".join(opening)).hex()
