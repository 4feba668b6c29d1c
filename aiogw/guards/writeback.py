"""JSON the guards write back (a redacted body, a conversation's key), at any depth.

orjson reads arrays and objects nested 1,024 deep but writes only 254 levels, so a
body it parsed may be one it cannot write. `dumps` gives orjson's bytes, and when
orjson refuses, the same bytes from `dumps_any_depth`, a loop with a stack of its own:
a body nested past 254 levels costs its own time, never a traceback or a refusal for
its depth.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

_END = object()
_OPENED = (b"{", b"[")


def dumps(value: Any, *, sort_keys: bool = False) -> bytes:
    """`orjson.dumps(value)` (keys sorted if asked) for a value orjson parsed."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else None)
    except orjson.JSONEncodeError:
        return dumps_any_depth(value, sort_keys=sort_keys)


def dumps_any_depth(value: Any, *, sort_keys: bool = False) -> bytes:
    """orjson's compact output, one container at a time, at any depth; every key and
    leaf (string, number, true, false, null) is written by orjson itself, so the bytes
    are its own. Slower than orjson: `dumps` calls it only when orjson refuses."""
    out: list[bytes] = []
    stack: list[tuple[Iterator[Any], bool]] = []  # each open container: its rest, whether an object
    node = value
    while True:
        if isinstance(node, dict):
            out.append(b"{")
            stack.append((iter(sorted(node.items()) if sort_keys else node.items()), True))
        elif isinstance(node, list):
            out.append(b"[")
            stack.append((iter(node), False))
        else:
            out.append(orjson.dumps(node))
        while stack:  # the next value to write, closing the containers that end before it
            items, is_object = stack[-1]
            item = next(items, _END)
            if item is _END:
                stack.pop()
                out.append(b"}" if is_object else b"]")
                continue
            if out[-1] not in _OPENED:  # a value before it in this container
                out.append(b",")
            if is_object:
                key, node = item
                out.append(orjson.dumps(key) + b":")
            else:
                node = item
            break
        else:
            return b"".join(out)
