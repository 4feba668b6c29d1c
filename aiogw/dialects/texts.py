"""The texts of a request, by the place they come from, for the guards.

Places: `system` (system prompts, developer messages), `user`, `assistant` (earlier
answers, and the tool calls the model made), `tool_result` (tool output: the untrusted
input), `tool_definition` (tool descriptions and schemas). Each text carries its path
in the parsed body, so a redaction can be written back at exactly that string.
Images, documents and other binary parts are skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

Path = tuple[str | int, ...]


class Text(NamedTuple):
    place: str
    path: Path
    text: str


# The walk appends to one list instead of nesting generators: an agent's body holds
# hundreds of texts (every string of every tool schema among them), and this runs on
# every guarded request.
Out = list[Text]

_BINARY_BLOCKS = frozenset(("image", "document", "image_url", "input_image", "input_file", "input_audio", "file"))


def _strings(value: Any, path: Path, place: str, out: Out) -> None:
    """Every string inside a JSON value (tool inputs, function results, schemas)."""
    if isinstance(value, str):
        if value and not _looks_binary(value):
            out.append(Text(place, path, value))
    elif isinstance(value, dict):
        if value.get("type") in _BINARY_BLOCKS or "inlineData" in value or "fileData" in value:
            return
        for key, item in value.items():
            if isinstance(item, str):  # the common case, without the call
                if item and not _looks_binary(item):
                    out.append(Text(place, (*path, key), item))
            elif isinstance(item, (dict, list)):
                _strings(item, (*path, key), place, out)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _strings(item, (*path, i), place, out)


def _looks_binary(s: str) -> bool:
    """A long run without spaces that is all base64: an inline image or file, not text."""
    if len(s) < 2048 or " " in s[:2048]:
        return False
    head = s[:2048]
    return head.startswith("data:") or head.strip("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\n") == ""


def _content(content: Any, path: Path, place: str, out: Out) -> None:
    """A message's content: a string, or a list of blocks/parts with text."""
    if isinstance(content, str):
        if content:
            out.append(Text(place, path, content))
        return
    if not isinstance(content, list):
        return
    for i, block in enumerate(content):
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":  # the common case first
            if isinstance(block.get("text"), str):
                out.append(Text(place, (*path, i, "text"), block["text"]))
        elif kind == "tool_result":
            _content(block.get("content"), (*path, i, "content"), "tool_result", out)
        elif kind in _BINARY_BLOCKS:
            continue
        elif kind in ("tool_use", "server_tool_use"):
            _strings(block.get("input"), (*path, i, "input"), "assistant", out)
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            out.append(Text(place, (*path, i, "thinking"), block["thinking"]))
        elif isinstance(block.get("text"), str):
            out.append(Text(place, (*path, i, "text"), block["text"]))


_ROLE_PLACE = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "model": "assistant",
               "tool": "tool_result", "function": "tool_result"}


# Each dialect's request in three parts, so a guard can keep what it read of a
# conversation's history and read only the new turns: `head` (system prompt,
# instructions), the history list at `history` (one call of `item` per entry, its index
# in the path), and `tail` (tool definitions, at the body's `tail` key).


def _anthropic_head(body: dict, out: Out) -> None:
    _content(body.get("system"), ("system",), "system", out)


def _message_item(i: int, m: Any, out: Out) -> None:
    """An Anthropic or OpenAI chat message."""
    if not isinstance(m, dict):
        return
    _content(m.get("content"), ("messages", i, "content"), _ROLE_PLACE.get(m.get("role"), "user"), out)
    for j, call in enumerate(_list(m.get("tool_calls"))):  # OpenAI chat's tool calls
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
            out.append(Text("assistant", ("messages", i, "tool_calls", j, "function", "arguments"), fn["arguments"]))


def _anthropic_tail(body: dict, out: Out) -> None:
    for i, tool in enumerate(_list(body.get("tools"))):
        if isinstance(tool, dict):
            _strings(_definition(tool, ("description", "input_schema")), ("tools", i), "tool_definition", out)


def _no_head(body: dict, out: Out) -> None:
    return


def _responses_head(body: dict, out: Out) -> None:
    if isinstance(body.get("instructions"), str) and body["instructions"]:
        out.append(Text("system", ("instructions",), body["instructions"]))
    if isinstance(body.get("input"), str) and body["input"]:
        out.append(Text("user", ("input",), body["input"]))


def _responses_item(i: int, item: Any, out: Out) -> None:
    if not isinstance(item, dict):
        return
    kind = item.get("type", "message")
    here = ("input", i)
    if kind == "function_call_output" or kind == "custom_tool_call_output":
        output = item.get("output")
        if isinstance(output, (str, list)):
            _content(output, (*here, "output"), "tool_result", out)
    elif kind in ("function_call", "custom_tool_call"):
        for key in ("arguments", "input"):
            if isinstance(item.get(key), str):
                out.append(Text("assistant", (*here, key), item[key]))
    elif kind == "message":
        _content(item.get("content"), (*here, "content"), _ROLE_PLACE.get(item.get("role"), "user"), out)


def _openai_tail(body: dict, out: Out) -> None:
    for i, tool in enumerate(_list(body.get("tools"))):
        if not isinstance(tool, dict):
            continue
        fn = tool.get("function")
        if isinstance(fn, dict):  # Chat Completions: {"type": "function", "function": {...}}
            _strings(_definition(fn, ("description", "parameters")), ("tools", i, "function"), "tool_definition", out)
        else:  # Responses: the function's fields at the top
            _strings(_definition(tool, ("description", "parameters")), ("tools", i), "tool_definition", out)


def _gemini_head(body: dict, out: Out) -> None:
    for key in ("systemInstruction", "system_instruction"):
        si = body.get(key)
        if isinstance(si, dict):
            _parts(si.get("parts"), (key, "parts"), "system", out)
        elif isinstance(si, str):
            out.append(Text("system", (key,), si))


def _gemini_item(i: int, content: Any, out: Out) -> None:
    if isinstance(content, dict):
        place = _ROLE_PLACE.get(content.get("role", "user"), "user")
        _parts(content.get("parts"), ("contents", i, "parts"), place, out)


def _gemini_tail(body: dict, out: Out) -> None:
    for i, tool in enumerate(_list(body.get("tools"))):
        if not isinstance(tool, dict):
            continue
        for key in ("functionDeclarations", "function_declarations"):
            for j, decl in enumerate(_list(tool.get(key))):
                if isinstance(decl, dict):
                    defn = _definition(decl, ("description", "parameters", "parametersJsonSchema"))
                    _strings(defn, ("tools", i, key, j), "tool_definition", out)


def _parts(parts: Any, path: Path, place: str, out: Out) -> None:
    for i, part in enumerate(_list(parts)):
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("text"), str):
            out.append(Text(place, (*path, i, "text"), part["text"]))
        elif isinstance(part.get("functionResponse"), dict):
            _strings(part["functionResponse"].get("response"), (*path, i, "functionResponse", "response"),
                     "tool_result", out)
        elif isinstance(part.get("functionCall"), dict):
            _strings(part["functionCall"].get("args"), (*path, i, "functionCall", "args"), "assistant", out)


def _definition(tool: dict, keys: tuple[str, ...]) -> dict:
    """The parts of a tool definition a model reads as instructions."""
    return {k: tool[k] for k in keys if k in tool}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


@dataclass(frozen=True, slots=True)
class Shape:
    head: Callable[[dict, Out], None]
    history: str
    item: Callable[[int, Any, Out], None]
    tail: Callable[[dict, Out], None]
    tail_key: str = "tools"


_ANTHROPIC = Shape(_anthropic_head, "messages", _message_item, _anthropic_tail)
_CHAT = Shape(_no_head, "messages", _message_item, _openai_tail)
_RESPONSES = Shape(_responses_head, "input", _responses_item, _openai_tail)
_GEMINI = Shape(_gemini_head, "contents", _gemini_item, _gemini_tail)


def shape(dialect: str, endpoint: str, body: dict) -> Shape | None:
    """How to read this request in parts; None when it has no such layout (a Gemini
    countTokens that wraps a whole generateContent request: read with `texts`)."""
    if dialect == "anthropic":
        return _ANTHROPIC
    if dialect == "openai":
        return _RESPONSES if endpoint in ("responses", "input_tokens") else _CHAT
    if dialect == "gemini":
        return None if endpoint == "count_tokens" and isinstance(body.get("generateContentRequest"), dict) else _GEMINI
    return None


def history(s: Shape, body: dict) -> list:
    return _list(body.get(s.history))


def same_prefix(old: list[Any], new: list[Any]) -> int:
    """How many leading history entries `new` shares with `old`: one comparison in C
    for the usual turn (the old ones resent, new ones after; the last old one may have
    changed, as Claude Code moves its cache marker every turn), entry by entry otherwise."""
    n = min(len(old), len(new))
    if n and old[n - 1] != new[n - 1]:
        n -= 1
    if old[:n] == new[:n]:
        return n
    i = 0
    while i < n and old[i] == new[i]:
        i += 1
    return i


def texts(dialect: str, endpoint: str, body: dict) -> list[Text]:
    """Every text of a request, in order: head, history, tail."""
    out: Out = []
    s = shape(dialect, endpoint, body)
    if s is None:
        if dialect == "gemini":  # countTokens around a generateContent request
            inner = body["generateContentRequest"]
            out.extend(Text(t.place, ("generateContentRequest", *t.path), t.text)
                       for t in texts("gemini", "generate", inner))
            if "contents" in body:  # and the outer request's own parts, if it has them too
                out.extend(texts("gemini", "generate", {k: v for k, v in body.items() if k != "generateContentRequest"}))
        return out
    s.head(body, out)
    item = s.item
    for i, value in enumerate(history(s, body)):
        item(i, value, out)
    s.tail(body, out)
    return out


# --- the model's answer -----------------------------------------------------------------


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
    return orjson.dumps(value).decode() if value is not None else None


_ANSWER_READERS: dict[str, Callable[[dict], Iterator[Any]]] = {
    "anthropic": _anthropic_answer,
    "openai": _openai_answer,
    "gemini": _gemini_answer,
}


def path_text(path: Iterable[str | int]) -> str:
    """A text's place in the body as people write it: messages[2].content[0].content."""
    out = ""
    for key in path:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else key)
    return out
