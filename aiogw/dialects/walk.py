"""Walking parsed JSON for its texts: where each text is (its path), which strings
are binary data, and a walk bounded by the body's size, not by its depth.

Plain data in and out: each dialect's `*_texts` module uses it for a request's texts
by place (through `aiogw.dialects.blocks`) and for a model's answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import orjson

Path = tuple[str | int, ...]


class At:
    """A path kept as its parent's and one more key. Past `_FLAT` keys a walk makes
    these instead of tuples: a tuple of the whole path for every string would cost
    depth x strings (1.6 GB for an 0.8 MB body of strings 1,000 deep)."""

    __slots__ = ("key", "parent")

    def __init__(self, parent: Path | At, key: str | int) -> None:
        self.parent = parent
        self.key = key


_FLAT = 32


class Text(NamedTuple):
    place: str
    at: Path | At  # where it is; read as `path`
    text: str

    @property
    def path(self) -> Path:
        """The text's path in the parsed body, as a tuple (made on each call when the
        text is nested past `_FLAT` keys; for many texts, `Paths`)."""
        return Paths().of(self)


class Paths:
    """The paths of texts of one body, each container's made once. Kept for one request
    only: a conversation's remembered read holds its texts, not their paths."""

    __slots__ = ("_made",)

    def __init__(self) -> None:
        self._made: dict[int, Path] = {}  # by id of an `At`, which its texts keep alive

    def of(self, t: Text) -> Path:
        at = t.at
        if type(at) is tuple:
            return at
        chain: list[At] = []
        up: Path | At = at.parent  # type: ignore[union-attr]
        while type(up) is At and id(up) not in self._made:
            chain.append(up)
            up = up.parent
        path: Path = up if type(up) is tuple else self._made[id(up)]  # type: ignore[assignment]
        for link in reversed(chain):
            path = self._made[id(link)] = (*path, link.key)
        return (*path, at.key)  # type: ignore[union-attr]


# The walk appends to one list instead of nesting generators: an agent's body holds
# hundreds of texts (every string of every tool schema among them), and this runs on
# every guarded request.
Out = list[Text]

# Shorter strings are always read: scanning them costs less than deciding.
BINARY_MIN = 2048
_BASE64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
# RFC 2397 with `;base64`: `data:image/png;base64,`, parameters allowed before it.
_DATA_URL = re.compile(r"data:[\w.+-]+/[\w.+-]+(?:;[\w.+-]+=[\w.+-]+)*;base64,")


def binary(s: str) -> bool:
    """Whether `s` is, whole, base64 data (an inline image or file in free-form JSON),
    which no pattern should read as text: after an optional `data:<type>;base64,` head,
    nothing but the base64 alphabet, padded to a multiple of four. A text that only
    begins like one (2 KB of `A`, or a data: URL, then an instruction or a key) is not.

    Costs O(1) for non-ASCII text, a 1 KB look for most other text, and one pass in C
    (about 1 ms a MB) for real base64 data."""
    if len(s) < BINARY_MIN or not s.isascii():
        return False
    start = 0
    if s.startswith("data:"):
        head = _DATA_URL.match(s, 0, 256)
        if head is None:
            return False
        start = head.end()
    if (len(s) - start) % 4 or s[start : start + 1024].encode().translate(None, _BASE64):
        return False
    data = s[start:].encode().rstrip(b"=")
    return len(s) - start - len(data) <= 2 and not data.translate(None, _BASE64)


def strings(value: Any, path: Path, place: str, out: Out, skip: frozenset[str] = frozenset()) -> None:
    """Every string inside a JSON value (tool inputs, function results, schemas, blocks
    read as JSON), in document order, but whole base64 data (`binary`) and the values
    of `skip` keys. A loop with a stack of its own, and paths past `_FLAT` keys kept as
    `At` links: a body may nest 1,000 deep, and costs its size, not size x depth."""
    if isinstance(value, str):
        if value and not binary(value):
            out.append(Text(place, path, value))
        return
    if isinstance(value, dict):
        items: Iterator[tuple[Any, Any]] = iter(value.items())
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return
    here: Path | At = path
    flat = len(path) < _FLAT
    outer: list[tuple[Path | At, bool, Iterator[tuple[Any, Any]]]] = []  # the containers around this one
    while True:
        for key, item in items:
            if isinstance(item, str):
                if item and key not in skip and (len(item) < BINARY_MIN or not binary(item)):
                    out.append(Text(place, (*here, key) if flat else At(here, key), item))  # type: ignore[misc]
            elif isinstance(item, dict | list) and key not in skip:
                outer.append((here, flat, items))
                here = (*here, key) if flat else At(here, key)  # type: ignore[misc]
                flat = flat and len(here) < _FLAT  # type: ignore[arg-type]
                items = iter(item.items()) if isinstance(item, dict) else enumerate(item)
                break
        else:
            if not outer:
                return
            here, flat, items = outer.pop()


def json_text(value: Any) -> str | None:
    """A JSON value the model wrote (a tool call's input) as one text to scan, or None
    for none; nested past what orjson writes (254 levels), its strings, one a line."""
    if value is None:
        return None
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        out: Out = []
        strings(value, (), "response", out)
        return "\n".join(t.text for t in out)


def path_text(path: Iterable[str | int]) -> str:
    """A text's place in the body as people write it: messages[2].content[0].content."""
    out = ""
    for key in path:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else key)
    return out
