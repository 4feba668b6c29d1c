"""What the request guard read of recent conversations, so a turn reads only what is new.

Agents resend the whole conversation every turn. Walking it for texts costs more than
scanning them (hundreds of texts in an agent's body), so per conversation the guard
keeps the history it saw, each entry's texts with their matches, and the tool
definitions with theirs. The next turn compares its history with that one in one C
comparison (`same_prefix`) and its tools with `==`, reuses what is equal, and walks
and scans only the rest. Equal values give equal texts at equal paths, and a text's
matches depend only on the text and its place, so the findings are exactly those of a
full read. Policies are applied afresh to every turn.

Keyed by user, the request's shape and a hash of the history's first entry; bounded by the request bytes
the kept conversations hold alive. Bodies nested past what orjson writes or Python
compares are read like any other: the key is written by `jsonout`, and entries that
cannot be compared count as changed (read anew).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiogw import jsonout
from aiogw.dialects.shape import Shape, equal, same_prefix
from aiogw.dialects.walk import Text

if TYPE_CHECKING:
    from aiogw.guards.engine import Match

Pair = tuple[Text, "list[Match]"]


@dataclass(slots=True)
class Read:
    """One conversation as the guard last read it."""

    history: list[Any]
    items: list[list[Pair]]  # per history entry, its texts that have matches
    tail: Any
    tail_pairs: list[Pair]  # the tool definitions' texts that have matches
    size: int
    same: int = 0  # entries this read shared with the conversation's read before it


def conversation_key(user: str | None, s: Shape, entries: list[Any], session: str | None = None) -> bytes | None:
    if not entries:
        return None
    first = jsonout.dumps(entries[0], sort_keys=True)
    # The shape is in the key: Anthropic and OpenAI chat both keep a "messages"
    # history, but read their tool definitions differently. The agent's session id,
    # when it sends one, keeps apart one user's conversations that open alike (agents
    # started on the same task, the same boilerplate first message): sharing a key,
    # they pushed each other out and every turn was read whole.
    shape_id = f"{user}\0{session or ''}\0{s.name}\0"
    return hashlib.blake2b(shape_id.encode() + first, digest_size=16).digest()


class HistoryMemo:
    def __init__(self, max_bytes: int = 16 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[bytes, Read] = OrderedDict()
        self._bytes = 0
        self.reused = 0  # history entries not read again (for tests and metrics)

    def get(self, key: bytes | None) -> Read | None:
        if key is None:
            return None
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def put(self, key: bytes | None, read: Read) -> None:
        if key is None:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= old.size
        self._entries[key] = read
        self._bytes += read.size
        while self._bytes > self.max_bytes and len(self._entries) > 1:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= dropped.size


def read_parts(s: Shape, body: dict, prev: Read | None) -> tuple[list[Text], list[Any], list[list[Text]], Any, int, list[Text] | None]:
    """(head texts, history, new entries' texts, tail value, entries reused, tail texts
    or None when `prev`'s are reused)."""
    head: list[Text] = []
    s.head(body, head)
    entries = s.entries(body)
    same = same_prefix(prev.history, entries) if prev is not None else 0
    new: list[list[Text]] = []
    item = s.item
    for i in range(same, len(entries)):
        out: list[Text] = []
        item(i, entries[i], out)
        new.append(out)
    tail = body.get(s.tail_key)
    tail_texts: list[Text] | None = None
    if prev is None or tail is None or not equal(prev.tail, tail):
        tail_texts = []
        s.tail(body, tail_texts)
    return head, entries, new, tail, same, tail_texts
