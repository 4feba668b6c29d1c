"""Hyperscan databases compiled once from the catalog, and the scans that use them.

`Engine(patterns)` compiles one block-mode database per place (places with the same
patterns share one) and a stream-mode database for each place it will stream
(`response` by default). `Engine.scan(place, text)` makes one Hyperscan call over the
text's UTF-8 bytes; if the text is not ASCII and `normalize` undoes a disguise, one more
call over the normalised text. It returns `Match`es in str offsets of the original
text, after span rules, validators and `min_entropy`, deduplicated: for one pattern,
leftmost-longest; overlapping matches of different patterns are all kept.
`Engine.scan_many(place, texts)` gives exactly the same for many texts with one call
for all of them (see `joining`).

`Engine.stream(place)` gives a `StreamScanner` for an answer arriving in pieces: a
secret split across two `feed`s is found, offsets count from the start of the stream.
Stream text is not normalised (NFKC and homoglyphs cannot be undone piecewise).

Where a match starts: most patterns are compiled with HS_FLAG_SOM_LEFTMOST. Start-of-
match tracking costs compile time, and Hyperscan refuses it for some bounded gaps
("Pattern is too large"), so it is skipped where the start is cheap to find afterwards:
a `value` span is found by walking back from the end; a pattern with `max_length` is
re-matched with Python's `re`, anchored at the reported end, over at most that many
characters (the same re-match confirms a `prefilter` hit); a pattern that only compiles
without it is re-matched over `rules.REMATCH_WINDOW` characters. Never a pass over the text.

Without the hyperscan module, or if a database does not compile, the engine raises
`GuardsUnavailable`, naming the pattern at fault; the gateway refuses to start with
guards enabled. Compiling, and finding the pattern at fault, is `guards.databases`.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiogw.guards.catalog import PLACES, Pattern
from aiogw.guards.databases import BLOCK, STREAM, GuardsUnavailable, compile_databases, python_regex, require_hyperscan
from aiogw.guards.joining import SEPARATOR as _SEPARATOR
from aiogw.guards.joining import boundary_safe as _boundary_safe
from aiogw.guards.joining import dollar_edge as _dollar_edge
from aiogw.guards.normalize import normalize, to_original
from aiogw.guards.rules import Rule

# Validations tried per (pattern, start) before giving up on shorter ends: a pattern with
# an open tail (a JWT's signature) reports an end at every character.
MAX_TRIES = 8
# Bytes of stream text kept for validators and offsets: longer than any catalog match
# (a 4096-bit PEM key is ~3.3 KB), so every match's text is still at hand.
STREAM_TAIL = 64 * 1024

_CONTINUATION = bytes(range(0x80, 0xC0))

if TYPE_CHECKING:
    from aiogw.guards.stream import StreamScanner


@dataclass(frozen=True, slots=True)
class Match:
    pattern: Pattern
    start: int  # str offsets into the scanned text (the whole stream for a StreamScanner)
    end: int


class _Hits(list):
    """Where the match callback puts (pattern index, start, end). Always true: the
    binding replaces a false context (an empty list) with the stream's default."""

    __slots__ = ()

    def __bool__(self) -> bool:
        return True


def _collect(pid: int, start: int, end: int, flags: int, hits: _Hits) -> None:
    hits.append((pid, start, end))


class Engine:
    """Compiled databases for a tuple of patterns; build once, scan many times. Not for
    concurrent use from several threads (one scratch space per database)."""

    def __init__(self, patterns: Sequence[Pattern], *, stream_places: Iterable[str] = ("response",)) -> None:
        require_hyperscan()
        self.patterns = tuple(patterns)
        self._rules = [Rule(p) for p in self.patterns]
        self._index = {id(p): i for i, p in enumerate(self.patterns)}
        # Patterns compiled without start-of-match (see the module docstring).
        self._no_som: set[int] = set()
        for i, p in enumerate(self.patterns):
            if p.span == "value":
                self._no_som.add(i)
            elif p.max_length is not None:
                self._no_som.add(i)
                try:
                    self._rules[i].rematch = python_regex(p)
                except re.error as exc:
                    raise GuardsUnavailable(
                        f"guard pattern {p.id!r}: Python's re, which confirms its matches, "
                        f"cannot parse its expression ({exc})"
                    ) from None
        self._block: dict[str, object | None] = {}
        self._stream: dict[str, object | None] = {}
        # One database per distinct pattern set: places with the same patterns share it.
        jobs: dict[tuple[tuple[int, ...], str], object | None] = {}
        block_ids = {place: self._ids(place) for place in PLACES}
        stream_ids = {}
        for place in stream_places:
            if place not in PLACES:
                raise ValueError(f"unknown place {place!r}; expected one of {', '.join(PLACES)}")
            stream_ids[place] = self._ids(place)
        for ids in block_ids.values():
            jobs[(ids, BLOCK)] = None
        for ids in stream_ids.values():
            jobs[(ids, STREAM)] = None
        compile_databases(self.patterns, self._rules, self._no_som, jobs)
        self._block = {place: jobs[(ids, BLOCK)] for place, ids in block_ids.items()}
        self._batchable = {
            place: all(_boundary_safe(self.patterns[i]) for i in ids) for place, ids in block_ids.items()
        }
        self._newline_alone = {
            place: any(_dollar_edge(self.patterns[i]) for i in ids) for place, ids in block_ids.items()
        }
        self._stream = {place: jobs[(ids, STREAM)] for place, ids in stream_ids.items()}

    def _ids(self, place: str) -> tuple[int, ...]:
        return tuple(i for i, p in enumerate(self.patterns) if place in p.places)

    @property
    def databases(self) -> dict[str, object | None]:
        """The block-mode database each place is scanned with (None where the place has
        no patterns; places with the same patterns share one). `scan` makes one call on
        it per text, `scan_many` one for many texts."""
        return self._block

    @property
    def without_start_of_match(self) -> frozenset[str]:
        """The ids of the patterns compiled without start-of-match tracking: their starts
        are found after the scan (see the module docstring)."""
        return frozenset(self.patterns[i].id for i in self._no_som)

    def scan(self, place: str, text: str) -> list[Match]:
        """Every match in `text` for the patterns of `place`, in order of start."""
        try:
            db = self._block[place]
        except KeyError:
            raise ValueError(f"unknown place {place!r}; expected one of {', '.join(PLACES)}") from None
        if db is None or not text:
            return []
        data = text.encode("utf-8", "surrogatepass")
        hits = _Hits()
        db.scan(data, match_event_handler=_collect, context=hits)
        found = self._resolve(hits, text, data) if len(hits) else []
        if len(data) != len(text):
            normal, offsets = normalize(text, utf8=data)
            if offsets is not None:
                ndata = normal.encode("utf-8", "surrogatepass")
                more = _Hits()
                db.scan(ndata, match_event_handler=_collect, context=more)
                if len(more):
                    for m in self._resolve(more, normal, ndata):
                        s, e = to_original(offsets, m.start, m.end)
                        found.append(Match(m.pattern, s, e))
                    found = _dedupe(found)
        return found

    def scan_many(self, place: str, texts: Sequence[str]) -> list[list[Match]]:
        """`[self.scan(place, t) for t in texts]`, with one Hyperscan call for all the
        ASCII texts instead of one each: an agent's body has hundreds of short texts,
        and the call, not the bytes, is what costs.

        The texts are joined with `_SEPARATOR`. A hit inside one text is that text's
        hit, found exactly as a scan of it alone would find it (its start, for a
        start-of-match pattern, is the leftmost one, and no earlier text holds it). A
        hit that touches a separator (a match running over a text's end, or one that
        `^`/`$` would have allowed alone) makes the texts it touches scanned alone, so
        does any hit of a pattern compiled without start-of-match; the result is the
        same in every case, only slower for those texts. A place with a pattern whose
        anchors the separator would hide (`foo$`) scans each text alone.
        """
        out: list[list[Match]] = [[] for _ in texts]
        db = self._block.get(place)
        if db is None:
            if place not in self._block:
                raise ValueError(f"unknown place {place!r}; expected one of {', '.join(PLACES)}")
            return out
        if not self._batchable[place] or len(texts) < 2:
            return [self.scan(place, text) for text in texts]
        joined = _SEPARATOR.join(texts)
        newline_alone = self._newline_alone[place]
        if joined.isascii() and not (newline_alone and any(t.endswith("\n") for t in texts)):
            indices: Sequence[int] = range(len(texts))  # the common case: one call for all
            parts = texts
        else:
            indices = []
            for i, text in enumerate(texts):
                if text.isascii() and not (newline_alone and text.endswith("\n")):
                    indices.append(i)
                else:
                    out[i] = self.scan(place, text)
            parts = [texts[i] for i in indices]
            joined = _SEPARATOR.join(parts)
            if not joined:
                return out
        hits = _Hits()
        db.scan(joined.encode("ascii"), match_event_handler=_collect, context=hits)
        if not len(hits):
            return out
        starts: list[int] = []
        pos = 0
        for text in parts:
            starts.append(pos)
            pos += len(text) + len(_SEPARATOR)
        per_text: dict[int, dict[int, list[tuple[int, int]]]] = {}
        alone: set[int] = set()
        no_som = self._no_som
        for pid, s, e in hits:
            k = bisect_right(starts, e - 1) - 1
            base = starts[k]
            if pid in no_som:  # where it starts is unknown, so whether it crosses too
                alone.add(k)
            elif s < base or e > base + len(parts[k]):
                alone.update(range(max(0, bisect_right(starts, s) - 1), k + 1))
            else:
                per_text.setdefault(k, {}).setdefault(pid, []).append((s - base, e - base))
        for k, by_pattern in per_text.items():
            if k not in alone:
                out[indices[k]] = self._select(by_pattern, parts[k], 0)
        for k in alone:
            out[indices[k]] = self.scan(place, parts[k])
        return out

    def stream(self, place: str = "response") -> StreamScanner:
        """A scanner for text arriving in pieces (a streamed answer)."""
        if place not in self._stream:
            raise ValueError(f"no stream database for {place!r}; build the Engine with stream_places including it")
        from aiogw.guards.stream import StreamScanner  # beside the engine, which it reads

        return StreamScanner(self, self._stream[place])

    def _resolve(self, hits: list[tuple[int, int, int]], text: str, data: bytes) -> list[Match]:
        """Byte hits -> validated, deduplicated str matches."""
        if len(data) != len(text):
            starts, ends = _char_offsets(data, hits)
            hits = [(pid, starts[s], ends[e]) for pid, s, e in hits]
        by_pattern: dict[int, list[tuple[int, int]]] = {}
        for pid, s, e in hits:
            by_pattern.setdefault(pid, []).append((s, e))
        return self._select(by_pattern, text, 0)

    def _select(self, by_pattern: dict[int, list[tuple[int, int]]], text: str, base: int) -> list[Match]:
        """Per pattern, leftmost-longest among the candidates that pass; `text` starts at
        absolute offset `base`."""
        out: list[Match] = []
        for pid, cands in by_pattern.items():
            rule = self._rules[pid]
            if pid in self._no_som:
                starts = [(rule.start(text, e - base), e) for _, e in cands]
                cands = [(st + base, e) for st, e in starts if st is not None]
            cands.sort(key=lambda c: (c[0], -c[1]))
            last_end = -1
            tried_start, tries = -1, 0
            for s, e in cands:
                if s < last_end:
                    continue
                if s == tried_start:
                    tries += 1
                    if tries >= MAX_TRIES:
                        continue
                else:
                    tried_start, tries = s, 0
                span = rule.accept(text, s - base, e - base)
                if span is not None:
                    out.append(Match(rule.pattern, span[0] + base, span[1] + base))
                    last_end = e
        out.sort(key=lambda m: (m.start, m.end))
        return out


def _char_offsets(data: bytes, hits: list[tuple[int, int, int]]) -> tuple[dict[int, int], dict[int, int]]:
    """Byte offsets -> str offsets by counting the bytes that start a character. A start
    inside a character rounds down to it, an end inside one rounds up past it."""
    points = sorted({s for _, s, _ in hits} | {e for _, _, e in hits})
    starts: dict[int, int] = {}
    ends: dict[int, int] = {}
    chars = prev = 0
    n = len(data)
    for b in points:
        chars += len(data[prev:b].translate(None, _CONTINUATION))
        prev = b
        ends[b] = chars
        starts[b] = chars - 1 if b < n and 0x80 <= data[b] < 0xC0 else chars
    return starts, ends


def _dedupe(matches: list[Match]) -> list[Match]:
    """Leftmost-longest per pattern over already validated matches (two scans merged)."""
    out: list[Match] = []
    last: dict[str, int] = {}
    for m in sorted(matches, key=lambda m: (m.start, -m.end)):
        if m.start < last.get(m.pattern.id, -1):
            continue
        out.append(m)
        last[m.pattern.id] = m.end
    out.sort(key=lambda m: (m.start, m.end))
    return out
