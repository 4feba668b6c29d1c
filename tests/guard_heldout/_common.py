"""The record shape and the small helpers every category builder shares."""

from __future__ import annotations

import random

PLACES = ("tool_result", "user", "system", "tool_definition")
CATEGORIES = ("credential", "pii", "injection", None)


def record(
    rid: str, place: str, kind: str, category: str | None, subcategory: str | None, text: str, value: str | None = None
) -> dict:
    assert place in PLACES, place
    assert category in CATEGORIES, category
    return {
        "id": rid,
        "place": place,
        "kind": kind,
        "category": category,
        "subcategory": subcategory,
        "text": text,
        "value": value,
    }


def numbered(text: str, start: int = 1) -> str:
    """Render a file the way an agent's file-read tool returns it: cat -n style."""
    return "\n".join(f"{i:>6}\t{ln}" for i, ln in enumerate(text.splitlines(), start))


class Ids:
    """Sequential ids per prefix, so that ids stay stable when a builder is re-run."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.counts: dict[str, int] = {}

    def __call__(self, sub: str) -> str:
        n = self.counts.get(sub, 0) + 1
        self.counts[sub] = n
        return f"{self.prefix}-{sub}-{n:03d}"


def weighted_place(rng: random.Random, user: float = 0.12, system: float = 0.0, tool_def: float = 0.0) -> str:
    r = rng.random()
    if r < user:
        return "user"
    if r < user + system:
        return "system"
    if r < user + system + tool_def:
        return "tool_definition"
    return "tool_result"
