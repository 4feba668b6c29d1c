"""What a guard reads of an OpenAI request and of its answer.

Chat Completions requests are read as `CHAT` (the `messages` history, system and
developer messages among them), Responses requests as `RESPONSES` (instructions, the
`input` items); embeddings and legacy completions have no history and are read whole
(`WHOLE`). An answer's text is read from one chat chunk, one Responses event, or one
whole chat completion or response object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from aiogw.dialects.blocks import OPAQUE_KEYS, ROLE_PLACE, content, definition, text
from aiogw.dialects.reading import as_list
from aiogw.dialects.shape import Shape
from aiogw.dialects.walk import Out, Path, Text, strings

# In a call item of another kind (mcp_call, file_search_call, code_interpreter_call...),
# what came back from the tool, not what the model wrote.
_RESULT_KEYS = frozenset(("output", "outputs", "result", "results", "error"))


def _chat_head(body: dict, out: Out) -> None:
    prediction = body.get("prediction")  # predicted output: text the request carries
    if isinstance(prediction, dict):
        content(prediction.get("content"), ("prediction", "content"), "user", out)


def _chat_message(i: int, m: Any, out: Out) -> None:
    if not isinstance(m, dict):
        return
    content(m.get("content"), ("messages", i, "content"), ROLE_PLACE.get(m.get("role"), "user"), out)
    for j, call in enumerate(as_list(m.get("tool_calls"))):
        if not isinstance(call, dict):
            continue
        fn, custom = call.get("function"), call.get("custom")
        if isinstance(fn, dict):
            text(fn.get("arguments"), ("messages", i, "tool_calls", j, "function", "arguments"), "assistant", out)
        elif isinstance(custom, dict):
            text(custom.get("input"), ("messages", i, "tool_calls", j, "custom", "input"), "assistant", out)
    if "refusal" in m or "function_call" in m:  # an assistant's refusal; the deprecated single call
        text(m.get("refusal"), ("messages", i, "refusal"), "assistant", out)
        fn = m.get("function_call")
        if isinstance(fn, dict):
            text(fn.get("arguments"), ("messages", i, "function_call", "arguments"), "assistant", out)


def _responses_head(body: dict, out: Out) -> None:
    text(body.get("instructions"), ("instructions",), "system", out)
    text(body.get("input"), ("input",), "user", out)
    prompt = body.get("prompt")  # a stored prompt's variables: text put into it
    if isinstance(prompt, dict) and prompt.get("variables") is not None:
        strings(prompt["variables"], ("prompt", "variables"), "user", out, OPAQUE_KEYS)


def _responses_item(i: int, item: Any, out: Out) -> None:
    if not isinstance(item, dict):
        return
    kind = item.get("type", "message")
    here = ("input", i)
    if kind == "message":
        content(item.get("content"), (*here, "content"), ROLE_PLACE.get(item.get("role"), "user"), out)
    elif kind == "function_call" or kind == "custom_tool_call":
        for key in ("arguments", "input"):
            text(item.get(key), (*here, key), "assistant", out)
    elif kind == "function_call_output" or kind == "custom_tool_call_output":
        output = item.get("output")
        if isinstance(output, (str, list)):
            content(output, (*here, "output"), "tool_result", out, 1)
    else:
        _other_item(kind if isinstance(kind, str) else "", item, here, out)


def _other_item(kind: str, item: dict, here: Path, out: Out) -> None:
    """Any other Responses item, read as JSON: reasoning, the outputs of shell, patch,
    computer and MCP calls (tool output), listed or added tools (definitions), and the
    calls of the provider's tools, whose results are tool output too."""
    if kind in ("mcp_list_tools", "additional_tools"):
        place = "tool_definition"
    elif kind.endswith("_output"):
        place = "tool_result"
    else:
        place = "assistant"
    for key, value in item.items():
        if key not in OPAQUE_KEYS:
            where = "tool_result" if place == "assistant" and key in _RESULT_KEYS else place
            strings(value, (*here, key), where, out, OPAQUE_KEYS)


def _tools(body: dict, out: Out) -> None:
    for i, tool in enumerate(as_list(body.get("tools"))):
        if not isinstance(tool, dict):
            continue
        fn, custom = tool.get("function"), tool.get("custom")
        if isinstance(fn, dict):  # Chat Completions: {"type": "function", "function": {...}}
            strings(definition(fn, ("description", "parameters")), ("tools", i, "function"), "tool_definition", out)
        elif isinstance(custom, dict):  # Chat Completions: {"type": "custom", "custom": {...}}
            strings(definition(custom, ("description", "format")), ("tools", i, "custom"), "tool_definition", out)
        else:  # Responses: the tool's fields at the top
            defn = definition(tool, ("description", "parameters", "format", "server_description"))
            strings(defn, ("tools", i), "tool_definition", out)


CHAT = Shape("chat", _chat_head, "messages", _chat_message, _tools)
RESPONSES = Shape("responses", _responses_head, "input", _responses_item, _tools)


def _embeddings(body: dict) -> list[Text]:
    out: Out = []
    strings(body.get("input"), ("input",), "user", out)
    return out


def _completions(body: dict) -> list[Text]:
    out: Out = []
    strings(body.get("prompt"), ("prompt",), "user", out)
    text(body.get("suffix"), ("suffix",), "user", out)
    return out


# Endpoints without a history, read whole: endpoint → its texts.
WHOLE: dict[str, Callable[[dict], list[Text]]] = {"embeddings": _embeddings, "completions": _completions}


def answer_pieces(d: dict) -> Iterator[Any]:
    """The text of one chat chunk or Responses event, or one whole chat completion or
    response; non-strings are dropped by the caller."""
    kind = d.get("type")
    if isinstance(kind, str) and kind.endswith(".delta"):  # a Responses stream event
        yield d.get("delta")
        return
    for item in as_list(d.get("output")):  # a Responses object
        if isinstance(item, dict):
            yield item.get("arguments")
            for part in (*as_list(item.get("content")), *as_list(item.get("summary"))):  # text, reasoning
                if isinstance(part, dict):
                    yield part.get("text")
    for choice in as_list(d.get("choices")):
        if not isinstance(choice, dict):
            continue
        for key in ("delta", "message"):
            m = choice.get(key)
            if isinstance(m, dict):
                yield m.get("content")
                for call in as_list(m.get("tool_calls")):
                    fn = call.get("function") if isinstance(call, dict) else None
                    if isinstance(fn, dict):
                        yield fn.get("arguments")
