"""OpenAI Chat Completions streams (and legacy Completions), folded back into the
non-streaming `chat.completion` shape.

Chunks carry per-choice deltas: string fields arrive in pieces to be joined (content,
refusal, and the reasoning text some compatible servers add), tool calls arrive by
index with their `arguments` in pieces. Usage comes only in a last chunk with empty
`choices`, and only when the request asked for it; the stream ends with `data: [DONE]`.
"""

from __future__ import annotations

from typing import Any

import orjson

from aiogw.dialects.reading import (
    BROKEN,
    DONE,
    Folded,
    Texts,
    as_dict,
    as_int,
    as_list,
    as_str,
    dict_at,
    list_at,
    sse_data,
)
from aiogw.sse import plain_events

# Chunk fields that are framing, not part of the response: `obfuscation` is random
# padding OpenAI adds to stream chunks against length side channels.
_CHUNK_ONLY = frozenset({"choices", "usage", "obfuscation", "object"})
_OBJECT = {"chat.completion.chunk": "chat.completion"}


def is_error_envelope(data: dict[str, Any]) -> bool:
    """OpenAI's `{"error": {...}}` (also sent as a stream chunk), or an OpenAI-compatible
    server's `{"object": "error", ...}`."""
    return (isinstance(data.get("error"), dict) and "choices" not in data) or data.get("object") == "error"


def chat_usage(body: bytes) -> dict[str, Any] | None:
    """The usage `fold_chat` finds (the last chunk's `usage` object), parsing only the
    chunks that mention one; None unless the stream is plain SSE."""
    plain = plain_events(body)
    if plain is None:
        return None
    found: dict[str, Any] = {}
    for _, data in plain:
        if b'"usage"' not in data:
            continue
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            continue
        if isinstance(chunk, dict) and not is_error_envelope(chunk) and isinstance(chunk.get("usage"), dict):
            found = chunk["usage"]
    return found


def fold_chat(body: bytes) -> Folded:
    """A whole chat stream (decoded bytes) as one chat.completion."""
    events, _ = sse_data(body)
    stream = _ChatStream()
    for _, data in events:
        stream.chunk(data)
    return Folded(stream.message(), stream.usage, stream.done and not stream.broken, stream.error)


class _Choice:
    """One choice being reassembled."""

    __slots__ = ("calls", "fields", "message", "texts")

    def __init__(self, index: int, texts: Texts) -> None:
        self.texts = texts  # the stream's, flushed before `result`
        self.fields: dict[str, Any] = {"index": index}
        self.message: dict[str, Any] | None = None  # chat choices only
        self.calls: dict[int, dict[str, Any]] = {}

    def add(self, choice: dict[str, Any]) -> None:
        delta = choice.get("delta")
        if isinstance(delta, dict):
            self._delta(self.message if self.message is not None else self._new_message(), delta)
        text = as_str(choice.get("text"))  # legacy completions
        if text is not None:
            self.texts.append(self.fields, "text", text)
        self._logprobs(choice.get("logprobs"))
        if choice.get("finish_reason") is not None or "finish_reason" not in self.fields:
            self.fields["finish_reason"] = choice.get("finish_reason")

    def _new_message(self) -> dict[str, Any]:
        self.message = {}
        return self.message

    def _delta(self, message: dict[str, Any], delta: dict[str, Any]) -> None:
        for key, value in delta.items():
            if key == "tool_calls":
                self._tool_calls(as_list(value))
            elif key == "function_call":  # the deprecated single call
                _join_into(dict_at(message, "function_call"), as_dict(value), self.texts)
            elif key == "role" or not isinstance(value, str | list):
                if value is not None or key not in message:
                    message[key] = value
            elif isinstance(value, str):
                self.texts.append(message, key, value)
            else:
                list_at(message, key).extend(value)  # e.g. annotations

    def _tool_calls(self, calls: list[Any]) -> None:
        for call in map(as_dict, calls):
            _join_into(self.calls.setdefault(as_int(call.get("index")), {}), call, self.texts)

    def _logprobs(self, logprobs: Any) -> None:
        if not isinstance(logprobs, dict):
            self.fields.setdefault("logprobs", None)
            return
        merged = self.fields.get("logprobs")
        if not isinstance(merged, dict):
            merged = self.fields["logprobs"] = {}
        for key, value in logprobs.items():
            if isinstance(value, list):
                list_at(merged, key).extend(value)
            else:
                merged[key] = value

    def result(self) -> dict[str, Any]:
        out = dict(self.fields)
        if self.message is not None:
            message = {"role": "assistant", "content": None, **self.message}
            if self.calls:
                message["tool_calls"] = [self.calls[i] for i in sorted(self.calls)]
            out["message"] = message
        return out


def _join_into(target: dict[str, Any], piece: dict[str, Any], texts: Texts) -> None:
    """Merge a tool-call piece: `function.arguments` strings are joined, other fields
    (id, type, name) set when given; the chunk-only `index` is dropped."""
    for key, value in piece.items():
        if key == "index":
            continue
        if key == "function" and isinstance(value, dict):
            _join_into(dict_at(target, "function"), value, texts)
        elif key == "arguments" and isinstance(value, str):
            texts.append(target, key, value)
        elif value is not None or key not in target:
            target[key] = value


class _ChatStream:
    __slots__ = ("_base", "_choices", "_texts", "broken", "done", "error", "usage")

    def __init__(self) -> None:
        self._texts = Texts()
        self._base: dict[str, Any] = {}
        self._choices: dict[int, _Choice] = {}
        self.usage: dict[str, Any] = {}
        self.done = False
        self.broken = False
        self.error: dict[str, Any] | None = None

    def chunk(self, data: Any) -> None:
        if data is DONE:
            self.done = True
            return
        if data is BROKEN:
            self.broken = True
            return
        data = as_dict(data)
        if is_error_envelope(data):
            self.error = data  # OpenAI sends a mid-stream failure as a data chunk
            return
        if not self._base:
            self._base["object"] = _OBJECT.get(as_str(data.get("object")) or "", data.get("object"))
        self._base.update((k, v) for k, v in data.items() if k not in _CHUNK_ONLY and v is not None)
        if isinstance(data.get("usage"), dict):
            self.usage = data["usage"]
        for choice in map(as_dict, as_list(data.get("choices"))):
            index = as_int(choice.get("index"))
            found = self._choices.get(index)
            if found is None:
                found = self._choices[index] = _Choice(index, self._texts)
            found.add(choice)

    def message(self) -> dict[str, Any] | None:
        if not self._base and not self._choices:
            return None
        self._texts.flush()
        message = dict(self._base)
        message["choices"] = [self._choices[i].result() for i in sorted(self._choices)]
        if self.usage:
            message["usage"] = self.usage
        return message
