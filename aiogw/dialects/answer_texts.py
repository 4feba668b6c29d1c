"""The text a model produced, read from one stream event or one whole response (parsed
JSON): text deltas, tool-call arguments, thinking. The answer guard scans it as it passes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import orjson

from aiogw.dialects.walk import Out, strings


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def answer_texts(dialect: str, data: Any) -> list[str]:
    """The text a model produced in one stream event or one whole response (parsed JSON):
    text deltas, tool-call arguments, thinking. Used to scan answers as they pass."""
    if not isinstance(data, dict):
        return []
    reader = _ANSWER_READERS.get(dialect)
    return [t for t in reader(data) if isinstance(t, str) and t] if reader is not None else []


def _anthropic_answer(d: dict) -> Iterator[Any]:
    delta = d.get("delta")
    if isinstance(delta, dict):  # content_block_delta
        yield delta.get("text") or delta.get("partial_json") or delta.get("thinking")
    block = d.get("content_block")
    if isinstance(block, dict):
        yield block.get("text")
    for block in _list(d.get("content")):  # a whole Message
        if isinstance(block, dict):
            yield block.get("text")
            yield block.get("thinking")
            if block.get("type") == "tool_use":
                yield _dumps(block.get("input"))


def _openai_answer(d: dict) -> Iterator[Any]:
    kind = d.get("type")
    if isinstance(kind, str) and kind.endswith(".delta"):  # a Responses stream event
        yield d.get("delta")
        return
    for item in _list(d.get("output")):  # a Responses object
        if isinstance(item, dict):
            yield item.get("arguments")
            for part in (*_list(item.get("content")), *_list(item.get("summary"))):  # text, reasoning
                if isinstance(part, dict):
                    yield part.get("text")
    for choice in _list(d.get("choices")):
        if not isinstance(choice, dict):
            continue
        for key in ("delta", "message"):
            m = choice.get(key)
            if isinstance(m, dict):
                yield m.get("content")
                for call in _list(m.get("tool_calls")):
                    fn = call.get("function") if isinstance(call, dict) else None
                    if isinstance(fn, dict):
                        yield fn.get("arguments")


def _gemini_answer(d: dict) -> Iterator[Any]:
    for candidate in _list(d.get("candidates")):
        content = candidate.get("content") if isinstance(candidate, dict) else None
        for part in _list(content.get("parts") if isinstance(content, dict) else None):
            if isinstance(part, dict):
                yield part.get("text")
                if isinstance(part.get("functionCall"), dict):
                    yield _dumps(part["functionCall"].get("args"))


def _dumps(value: Any) -> str | None:
    if value is None:
        return None
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:  # nested past what orjson writes (254 levels): its strings
        out: Out = []
        strings(value, (), "response", out)
        return "\n".join(t.text for t in out)


_ANSWER_READERS: dict[str, Callable[[dict], Iterator[Any]]] = {
    "anthropic": _anthropic_answer,
    "openai": _openai_answer,
    "gemini": _gemini_answer,
}
