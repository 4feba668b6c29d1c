"""JSON the gateway writes again from what it parsed, at any depth, as orjson's bytes.

orjson reads arrays and objects nested 1,024 deep but writes only 254 levels, so a
body it parsed may be one it cannot write: a redacted body, a conversation's key, an
audit record's parts. `dumps` gives orjson's bytes, and when orjson refuses, the same
bytes from `dumps_any_depth`, a loop with a stack of its own: a value nested past 254
levels costs its own time, never a traceback or a lost record for its depth.

What orjson cannot write at any depth (text that is not UTF-8, an integer past 64 bits,
a key that is not a string, a type JSON has no form for) still raises
`orjson.JSONEncodeError`, as orjson does: nothing orjson parsed is such a value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import orjson

_END = object()
_OPENED = (b"{", b"[")


def dumps(value: Any, *, sort_keys: bool = False) -> bytes:
    """`orjson.dumps(value)` (keys sorted if asked), at any depth."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else None)
    except orjson.JSONEncodeError:
        return dumps_any_depth(value, sort_keys=sort_keys)


def dumps_any_depth(value: Any, *, sort_keys: bool = False, leaf: Callable[[Any], bytes] = orjson.dumps) -> bytes:
    """orjson's compact output, one container (dict, list, tuple) at a time, at any
    depth; every key and every other value is written by `leaf`, orjson itself unless
    told, so the bytes are its own. Slower than orjson: `dumps` calls it only when
    orjson refuses."""
    out: list[bytes] = []
    stack: list[tuple[Iterator[Any], bool]] = []  # each open container: its rest, whether an object
    node = value
    while True:
        if isinstance(node, dict):
            out.append(b"{")
            stack.append((iter(sorted(node.items()) if sort_keys else node.items()), True))
        elif isinstance(node, (list, tuple)):
            out.append(b"[")
            stack.append((iter(node), False))
        else:
            out.append(leaf(node))
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
                if not isinstance(key, str):  # as orjson: `{1:…}` is no JSON
                    raise orjson.JSONEncodeError("Dict key must be str")
                out.append(leaf(key) + b":")
            else:
                node = item
            break
        else:
            return b"".join(out)


def depth(value: Any) -> int:
    """How deeply `value`'s containers nest: 0 for a string or a number, 1 for `[]`."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            node = node.values()
        elif not isinstance(node, (list, tuple)):
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in node)
    return deepest
