"""What a guard reads of an Anthropic Messages request and of its answer.

A request (messages and count_tokens alike) is read as `MESSAGES`: the system prompt,
the `messages` history, the tool definitions. An answer's text is read from one stream
event or one whole Message: text and thinking deltas, tool input pieces, tool inputs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from aiogw.dialects.blocks import ROLE_PLACE, content, definition
from aiogw.dialects.reading import as_list
from aiogw.dialects.shape import Shape
from aiogw.dialects.walk import Out, json_text, strings


def _system(body: dict, out: Out) -> None:
    content(body.get("system"), ("system",), "system", out)


def _message(i: int, m: Any, out: Out) -> None:
    if isinstance(m, dict):
        content(m.get("content"), ("messages", i, "content"), ROLE_PLACE.get(m.get("role"), "user"), out)


def _tools(body: dict, out: Out) -> None:
    for i, tool in enumerate(as_list(body.get("tools"))):
        if isinstance(tool, dict):
            defn = definition(tool, ("description", "input_schema", "input_examples"))
            strings(defn, ("tools", i), "tool_definition", out)


MESSAGES = Shape("anthropic", _system, "messages", _message, _tools)


def answer_pieces(d: dict) -> Iterator[Any]:
    """The text of one stream event or one whole Message; non-strings are dropped by
    the caller."""
    delta = d.get("delta")
    if isinstance(delta, dict):  # content_block_delta
        yield delta.get("text") or delta.get("partial_json") or delta.get("thinking")
    block = d.get("content_block")
    if isinstance(block, dict):
        yield block.get("text")
    for block in as_list(d.get("content")):  # a whole Message
        if isinstance(block, dict):
            yield block.get("text")
            yield block.get("thinking")
            if block.get("type") == "tool_use":
                yield json_text(block.get("input"))
