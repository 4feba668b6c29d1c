"""OpenAI Responses streams folded back into the `response` object.

The terminal event (`response.completed`, `.incomplete`, `.failed`) carries the whole
response, output and usage included: when it arrived, it is the answer. A cut stream
has only the snapshot of `response.created` / `.in_progress` (no output, no usage), so
the output is assembled from `output_item.added` / `.done` and the deltas between.
Events this reader does not know (Codex sees several undocumented ones) are skipped.
"""

from __future__ import annotations

from typing import Any

import orjson

from aiogw.dialects.reading import BROKEN, Folded, Texts, as_dict, as_int, as_list, as_str, list_at, sse_data
from aiogw.sse import plain_events

_SNAPSHOTS = frozenset({"response.created", "response.in_progress", "response.queued"})
# The stream's proper ends; a failed response ends it too, but with an error.
_ENDS = frozenset({"response.completed", "response.incomplete"})
_FAILED = "response.failed"

# Text inside a part of an item: event → (item list, part type, part field, event field).
# A `.delta` event appends its piece, a `.done` event gives the whole text.
_PART_TEXT = {
    "response.output_text.delta": ("content", "output_text", "text", "delta"),
    "response.output_text.done": ("content", "output_text", "text", "text"),
    "response.refusal.delta": ("content", "refusal", "refusal", "delta"),
    "response.refusal.done": ("content", "refusal", "refusal", "refusal"),
    "response.reasoning_text.delta": ("content", "reasoning_text", "text", "delta"),
    "response.reasoning_text.done": ("content", "reasoning_text", "text", "text"),
    "response.reasoning_summary_text.delta": ("summary", "summary_text", "text", "delta"),
    "response.reasoning_summary_text.done": ("summary", "summary_text", "text", "text"),
}
# Text on the item itself: event → (item field, event field).
_ITEM_TEXT = {
    "response.function_call_arguments.delta": ("arguments", "delta"),
    "response.function_call_arguments.done": ("arguments", "arguments"),
    "response.custom_tool_call_input.delta": ("input", "delta"),
    "response.custom_tool_call_input.done": ("input", "input"),
    "response.mcp_call_arguments.delta": ("arguments", "delta"),
    "response.mcp_call_arguments.done": ("arguments", "arguments"),
}
# Whole parts: event → item list they go in.
_PARTS = {
    "response.content_part.added": "content",
    "response.content_part.done": "content",
    "response.reasoning_summary_part.added": "summary",
    "response.reasoning_summary_part.done": "summary",
}
_INDEX = {"content": "content_index", "summary": "summary_index"}
_EMPTY_PART = {"output_text": {"annotations": []}}
# Part indexes are small in practice; a hostile one must not make us allocate a list
# of that length, so larger ones share the last slot.
_MAX_INDEX = 1024


def responses_usage(body: bytes) -> dict[str, Any] | None:
    """The usage `fold_responses` finds (that of the last response snapshot or terminal
    event), parsing only those events, told by their SSE event names; None unless the
    stream is plain SSE that names them."""
    plain = plain_events(body)
    if plain is None:
        return None
    found: dict[str, Any] | None = None
    for kind, data in plain:
        if kind in _SNAPSHOTS or kind in _ENDS or kind == _FAILED:
            try:
                event = as_dict(orjson.loads(data))
            except orjson.JSONDecodeError:
                continue
            found = as_dict(as_dict(event.get("response")).get("usage"))
    return found


def fold_responses(body: bytes) -> Folded:
    """A whole Responses stream (decoded bytes) as one response object."""
    events, _ = sse_data(body)
    stream = _ResponsesStream()
    for _, data in events:
        if data is BROKEN:
            stream.broken = True
        else:
            stream.event(as_dict(data))
    return stream.folded()


class _ResponsesStream:
    __slots__ = ("_ids", "_items", "_texts", "broken", "ended", "error", "response")

    def __init__(self) -> None:
        self._texts = Texts()
        self.response: dict[str, Any] | None = None
        self._items: dict[int, dict[str, Any]] = {}  # by output_index
        self._ids: dict[str, int] = {}  # item id → output_index, for events without one
        self.ended = False
        self.broken = False
        self.error: dict[str, Any] | None = None

    def event(self, data: dict[str, Any]) -> None:
        kind = as_str(data.get("type")) or ""
        if kind in _PART_TEXT:
            where, part_type, field, source = _PART_TEXT[kind]
            self._text(self._part(data, where, part_type), field, data.get(source), source)
        elif kind in _ITEM_TEXT:
            field, source = _ITEM_TEXT[kind]
            self._text(self._item(data), field, data.get(source), source)
        elif kind in _PARTS:
            where = _PARTS[kind]
            parts = list_at(self._item(data), where)
            index = _index(data, _INDEX[where])
            _slot(parts, index)
            parts[index] = dict(as_dict(data.get("part")))
        elif kind == "response.output_text.annotation.added":
            part = self._part(data, "content", "output_text")
            list_at(part, "annotations").append(data.get("annotation"))
        elif kind in ("response.output_item.added", "response.output_item.done"):
            self._set_item(data)
        elif kind in _SNAPSHOTS or kind in _ENDS or kind == _FAILED:
            self.response = dict(as_dict(data.get("response")))
            self.ended = self.ended or kind in _ENDS
            if kind == _FAILED:
                self.error = as_dict(self.response.get("error")) or data
        elif kind == "error":
            self.error = data

    def _set_item(self, data: dict[str, Any]) -> None:
        item = dict(as_dict(data.get("item")))
        index = as_int(data.get("output_index")) if "output_index" in data else len(self._items)
        self._items[index] = item
        if isinstance(item.get("id"), str):
            self._ids[item["id"]] = index

    def _item(self, data: dict[str, Any]) -> dict[str, Any]:
        if "output_index" in data:
            index = as_int(data.get("output_index"))
        else:
            index = self._ids.get(as_str(data.get("item_id")) or "", len(self._items))
        return self._items.setdefault(index, {})

    def _part(self, data: dict[str, Any], where: str, part_type: str) -> dict[str, Any]:
        parts = list_at(self._item(data), where)
        index = _index(data, _INDEX[where])
        _slot(parts, index)
        if not isinstance(parts[index], dict) or not parts[index]:
            parts[index] = {"type": part_type, **_EMPTY_PART.get(part_type, {})}
        return parts[index]

    def _text(self, target: dict[str, Any], field: str, piece: Any, source: str) -> None:
        if not isinstance(piece, str):
            return
        if source == "delta":
            self._texts.append(target, field, piece)
        else:
            self._texts.set(target, field, piece)

    def folded(self) -> Folded:
        self._texts.flush()
        response = self.response
        if response is None and not self._items:
            return Folded(None, {}, False, self.error)
        response = dict(response or {"object": "response"})
        # The terminal response lists the output; assemble it only when it is missing.
        if not as_list(response.get("output")) and self._items:
            response["output"] = [self._items[i] for i in sorted(self._items)]
        usage = as_dict(response.get("usage"))
        return Folded(response, usage, self.ended and not self.broken and self.error is None, self.error)


def _index(data: dict[str, Any], key: str) -> int:
    return min(as_int(data.get(key)), _MAX_INDEX)


def _slot(items: list[Any], index: int) -> None:
    """Grow `items` so `items[index]` exists (parts may be announced out of order)."""
    if len(items) <= index:
        items.extend({} for _ in range(index + 1 - len(items)))
