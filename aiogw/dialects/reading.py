"""Small, total readers for untrusted provider JSON: each returns a usable value for any
input instead of raising, so the dialects' answer readers stay free of try blocks."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import orjson

from aiogw.sse import parse as parse_sse
from aiogw.sse import plain_events


class Marker:
    """Event data that is not a JSON value; compared by identity."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


DONE = Marker("[DONE]")  # OpenAI's end-of-stream marker
BROKEN = Marker("BROKEN")  # data that is not JSON: a piece of the answer is missing


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_int(value: Any) -> int:
    """A token count: a non-negative int; anything else (null, a string) is 0."""
    if type(value) is int:  # the common case, first (bool is a subclass, not this type)
        return value if value >= 0 else 0
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(0, value)
    if isinstance(value, float) and math.isfinite(value):
        return max(0, int(value))
    return 0


def dict_at(target: dict[str, Any], key: str) -> dict[str, Any]:
    """`target[key]` as a dict to fill in, replacing whatever non-dict was there."""
    value = target.get(key)
    if not isinstance(value, dict):
        value = target[key] = {}
    return value


def list_at(target: dict[str, Any], key: str) -> list[Any]:
    """`target[key]` as a list to append to, replacing whatever non-list was there."""
    value = target.get(key)
    if not isinstance(value, list):
        value = target[key] = []
    return value


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def load(body: bytes | str) -> Any:
    """The JSON value, or None when it does not parse."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def looks_like_json(body: bytes, openers: bytes) -> bool:
    """The first non-space byte is one of `openers` (e.g. b"{" or b"[")."""
    stripped = body[:64].lstrip()
    return bool(stripped) and stripped[0] in openers


def sse_data(body: bytes) -> tuple[list[tuple[str, Any]], bool]:
    """A whole event stream as (event type, data) pairs and whether it ended on an
    event boundary. Data is the parsed JSON, DONE for "[DONE]", or BROKEN. The event a
    cut stream was in the middle of is not among them (see `aiogw.sse`)."""
    # The usual shape: its data stays bytes, straight to orjson; else the full parser.
    pairs: list[tuple[str, str | bytes]] | None = plain_events(body)
    clean = True
    if pairs is None:
        events, parser = parse_sse(body)
        pairs, clean = [(e.event, e.data) for e in events], parser.clean
    out: list[tuple[str, Any]] = []
    for kind, data in pairs:
        if data == b"[DONE]" or data == "[DONE]":
            out.append((kind, DONE))
            continue
        try:
            out.append((kind, orjson.loads(data)))
        except orjson.JSONDecodeError:
            out.append((kind, BROKEN))
    return out, clean


@dataclass(frozen=True, slots=True)
class Folded:
    """A stream folded back into one response: the message in the non-streaming shape,
    the provider's raw usage object, whether the stream reached its proper end, and the
    error object it carried."""

    message: dict[str, Any] | None
    usage: dict[str, Any]
    complete: bool
    error: dict[str, Any] | None = None


class Texts:
    """String fields built from many pieces, joined once at the end.

    `target[field] += piece` copies the whole string each time: quadratic over a long
    answer (tens of thousands of deltas). Pieces wait here instead; `flush` writes
    the joined strings back. Until then `target[field]` holds the text from before
    the first piece.
    """

    __slots__ = ("_pieces",)

    def __init__(self) -> None:
        # (id of target, field) → (target, field, pieces); the target is held, so its
        # id cannot be reused by another dict while it is here.
        self._pieces: dict[tuple[int, str], tuple[dict[str, Any], str, list[str]]] = {}

    def append(self, target: dict[str, Any], field: str, piece: str) -> None:
        key = (id(target), field)
        entry = self._pieces.get(key)
        if entry is None:
            start = as_str(target.get(field))
            entry = self._pieces[key] = (target, field, [start] if start else [])
        entry[2].append(piece)

    def set(self, target: dict[str, Any], field: str, text: str) -> None:
        """The whole text (a `.done` event): pieces so far are superseded."""
        self._pieces.pop((id(target), field), None)
        target[field] = text

    def flush(self) -> None:
        for target, field, pieces in self._pieces.values():
            target[field] = "".join(pieces)
        self._pieces.clear()
