"""Hyperscan stream mode for an answer arriving in pieces (see `Engine.stream`)."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from aiogw.guards.engine import _CONTINUATION, STREAM_TAIL, Match, _char_offsets, _collect, _Hits

if TYPE_CHECKING:
    from aiogw.guards.engine import Engine


class StreamScanner:
    """Scans a stream piece by piece with a Hyperscan stream. `feed` returns the
    matches completed by that piece; `close` those only the end of the stream
    completes (a match ending in a word boundary at the very end) — call it when the
    stream ends; a scanner dropped without it frees its state but reports nothing more.

    A match is reported once: a later, longer match of the same pattern from the same
    start is reported again only if it extends the earlier one. The text of the last
    `STREAM_TAIL` bytes is kept for validators; a match starting before that window
    (longer than any catalog pattern) is reported from the window's start, unvalidated.
    """

    __slots__ = ("_closed", "_engine", "_hs_stream", "_reported", "_tail", "_tail_byte", "_tail_char")

    def __init__(self, engine: Engine, db) -> None:
        self._engine = engine
        self._hs_stream = db.stream(match_event_handler=_collect).__enter__() if db is not None else None
        self._tail = bytearray()
        self._tail_byte = 0  # absolute byte offset of _tail[0]
        self._tail_char = 0  # absolute str offset of _tail[0]
        self._reported: dict[int, tuple[int, int]] = {}  # pattern index -> last reported (start, end)
        self._closed = False

    def feed(self, text: str) -> list[Match]:
        if self._closed:
            raise ValueError("feed() after close()")
        if not text or self._hs_stream is None:
            return []
        data = text.encode("utf-8", "surrogatepass")
        self._tail += data
        hits = _Hits()
        self._hs_stream.scan(data, match_event_handler=_collect, context=hits)
        found = self._matches(hits) if hits else []
        self._trim()
        return found

    def close(self) -> list[Match]:
        """End the stream; returns the matches only its end completes."""
        if self._closed:
            return []
        self._closed = True
        if self._hs_stream is None:
            return []
        hits = _Hits()
        self._hs_stream.close(match_event_handler=_collect, context=hits)
        return self._matches(hits) if hits else []

    def __del__(self) -> None:
        # The binding frees a stream's Hyperscan state only on close: a scanner dropped
        # without close() (a client gone mid-answer) must not leak it.
        if not self._closed and self._hs_stream is not None:
            self._closed = True
            with contextlib.suppress(Exception):
                self._hs_stream.close(match_event_handler=_collect, context=_Hits())

    def __enter__(self) -> StreamScanner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _matches(self, hits: list[tuple[int, int, int]]) -> list[Match]:
        tail = bytes(self._tail)
        text = tail.decode("utf-8", "surrogatepass")
        base_b, base_c = self._tail_byte, self._tail_char
        local = [(pid, max(s - base_b, 0), e - base_b, s < base_b) for pid, s, e in hits]
        starts, ends = _char_offsets(tail, [(pid, s, e) for pid, s, e, _ in local])
        by_pattern: dict[int, list[tuple[int, int]]] = {}
        unchecked: list[Match] = []
        for pid, s, e, cut in local:
            span = (starts[s] + base_c, ends[e] + base_c)
            if cut and pid not in self._engine._no_som:
                unchecked.append(Match(self._engine.patterns[pid], *span))
            else:
                by_pattern.setdefault(pid, []).append(span)
        found = self._engine._select(by_pattern, text, base_c) + unchecked
        out = []
        for m in sorted(found, key=lambda m: (m.start, m.end)):
            i = self._engine._index[id(m.pattern)]
            prev = self._reported.get(i)
            if prev is not None and m.start >= prev[0] and m.end <= prev[1]:
                continue  # inside what was already reported
            self._reported[i] = (m.start, m.end)
            out.append(m)
        return out

    def _trim(self) -> None:
        """Keep the tail bounded: once it doubles, cut it back to STREAM_TAIL bytes at a
        character boundary."""
        if len(self._tail) <= 2 * STREAM_TAIL:
            return
        cut = len(self._tail) - STREAM_TAIL
        while cut < len(self._tail) and 0x80 <= self._tail[cut] < 0xC0:
            cut += 1
        dropped = bytes(self._tail[:cut])
        self._tail_char += len(dropped.translate(None, _CONTINUATION))
        self._tail_byte += cut
        del self._tail[:cut]
