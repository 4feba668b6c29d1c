"""The texts of a request, by the place they come from, for the guards.

Places: `system` (system prompts, developer messages), `user`, `assistant` (earlier
answers, and the tool calls the model made), `tool_result` (tool output and content
fetched from elsewhere: the untrusted input), `tool_definition` (tool descriptions and
schemas). Each text carries its path in the parsed body, so a redaction can be written
back at exactly that string.

Every block a provider defines that carries text is read: text, thinking, documents
with a text or content source, search results, tool inputs and results, the results
of a provider's own tools (web fetch, code execution), refusals, Gemini's code parts.
A block of a type this module does not know is read whole, as JSON. What is skipped
is what the provider itself takes as binary or by reference (images, audio, files,
PDF documents, encrypted reasoning); inside free-form JSON (tool inputs, function
results, schemas) a string is skipped only when it is, whole, base64 data (`walk.binary`).

Walks are bounded: free-form JSON is walked with a stack of its own, not by
recursion, and blocks are nested at most `_MAX_BLOCK_DEPTH` deep before the rest is
walked as JSON (orjson parses bodies nested 1,024 deep).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiogw.dialects.walk import Out, Path, Text, strings

# Blocks whose payload the provider decodes as binary or fetches by reference (images,
# audio, files; an encrypted thinking block; a file put in the code container): no text
# in them reaches the model as text. Documents are read (a text or content source is
# text; a PDF source is skipped below).
_OPAQUE_BLOCKS = frozenset(("image", "image_url", "input_image", "input_file", "input_audio", "file",
                            "redacted_thinking", "container_upload"))
# Keys whose values are ids, signatures, ciphertext or protocol words, never text a
# model reads: skipped when a provider's block is walked as JSON (not in tool inputs or
# results, whose keys are the tool's own).
_OPAQUE_KEYS = frozenset(("type", "id", "call_id", "tool_use_id", "file_id", "approval_request_id", "signature",
                          "encrypted_content", "encrypted_stdout", "encrypted_index", "fingerprint", "cache_control",
                          "media_type", "status"))
# In a call item of another kind (mcp_call, file_search_call, code_interpreter_call...),
# what came back from the tool, not what the model wrote.
_RESULT_KEYS = frozenset(("output", "outputs", "result", "results", "error"))
# Blocks within blocks (a document in a tool result, its content source's blocks) are
# read as blocks this deep; deeper, as JSON.
_MAX_BLOCK_DEPTH = 3

def _text(value: Any, path: Path, place: str, out: Out) -> None:
    if isinstance(value, str) and value:
        out.append(Text(place, path, value))


def _content(content: Any, path: Path, place: str, out: Out, depth: int = 0) -> None:
    """A message's content: a string, or a list of blocks/parts with text. `depth`:
    how many blocks this content is inside (a tool result's, a document's)."""
    if isinstance(content, str):
        if content:
            out.append(Text(place, path, content))
        return
    if not isinstance(content, list):
        return
    if depth >= _MAX_BLOCK_DEPTH:
        strings(content, path, place, out, _OPAQUE_KEYS)
        return
    for i, block in enumerate(content):
        if not isinstance(block, dict):  # a bare string, or JSON of no block's shape
            strings(block, (*path, i), place, out, _OPAQUE_KEYS)
            continue
        kind = block.get("type")
        if kind == "text":  # the common case first
            if isinstance(block.get("text"), str):
                out.append(Text(place, (*path, i, "text"), block["text"]))
        elif kind == "tool_result":
            _content(block.get("content"), (*path, i, "content"), "tool_result", out, depth + 1)
        elif kind in _OPAQUE_BLOCKS:
            continue
        elif kind in ("tool_use", "server_tool_use", "mcp_tool_use"):
            strings(block.get("input"), (*path, i, "input"), "assistant", out)
        elif kind == "thinking":
            _text(block.get("thinking"), (*path, i, "thinking"), place, out)
        elif kind == "document":
            _document(block, (*path, i), place, out, depth)
        elif kind == "search_result":
            # Retrieved content, wherever the agent puts it: untrusted, as a tool's output.
            _text(block.get("title"), (*path, i, "title"), "tool_result", out)
            _text(block.get("source"), (*path, i, "source"), "tool_result", out)
            _content(block.get("content"), (*path, i, "content"), "tool_result", out, depth + 1)
        else:
            # Any other block, read as JSON. The results of the provider's own tools
            # (web search and fetch, code execution, MCP) are tool output.
            tool_output = isinstance(kind, str) and kind.endswith("tool_result")
            strings(block, (*path, i), "tool_result" if tool_output else place, out, _OPAQUE_KEYS)


def _document(block: dict, path: Path, place: str, out: Out, depth: int) -> None:
    """A document block: its title and context, and a text or content source (a PDF,
    base64 or by URL or file id, is binary)."""
    _text(block.get("title"), (*path, "title"), place, out)
    _text(block.get("context"), (*path, "context"), place, out)
    source = block.get("source")
    if not isinstance(source, dict):
        return
    kind = source.get("type")
    if kind == "text":
        _text(source.get("data"), (*path, "source", "data"), place, out)
    elif kind == "content":
        _content(source.get("content"), (*path, "source", "content"), place, out, depth + 1)


_ROLE_PLACE = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "model": "assistant",
               "tool": "tool_result", "function": "tool_result"}


# Each dialect's request in three parts, so a guard can keep what it read of a
# conversation's history and read only the new turns: `head` (system prompt,
# instructions), the history list at `history` (one call of `item` per entry, its index
# in the path), and `tail` (tool definitions, at the body's `tail` key).


def _anthropic_head(body: dict, out: Out) -> None:
    _content(body.get("system"), ("system",), "system", out)


def _message_item(i: int, m: Any, out: Out) -> None:
    """An Anthropic message."""
    if isinstance(m, dict):
        _content(m.get("content"), ("messages", i, "content"), _ROLE_PLACE.get(m.get("role"), "user"), out)


def _chat_item(i: int, m: Any, out: Out) -> None:
    """An OpenAI chat message."""
    if not isinstance(m, dict):
        return
    _content(m.get("content"), ("messages", i, "content"), _ROLE_PLACE.get(m.get("role"), "user"), out)
    for j, call in enumerate(_list(m.get("tool_calls"))):  # OpenAI chat's tool calls
        if not isinstance(call, dict):
            continue
        fn, custom = call.get("function"), call.get("custom")
        if isinstance(fn, dict):
            _text(fn.get("arguments"), ("messages", i, "tool_calls", j, "function", "arguments"), "assistant", out)
        elif isinstance(custom, dict):
            _text(custom.get("input"), ("messages", i, "tool_calls", j, "custom", "input"), "assistant", out)
    if "refusal" in m or "function_call" in m:  # an assistant's refusal; the deprecated single call
        _text(m.get("refusal"), ("messages", i, "refusal"), "assistant", out)
        fn = m.get("function_call")
        if isinstance(fn, dict):
            _text(fn.get("arguments"), ("messages", i, "function_call", "arguments"), "assistant", out)


def _anthropic_tail(body: dict, out: Out) -> None:
    for i, tool in enumerate(_list(body.get("tools"))):
        if isinstance(tool, dict):
            defn = _definition(tool, ("description", "input_schema", "input_examples"))
            strings(defn, ("tools", i), "tool_definition", out)


def _chat_head(body: dict, out: Out) -> None:
    prediction = body.get("prediction")  # predicted output: text the request carries
    if isinstance(prediction, dict):
        _content(prediction.get("content"), ("prediction", "content"), "user", out)


def _responses_head(body: dict, out: Out) -> None:
    _text(body.get("instructions"), ("instructions",), "system", out)
    _text(body.get("input"), ("input",), "user", out)
    prompt = body.get("prompt")  # a stored prompt's variables: text put into it
    if isinstance(prompt, dict) and prompt.get("variables") is not None:
        strings(prompt["variables"], ("prompt", "variables"), "user", out, _OPAQUE_KEYS)


def _responses_item(i: int, item: Any, out: Out) -> None:
    if not isinstance(item, dict):
        return
    kind = item.get("type", "message")
    here = ("input", i)
    if kind == "message":
        _content(item.get("content"), (*here, "content"), _ROLE_PLACE.get(item.get("role"), "user"), out)
    elif kind == "function_call" or kind == "custom_tool_call":
        for key in ("arguments", "input"):
            _text(item.get(key), (*here, key), "assistant", out)
    elif kind == "function_call_output" or kind == "custom_tool_call_output":
        output = item.get("output")
        if isinstance(output, (str, list)):
            _content(output, (*here, "output"), "tool_result", out, 1)
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
        if key not in _OPAQUE_KEYS:
            where = "tool_result" if place == "assistant" and key in _RESULT_KEYS else place
            strings(value, (*here, key), where, out, _OPAQUE_KEYS)


def _openai_tail(body: dict, out: Out) -> None:
    for i, tool in enumerate(_list(body.get("tools"))):
        if not isinstance(tool, dict):
            continue
        fn, custom = tool.get("function"), tool.get("custom")
        if isinstance(fn, dict):  # Chat Completions: {"type": "function", "function": {...}}
            strings(_definition(fn, ("description", "parameters")), ("tools", i, "function"), "tool_definition", out)
        elif isinstance(custom, dict):  # Chat Completions: {"type": "custom", "custom": {...}}
            strings(_definition(custom, ("description", "format")), ("tools", i, "custom"), "tool_definition", out)
        else:  # Responses: the tool's fields at the top
            defn = _definition(tool, ("description", "parameters", "format", "server_description"))
            strings(defn, ("tools", i), "tool_definition", out)


# The Gemini readers take a `base`: countTokens may wrap a whole generateContent request.


def _gemini_head(body: dict, out: Out, base: Path = ()) -> None:
    for key in ("systemInstruction", "system_instruction"):
        si = body.get(key)
        if isinstance(si, dict):
            _parts(si.get("parts"), (*base, key, "parts"), "system", out)
        elif isinstance(si, str):
            out.append(Text("system", (*base, key), si))


def _gemini_item(i: int, content: Any, out: Out, base: Path = ()) -> None:
    if isinstance(content, dict):
        place = _ROLE_PLACE.get(content.get("role", "user"), "user")
        _parts(content.get("parts"), (*base, "contents", i, "parts"), place, out)


_DECLARATION_KEYS = ("description", "parameters", "parametersJsonSchema", "parameters_json_schema", "response",
                     "responseJsonSchema", "response_json_schema")


def _gemini_tail(body: dict, out: Out, base: Path = ()) -> None:
    for i, tool in enumerate(_list(body.get("tools"))):
        if not isinstance(tool, dict):
            continue
        for key in ("functionDeclarations", "function_declarations"):
            for j, decl in enumerate(_list(tool.get(key))):
                if isinstance(decl, dict):
                    strings(_definition(decl, _DECLARATION_KEYS), (*base, "tools", i, key, j), "tool_definition", out)


# A Gemini part's data fields that hold text, under either spelling Google's JSON parser
# takes: the field, the key within it, and the place (None: the content's own).
_PART_FIELDS: dict[str, tuple[str, str | None]] = {
    "functionCall": ("args", "assistant"), "function_call": ("args", "assistant"),
    "functionResponse": ("response", "tool_result"), "function_response": ("response", "tool_result"),
    "executableCode": ("code", None), "executable_code": ("code", None),
    "codeExecutionResult": ("output", "tool_result"), "code_execution_result": ("output", "tool_result"),
}


def _parts(parts: Any, path: Path, place: str, out: Out) -> None:
    for i, part in enumerate(_list(parts)):
        if not isinstance(part, dict):
            continue
        text = part.get("text")
        if isinstance(text, str):
            out.append(Text(place, (*path, i, "text"), text))
            if len(part) == 1:  # the common case: a text part and nothing else
                continue
        for key, value in part.items():
            field = _PART_FIELDS.get(key)
            if field is not None and isinstance(value, dict):
                name, where = field
                strings(value.get(name), (*path, i, key, name), where or place, out)


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
_CHAT = Shape(_chat_head, "messages", _chat_item, _openai_tail)
_RESPONSES = Shape(_responses_head, "input", _responses_item, _openai_tail)
_GEMINI = Shape(_gemini_head, "contents", _gemini_item, _gemini_tail)


def shape(dialect: str, endpoint: str, body: dict) -> Shape | None:
    """How to read this request in parts; None when it has no such layout (a Gemini
    countTokens that wraps a whole generateContent request, embeddings, legacy
    completions: read with `texts`)."""
    if dialect == "anthropic":
        return _ANTHROPIC
    if dialect == "openai":
        if endpoint in ("responses", "input_tokens"):
            return _RESPONSES
        return None if endpoint in _OPENAI_OTHER else _CHAT
    if dialect == "gemini":
        if endpoint == "embed" or (endpoint == "count_tokens" and isinstance(body.get("generateContentRequest"), dict)):
            return None
        return _GEMINI
    return None


def history(s: Shape, body: dict) -> list:
    return _list(body.get(s.history))


def same_prefix(old: list[Any], new: list[Any]) -> int:
    """How many leading history entries `new` shares with `old`: one comparison in C
    for the usual turn (the old ones resent, new ones after; the last old one may have
    changed, as Claude Code moves its cache marker every turn), entry by entry otherwise.
    Entries nested past the interpreter's recursion limit compare as different."""
    n = min(len(old), len(new))
    try:
        if n and old[n - 1] != new[n - 1]:
            n -= 1
        if old[:n] == new[:n]:
            return n
    except RecursionError:  # counted entry by entry below
        pass
    i = 0
    while i < n and equal(old[i], new[i]):
        i += 1
    return i


def equal(a: Any, b: Any) -> bool:
    """`a == b`, where values nested past the interpreter's recursion limit (a JSON
    body may nest 1,024 deep) compare as different instead of raising."""
    try:
        return bool(a == b)
    except RecursionError:
        return False


def _gemini_whole(body: dict, out: Out, base: Path = ()) -> None:
    _gemini_head(body, out, base)
    for i, content in enumerate(_list(body.get("contents"))):
        _gemini_item(i, content, out, base)
    _gemini_tail(body, out, base)


def _openai_embeddings(body: dict, out: Out) -> None:
    strings(body.get("input"), ("input",), "user", out)


def _openai_completions(body: dict, out: Out) -> None:
    strings(body.get("prompt"), ("prompt",), "user", out)
    _text(body.get("suffix"), ("suffix",), "user", out)


def _gemini_embed(body: dict, out: Out) -> None:
    content = body.get("content")  # embedContent; batchEmbedContents has requests[].content
    if isinstance(content, dict):
        _parts(content.get("parts"), ("content", "parts"), "user", out)
    for i, request in enumerate(_list(body.get("requests"))):
        inner = request.get("content") if isinstance(request, dict) else None
        if isinstance(inner, dict):
            _parts(inner.get("parts"), ("requests", i, "content", "parts"), "user", out)


_OPENAI_OTHER: dict[str, Callable[[dict, Out], None]] = {
    "embeddings": _openai_embeddings,
    "completions": _openai_completions,
}


def texts(dialect: str, endpoint: str, body: dict) -> list[Text]:
    """Every text of a request, in order: head, history, tail."""
    out: Out = []
    s = shape(dialect, endpoint, body)
    if s is None:
        if dialect == "openai":
            _OPENAI_OTHER[endpoint](body, out)
        elif dialect == "gemini" and endpoint == "embed":
            _gemini_embed(body, out)
        elif dialect == "gemini":  # countTokens around a generateContent request
            _gemini_whole(body["generateContentRequest"], out, ("generateContentRequest",))
            if "contents" in body:  # and the outer request's own parts, if it has them too
                _gemini_whole(body, out)
        return out
    s.head(body, out)
    item = s.item
    for i, value in enumerate(history(s, body)):
        item(i, value, out)
    s.tail(body, out)
    return out
