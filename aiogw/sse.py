"""An incremental Server-Sent Events parser (WHATWG HTML, "Interpreting an event stream").

The audit tap feeds it the relayed chunks exactly as they arrived, so an event, a line,
a CRLF pair or a UTF-8 character may be split anywhere between two `feed` calls. It
works on bytes: lines are cut with `bytes.split` (LF never occurs inside a multi-byte
UTF-8 sequence, so cutting bytes at LF is cutting text at LF), and each event is
decoded once, when it is dispatched.

What the spec says and this parser does:

- one leading UTF-8 BOM is dropped; lines end with CRLF, LF or a lone CR;
- a blank line dispatches the event, but only if it has data; otherwise the block's
  fields are forgotten (the `id` stays: the last event id outlives its event);
- a line starting with ':' is a comment; `field: value` drops one space after the
  colon; a line without a colon is a field with an empty value;
- `data` lines are joined with LF; `event` sets the type ("message" by default);
  `id` without NUL sets the last event id; `retry` with only ASCII digits sets the
  reconnection time; any other field is ignored;
- at the end of the stream an unterminated event is discarded. `close` returns no
  event for it but keeps it in `pending`, so a reader can tell a stream cut mid-event
  from one that ended on an event boundary, and never mistakes the former for the latter.
"""

from __future__ import annotations

from typing import NamedTuple

_BOM = b"\xef\xbb\xbf"


class Event(NamedTuple):
    """One dispatched event. `id` is the last event id in force (None if none was ever
    set, "" once reset); `retry` is the reconnection time given within this event.
    A tuple: a stream read back makes one per event, and a frozen dataclass cost ~5x
    as much to build."""

    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None


class SSEParser:
    """Feed bytes as they come; get back the events they complete.

    After `close()`: `pending` is the event the stream was in the middle of (as it
    would have been dispatched had a blank line followed), or None; `clean` is True
    when the stream ended on an event boundary with nothing left over.
    """

    __slots__ = (
        "_data",
        "_event",
        "_fields",
        "_head",
        "_id",
        "_partial",
        "_retry",
        "_skip_lf",
        "clean",
        "pending",
        "retry",
    )

    def __init__(self) -> None:
        self._head: bytes | None = b""  # bytes seen while a BOM is still possible; None after
        self._partial: list[bytes] = []  # the current line's bytes, no line end seen yet
        self._skip_lf = False  # the last chunk ended with CR: an LF next belongs to it
        self._data: list[bytes] = []
        self._event = b""
        self._id: bytes | None = None
        self._retry: int | None = None  # set within the current block
        self._fields = False  # the current block has seen a field line
        self.retry: int | None = None  # the stream's reconnection time, last one given
        self.pending: Event | None = None
        self.clean = True

    def feed(self, data: bytes) -> list[Event]:
        """Parse a chunk; return the events it completed, in order."""
        if self._head is not None:
            data = self._strip_bom(data)
        if self._skip_lf and data:
            self._skip_lf = False
            if data[0] == 0x0A:
                data = data[1:]
        if not data:
            return []
        if b"\r" in data:
            # A CR at the very end already ends its line; a following LF is skipped.
            self._skip_lf = data[-1] == 0x0D
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if b"\n" not in data:
            self._partial.append(data)  # joined once, when the line ends: no quadratic copying
            return []
        lines = data.split(b"\n")
        if self._partial:
            self._partial.append(lines[0])
            lines[0] = b"".join(self._partial)
        tail = lines.pop()
        self._partial = [tail] if tail else []
        events: list[Event] = []
        for line in lines:
            self._line(line, events)
        return events

    def close(self) -> list[Event]:
        """End of stream. The spec dispatches nothing here: an unterminated event is
        discarded (kept in `pending`). Returns a list for symmetry with `feed`."""
        if self._head:  # the stream was shorter than a BOM
            self._partial.append(self._head)
        self._head = None
        if self._partial:
            self._line(b"".join(self._partial), [])
            self._partial = []
        self.clean = not self._fields
        self.pending = self._build() if self._data else None
        self._reset_block()
        return []

    def _strip_bom(self, data: bytes) -> bytes:
        head = (self._head or b"") + data
        if len(head) < len(_BOM) and _BOM.startswith(head):
            self._head = head  # could still be a BOM split across feeds
            return b""
        self._head = None
        return head[len(_BOM) :] if head.startswith(_BOM) else head

    def _line(self, line: bytes, events: list[Event]) -> None:
        if not line:
            if self._data:
                events.append(self._build())
            self._reset_block()
            return
        if line[0] == 0x3A:  # ':' a comment, e.g. a keep-alive
            return
        self._fields = True
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value
        elif name == b"id":
            if b"\0" not in value:
                self._id = value
        elif name == b"retry":
            if value.isdigit():  # bytes.isdigit: ASCII digits only, as the spec asks
                self._retry = self.retry = int(value)

    def _build(self) -> Event:
        data = b"\n".join(self._data).decode("utf-8", "replace")
        event = self._event.decode("utf-8", "replace") if self._event else "message"
        ident = None if self._id is None else self._id.decode("utf-8", "replace")
        return Event(event, data, ident, self._retry)

    def _reset_block(self) -> None:
        self._data = []
        self._event = b""
        self._retry = None
        self._fields = False


def parse(body: bytes) -> tuple[list[Event], SSEParser]:
    """A whole body at once: its events and the closed parser (for `pending`, `clean`)."""
    parser = SSEParser()
    plain = plain_events(body)
    if plain is not None:  # a fresh parser: clean, nothing pending, as after close()
        return [Event(name, data.decode("utf-8", "replace")) for name, data in plain], parser
    events = parser.feed(body)
    parser.close()
    return events, parser


def plain_events(body: bytes) -> list[tuple[str, bytes]] | None:
    """(event type, data bytes) of a stream as providers write it — LF line ends, every
    event one `event: ` line and one `data: ` line, or one `data: ` line, a blank line
    after each — or None for anything else (CRs, a BOM, comments, ids, multi-line data,
    a cut end), which `parse` leaves to the full parser. Providers' streams are read back
    once per exchange: this takes a block at a time, not a line, and leaves the data as
    bytes (orjson reads bytes; no decoding on the way)."""
    if not body.endswith(b"\n\n") or b"\r" in body or body.startswith(_BOM):
        return None
    out = []
    names: dict[bytes, str] = {}
    for block in body[:-2].split(b"\n\n"):
        if block[:7] == b"event: ":
            name, lf, data = block.partition(b"\n")
            if not lf or data[:6] != b"data: " or b"\n" in data:
                return None
            kind = names.get(name)
            if kind is None:
                kind = names[name] = name[7:].decode("utf-8", "replace") or "message"
            out.append((kind, data[6:]))
        elif block[:6] == b"data: " and b"\n" not in block:
            out.append(("message", block[6:]))
        else:
            return None
    return out
