"""The memo of recent requests' parts (audit.conversation.split_request reads and fills it)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any


class PartsMemo:
    """The parts of recent requests, so a turn's resent history is not hashed again.

    Keyed by the digest of a request's first message (one small hash); a hit is checked
    part by part with `==` on the parsed values, which is ten times cheaper than
    serialising and hashing them, and only the new messages of a turn are hashed.
    Entries are also found by their last message object (`made_from`), for the guard's
    hint: the very request the guard compared this one with. Bounded by the request
    bytes it keeps alive.
    """

    def __init__(self, max_bytes: int = 16 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[bytes, tuple[int, dict[str, Any]]] = OrderedDict()
        self._by_last: dict[int, dict[str, Any]] = {}
        self._bytes = 0
        # Keys put since `mark()`: a batch whose records were not written takes its
        # entries back (`drop_fresh`), or the next turns would take parts that were
        # never stored for handed.
        self._fresh: list[bytes] = []

    def mark(self) -> None:
        self._fresh.clear()

    def drop_fresh(self) -> None:
        for key in self._fresh:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[0]
                self._forget(old[1])
        self._fresh.clear()

    def get(self, key: bytes) -> dict[str, Any] | None:
        hit = self._entries.get(key)
        return hit[1] if hit is not None else None

    def made_from(self, last: Any) -> dict[str, Any] | None:
        """The entry whose messages end with this very object, if it is kept."""
        entry = self._by_last.get(id(last))
        return entry if entry is not None and entry["messages"] and entry["messages"][-1] is last else None

    def put(self, key: bytes, size: int, entry: dict[str, Any]) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= old[0]
            self._forget(old[1])
        self._entries[key] = (size, entry)
        self._fresh.append(key)
        if entry.get("messages"):
            self._by_last[id(entry["messages"][-1])] = entry
        self._bytes += size
        while self._bytes > self.max_bytes and len(self._entries) > 1:
            _, (dropped, gone) = self._entries.popitem(last=False)
            self._bytes -= dropped
            self._forget(gone)

    def _forget(self, entry: dict[str, Any]) -> None:
        messages = entry.get("messages")
        if messages and self._by_last.get(id(messages[-1])) is entry:
            del self._by_last[id(messages[-1])]
