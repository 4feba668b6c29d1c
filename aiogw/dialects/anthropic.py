"""Anthropic Messages API."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, ClassVar

import orjson

from aiogw.dialects.anthropic_texts import MESSAGES, answer_pieces
from aiogw.dialects.base import Answer, Dialect, Endpoint, PartKeys, Usage, dumps
from aiogw.dialects.reading import BROKEN, Texts, as_dict, as_int, as_list, as_str, list_at, load, sse_data
from aiogw.dialects.shape import Shape
from aiogw.sse import plain_events

# https status → Anthropic error type, as its SDK maps them back to exceptions.
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}

# Blocks whose `input` arrives as input_json_delta pieces.
_JSON_INPUT_BLOCKS = frozenset({"tool_use", "server_tool_use", "mcp_tool_use"})
# Delta type → the block field its string piece is appended to.
_TEXT_DELTAS = {"text_delta": ("text", "text"), "thinking_delta": ("thinking", "thinking")}


class Anthropic(Dialect):
    name = "anthropic"
    credential_header = "x-api-key"
    endpoints: ClassVar[dict[str, Endpoint]] = {
        "POST /v1/messages": Endpoint("messages", json=True),
        "POST /v1/messages/count_tokens": Endpoint("count_tokens", json=True),
        "GET /v1/models": Endpoint("models"),
    }
    part_keys: ClassVar[dict[str, PartKeys]] = {"messages": PartKeys(), "count_tokens": PartKeys()}
    request_id_headers = ("request-id",)
    allowed = ("GET /v1/models/*",)

    def error_body(self, status: int, message: str, retry_after: int | None = None) -> bytes:
        kind = _TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return dumps({"type": "error", "error": {"type": kind, "message": message}})

    def stream_error(self, message: str, json_array: bool) -> bytes:
        body = {"type": "error", "error": {"type": "permission_error", "message": message}}
        return b"event: error\ndata: " + dumps(body) + b"\n\n"

    def shape(self, endpoint: str, body: dict[str, Any]) -> Shape:
        return MESSAGES

    def answer_pieces(self, data: dict[str, Any]) -> Iterator[Any]:
        return answer_pieces(data)

    def json_answer(self, endpoint: str, data: dict[str, Any]) -> Answer:
        error = data if data.get("type") == "error" else None
        return Answer(
            message=None if error else data,
            usage=usage(as_dict(data.get("usage"))),
            model=as_str(data.get("model")),
            stop_reason=as_str(data.get("stop_reason")),
            complete=True,
            error=error,
        )

    def stream_answer(self, endpoint: str, body: bytes) -> Answer:
        events, _ = sse_data(body)
        stream = _MessageStream()
        for _, data in events:
            stream.event(data)
        message = stream.message()
        return Answer(
            message=message,
            usage=usage(stream.usage),
            model=as_str(message.get("model")) if message else None,
            stop_reason=as_str(message.get("stop_reason")) if message else None,
            complete=stream.stopped and not stream.broken,
            error=stream.error,
        )

    def stream_usage(self, endpoint: str, body: bytes) -> Usage | None:
        return stream_usage(body) if endpoint == "messages" else None

    def json_usage(self, endpoint: str, data: dict[str, Any]) -> Usage:
        return usage(as_dict(data.get("usage")))


# The events whose usage a Messages stream reports (see _MessageStream).
_USAGE_EVENTS = ("message_start", "message_delta")


def stream_usage(body: bytes) -> Usage | None:
    """The usage `stream_answer` finds, from message_start and message_delta alone,
    folded by the same code; None unless the stream is plain SSE with named events
    and those events hold every payload the whole read would fold.

    The whole read goes by each payload's `type`, not by its event's name, so the
    events found must hold every spelling of the two types in the stream: as JSON
    strings (a JSON string cannot hold a bare quote, so each is a real one), and with
    no `\\u` escape that could spell one otherwise."""
    found = usage_events(body)
    if found is None:
        plain = plain_events(body)
        if plain is None:
            return None
        found = [(kind, data) for kind, data in plain if kind in _USAGE_EVENTS]
    if not found or any(body.count(n) != sum(d.count(n) for _, d in found) for n in _USAGE_NAMES):
        return None  # another of them, in another event, another shape or cut short
    if body.find(b"\\") >= 0 and _ESCAPE.search(body):
        return None
    stream = _MessageStream()
    for _, data in found:
        try:
            stream.event(orjson.loads(data))
        except orjson.JSONDecodeError:
            stream.event(BROKEN)
    return usage(stream.usage)


_USAGE_NAMES = (b'"message_start"', b'"message_delta"')
# A regex finds it twice as fast as `in` does a two-byte needle (~60 µs in 100 KB).
_ESCAPE = re.compile(rb"\\u")
_START = b"event: message_start\ndata: "
_DELTA = b"\n\nevent: message_delta\ndata: "


def usage_events(body: bytes) -> list[tuple[str, bytes]] | None:
    """The first event, message_start, and the last message_delta of a plain stream,
    found by searching its bytes rather than splitting all of it into events: with the
    checks in `stream_usage`, a 500-event answer's usage costs ~0.17 ms instead of ~0.5
    (on the loop, for a limited user or when metrics and the log are all that read it; a
    batch of streams ending together held new streams' first bytes back by ~20 ms at 50
    open). `stream_usage` checks that they are all of them. A JSON data line holds no raw
    line feed, so a block found this way is a whole event of one event and one data line.
    None when the stream is not of that plain shape (`stream_usage` then splits it)."""
    if not body.startswith(_START) or not body.endswith(b"\n\n") or b"\r" in body:
        return None
    end = body.find(b"\n", len(_START))
    if not body.startswith(b"\n\n", end):
        return None
    out = [("message_start", body[len(_START) : end])]
    at = body.rfind(_DELTA)
    if at >= 0:
        start = at + len(_DELTA)
        end = body.find(b"\n", start)
        if not body.startswith(b"\n\n", end):
            return None
        out.append(("message_delta", body[start:end]))
    return out


def usage(u: dict[str, Any]) -> Usage:
    """Anthropic reports cache reads and writes on top of `input_tokens`, so they map
    straight onto Usage; the 1-hour writes are a part of all writes."""
    split = u.get("cache_creation")
    if type(split) is dict:
        write_5m = as_int(split.get("ephemeral_5m_input_tokens"))
        write_1h = as_int(split.get("ephemeral_1h_input_tokens"))
    else:
        write_5m = write_1h = 0
    write = as_int(u.get("cache_creation_input_tokens"))
    return Usage(  # by position (input, output, cache_read, cache_write, cache_write_1h): read per exchange
        as_int(u.get("input_tokens")),
        as_int(u.get("output_tokens")),
        as_int(u.get("cache_read_input_tokens")),
        write if write >= write_5m + write_1h else write_5m + write_1h,
        write_1h,
    )


class _MessageStream:
    """The Messages stream folded back into a Message, event by event.

    Usage comes twice: message_start has input and cache counts (and output so far),
    message_delta the cumulative output — and, on newer models, final input and cache
    counts too. Every non-null field of the later report wins; neither replaces the
    other whole.
    """

    __slots__ = ("_blocks", "_json", "_message", "_texts", "broken", "error", "stopped", "usage")

    def __init__(self) -> None:
        self._message: dict[str, Any] | None = None
        self._blocks: dict[int, dict[str, Any]] = {}
        self._json: dict[int, list[str]] = {}  # input_json_delta pieces by block index
        self._texts = Texts()
        self.usage: dict[str, Any] = {}
        self.stopped = False
        self.broken = False
        self.error: dict[str, Any] | None = None

    def event(self, data: Any) -> None:
        if data is BROKEN:
            self.broken = True
            return
        data = as_dict(data)
        handler = _HANDLERS.get(as_str(data.get("type")) or "")
        if handler is not None:
            handler(self, data)

    def _start(self, data: dict[str, Any]) -> None:
        self._message = dict(as_dict(data.get("message")))
        for index, block in enumerate(as_list(self._message.get("content"))):
            self._blocks[index] = dict(as_dict(block))
        self.usage = dict(as_dict(self._message.get("usage")))

    def _block_start(self, data: dict[str, Any]) -> None:
        index = as_int(data.get("index"))
        block = dict(as_dict(data.get("content_block")))
        self._blocks[index] = block
        if as_str(block.get("type")) in _JSON_INPUT_BLOCKS:
            self._json[index] = []

    def _block_delta(self, data: dict[str, Any]) -> None:
        index = as_int(data.get("index"))
        block = self._blocks.setdefault(index, {})
        delta = as_dict(data.get("delta"))
        kind = as_str(delta.get("type"))
        if kind == "input_json_delta":
            piece = as_str(delta.get("partial_json"))
            if piece is not None:
                self._json.setdefault(index, []).append(piece)
        elif kind in _TEXT_DELTAS:
            key, field = _TEXT_DELTAS[kind]
            piece = as_str(delta.get(key))
            if piece is not None:
                self._texts.append(block, field, piece)
        elif kind == "signature_delta":
            block["signature"] = delta.get("signature")
        elif kind == "citations_delta":
            list_at(block, "citations").append(delta.get("citation"))

    def _block_stop(self, data: dict[str, Any]) -> None:
        self._finish_block(as_int(data.get("index")))

    def _finish_block(self, index: int) -> None:
        raw = "".join(self._json.pop(index, ()))
        if not raw.strip() or index not in self._blocks:
            return  # no input pieces (a tool without arguments): the start's input stands
        parsed = load(raw)
        # A tool input is always an object; anything else means the pieces are cut.
        self._blocks[index]["input"] = parsed if isinstance(parsed, dict) else raw

    def _delta(self, data: dict[str, Any]) -> None:
        if self._message is not None:
            self._message.update(as_dict(data.get("delta")))
        later = as_dict(data.get("usage"))
        self.usage.update((k, v) for k, v in later.items() if v is not None)

    def _stop(self, data: dict[str, Any]) -> None:
        self.stopped = True

    def _error(self, data: dict[str, Any]) -> None:
        self.error = data

    def message(self) -> dict[str, Any] | None:
        """The Message so far: blocks in index order, a cut tool input kept as its raw
        string, the merged usage."""
        if self._message is None and not self._blocks:
            return None
        for index in list(self._json):
            self._finish_block(index)
        self._texts.flush()
        message = dict(self._message or {"type": "message", "role": "assistant"})
        message["content"] = [self._blocks[i] for i in sorted(self._blocks)]
        if self.usage:
            message["usage"] = dict(self.usage)
        return message


_HANDLERS = {
    "message_start": _MessageStream._start,
    "content_block_start": _MessageStream._block_start,
    "content_block_delta": _MessageStream._block_delta,
    "content_block_stop": _MessageStream._block_stop,
    "message_delta": _MessageStream._delta,
    "message_stop": _MessageStream._stop,
    "error": _MessageStream._error,
}


ANTHROPIC = Anthropic()
