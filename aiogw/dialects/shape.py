"""A request read in three parts, and a conversation's history compared with the last turn's.

Agents resend the whole conversation every turn. A dialect gives the guard its request
as a `Shape`: `head` (system prompt, instructions), the history list at `history` (one
call of `item` per entry, its index in the path), and `tail` (tool definitions, at the
body's `tail_key`). The guard keeps what it read of a conversation's history and reads
only the entries past the prefix it shares with the last turn (`same_prefix`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiogw.dialects.reading import as_list
from aiogw.dialects.walk import Out, Text


@dataclass(frozen=True, slots=True)
class Shape:
    """One request layout. `name` tells layouts apart (two may keep their history
    under the same key but read it differently): it keys a remembered conversation."""

    name: str
    head: Callable[[dict, Out], None]
    history: str
    item: Callable[[int, Any, Out], None]
    tail: Callable[[dict, Out], None]
    tail_key: str = "tools"

    def entries(self, body: dict) -> list:
        """The body's history list (empty when it has none, or not a list)."""
        return as_list(body.get(self.history))

    def texts(self, body: dict) -> list[Text]:
        """Every text of the body, in order: head, history, tail."""
        out: Out = []
        self.head(body, out)
        item = self.item
        for i, value in enumerate(self.entries(body)):
            item(i, value, out)
        self.tail(body, out)
        return out


def same_prefix(old: list[Any], new: list[Any]) -> int:
    """How many leading history entries `new` shares with `old`: one comparison in C
    for the usual turn (the old ones resent, new ones after; the last old one may have
    changed, as Claude Code moves its cache marker every turn), entry by entry otherwise.
    Entries nested past the interpreter's recursion limit compare as different."""
    n = min(len(old), len(new))
    try:
        if n and old[n - 1] != new[n - 1]:
            n -= 1
        if old[:n] == new[:n]:
            return n
    except RecursionError:  # counted entry by entry below
        pass
    i = 0
    while i < n and equal(old[i], new[i]):
        i += 1
    return i


def equal(a: Any, b: Any) -> bool:
    """`a == b`, where values nested past the interpreter's recursion limit (a JSON
    body may nest 1,024 deep) compare as different instead of raising."""
    try:
        return bool(a == b)
    except RecursionError:
        return False
