"""Undo the cheap disguises of text before the guards scan it again.

`normalize(text)` returns `(text, None)` when there is nothing to undo — always for
pure-ASCII text, which is most of what coding agents send, at the cost of one
`str.isascii()` — and otherwise `(normalised, offsets)`. What it undoes, character by
character:

- compatibility forms (Unicode NFKC of each character): fullwidth ``ｉｇｎｏｒｅ``,
  mathematical ``𝐢𝐠𝐧𝐨𝐫𝐞``, ligatures, non-breaking and other exotic spaces;
- invisible and format characters (category Cf, plus the Hangul fillers and the
  variation selectors): zero-width space/joiners, word joiner, soft hyphen, BOM, bidi
  embeddings, overrides and isolates — removed;
- tag characters (U+E0020–U+E007E), which spell ASCII invisibly to a human reader but
  not to a model: decoded to the ASCII they hide, so the hidden words are scanned;
- Cyrillic, Greek and a few other letters that look Latin (а е о р с у х і ј ѕ ԁ ο α
  ε ι κ ν ρ τ υ χ …): mapped to the Latin letter, but only inside a word that also has
  an ASCII letter. A genuine Russian or Greek word is left alone; a Latin word with a
  borrowed letter ("іgnоrе") is what a disguise looks like.

Runs of whitespace and line breaks inside a phrase are *not* rewritten here: the
catalog's expressions match them with ``\\s+``, so ASCII text never needs a copy.

`offsets` maps the normalised text back to the original: a flat list of breakpoints
``[n0, o0, n1, o1, ...]`` (always starting ``0, 0`` and ending
``len(normalised), len(text)``): from normalised index ``n_k`` on, characters map one to
one onto the original from ``o_k``, until the next breakpoint. Only characters that
change the length (a removal, an expansion) add a breakpoint, so the map stays small.
Use `to_original` to map a span.
"""

from __future__ import annotations

import unicodedata
from bisect import bisect_right
from collections.abc import Iterable

_ASCII_BYTES = bytes(range(128))

# Not Cf, yet invisible: Hangul fillers, Mongolian vowel separator, combining grapheme
# joiner; and the variation selectors, which render as nothing after a Latin letter.
_EXTRA_INVISIBLE = frozenset(
    [0x115F, 0x1160, 0x3164, 0xFFA0, 0x180E, 0x034F, *range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0)]
)

# Letters of other scripts that render like a Latin letter in common fonts.
# fmt: off
_HOMOGLYPHS = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c", "т": "t",
    "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w", "һ": "h", "ӏ": "l",
    "ү": "y", "ѡ": "w", "ɡ": "g",
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T",
    "У": "Y", "Х": "X", "І": "I", "Ј": "J", "Ѕ": "S", "Ԁ": "D", "Ԛ": "Q", "Ԝ": "W", "Һ": "H", "Ӏ": "I",
    # Greek
    "ο": "o", "α": "a", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ρ": "p", "τ": "t", "υ": "u", "χ": "x",
    "ϲ": "c", "ϳ": "j", "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M",
    "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
    # Latin letters outside ASCII that pass for ASCII ones, and Armenian o
    "ı": "i", "ɑ": "a", "ℓ": "l", "օ": "o",
}
# fmt: on

_cache: dict[str, str] = {}


def _fold(ch: str) -> str:
    """What one character becomes regardless of its neighbours (homoglyphs aside)."""
    got = _cache.get(ch)
    if got is None:
        cp = ord(ch)
        if 0xE0020 <= cp <= 0xE007E:
            got = chr(cp - 0xE0000)
        elif cp in _EXTRA_INVISIBLE or unicodedata.category(ch) == "Cf":
            got = ""
        else:
            got = unicodedata.normalize("NFKC", ch)
            # NFKC may itself yield invisible or format characters (rare): drop them too.
            if got != ch and any(unicodedata.category(c) == "Cf" for c in got):
                got = "".join(c for c in got if unicodedata.category(c) != "Cf")
        if len(_cache) < 65536:  # bounded: distinct characters seen, not texts
            _cache[ch] = got
    return got


def _latin_neighbour(text: str, i: int, step: int) -> bool:
    """Whether walking from i in direction step, past invisible characters, the first
    visible character is an ASCII letter."""
    n = len(text)
    while 0 <= i < n:
        c = text[i]
        if c.isascii():
            return c.isalpha()
        if _fold(c) != "":
            return False
        i += step
    return False


def _positions(text: str, chars: Iterable[str]) -> list[int]:
    """Where each of `chars` occurs in `text` (str.find: no per-character Python loop)."""
    out: list[int] = []
    for c in chars:
        i = text.find(c)
        while i >= 0:
            out.append(i)
            i = text.find(c, i + 1)
    return out


def _disguised(text: str, present: Iterable[str]) -> set[int]:
    """Positions of homoglyphs inside words that also hold ASCII letters: homoglyphs
    next to an ASCII letter (invisible characters between allowed), spread along their
    word across other homoglyphs and invisibles. `present`: the homoglyphs in `text`."""
    found: set[int] = set()
    n = len(text)
    for a in sorted(_positions(text, present)):
        if a in found or not (_latin_neighbour(text, a - 1, -1) or _latin_neighbour(text, a + 1, 1)):
            continue
        for start, step in ((a, -1), (a + 1, 1)):
            j = start
            while 0 <= j < n:
                c = text[j]
                if c in _HOMOGLYPHS:
                    found.add(j)
                elif not ((c.isascii() and c.isalpha()) or _fold(c) == ""):
                    break
                j += step
    return found


def normalize(text: str, *, utf8: bytes | None = None) -> tuple[str, list[int] | None]:
    """`(text, None)` if nothing would change, else `(normalised, offsets)` (see the
    module docstring). `utf8` may pass `text` already encoded, to save encoding twice."""
    if text.isascii():
        return text, None
    data = utf8 if utf8 is not None else text.encode("utf-8", "surrogatepass")
    odd = set(data.translate(None, _ASCII_BYTES).decode("utf-8", "surrogatepass"))
    folding = [c for c in odd if _fold(c) != c]
    homoglyphs = [c for c in odd if c in _HOMOGLYPHS]
    disguised = _disguised(text, homoglyphs) if homoglyphs else set()
    if not folding and not disguised:
        return text, None
    positions = disguised.union(_positions(text, folding))

    pieces: list[str] = []
    offsets = [0, 0]
    pos = 0  # next original index to copy
    out = 0  # length of the normalised text so far
    for i in sorted(positions):
        rep = _fold(text[i])
        if i in disguised:
            rep = _HOMOGLYPHS.get(rep, rep)
        if i > pos:
            pieces.append(text[pos:i])
            out += i - pos
        pieces.append(rep)
        if len(rep) != 1:
            if len(rep) > 1:
                offsets += (out, i)
            out += len(rep)
            offsets += (out, i + 1)
        else:
            out += 1
        pos = i + 1
    pieces.append(text[pos:])
    out += len(text) - pos
    if offsets[-2:] != [out, len(text)]:
        offsets += (out, len(text))
    return "".join(pieces), offsets


def to_original(offsets: list[int], start: int, end: int) -> tuple[int, int]:
    """Map a span `[start, end)` of the normalised text back onto the original: the
    smallest original span that holds every character the normalised span came from."""
    ns = offsets[0::2]
    return _point(offsets, ns, start), (_point(offsets, ns, end - 1) + 1 if end > start else _point(offsets, ns, start))


def _point(offsets: list[int], ns: list[int], n: int) -> int:
    k = bisect_right(ns, n) - 1
    o = offsets[2 * k + 1] + (n - ns[k])
    if k + 1 < len(ns):
        # Inside an expansion the identity overshoots: clamp to the last original
        # character before the next breakpoint.
        o = min(o, offsets[2 * k + 3] - 1) if n < ns[k + 1] else o
    return o
