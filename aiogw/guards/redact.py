"""Writing masks into a parsed request body at the paths the guards found.

The matched text itself never leaves this module: findings carry offsets and paths,
redactions replace the span with a typed placeholder such as `[REDACTED:email]`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

Span = tuple[int, int, str]  # start, end, subcategory


def placeholder(subcategory: str) -> str:
    return f"[REDACTED:{subcategory}]"


def mask(text: str, spans: Iterable[Span]) -> str:
    """The text with each span replaced; overlapping spans merge into the first's type."""
    merged: list[list[Any]] = []
    for start, end, kind in sorted(spans):
        if merged and start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end, kind])
    out, last = [], 0
    for start, end, kind in merged:
        out.append(text[last:start])
        out.append(placeholder(kind))
        last = end
    out.append(text[last:])
    return "".join(out)


def get(body: Any, path: Sequence[str | int]) -> Any:
    for key in path:
        body = body[key]
    return body


def put(body: Any, path: Sequence[str | int], value: Any) -> None:
    get(body, path[:-1])[path[-1]] = value


def apply(body: Any, findings: Iterable[dict[str, Any]]) -> int:
    """Mask every finding's span in `body`, in place; returns the strings changed."""
    by_path: dict[tuple, list[Span]] = {}
    for f in findings:
        by_path.setdefault(tuple(f["path"]), []).append((f["start"], f["end"], f["subcategory"]))
    for path, spans in by_path.items():
        put(body, path, mask(get(body, path), spans))
    return len(by_path)
