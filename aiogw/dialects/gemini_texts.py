"""What a guard reads of a Gemini request and of its answer.

generateContent, streamGenerateContent and countTokens requests are read as `GENERATE`
(the system instruction, the `contents` history, the function declarations); a
countTokens that wraps a whole generateContent request (`WRAPPED`) and the embedding
calls are read whole. Parts are read under either spelling Google's JSON parser takes
(lowerCamel and proto field names). An answer's text is read from one stream chunk or
one whole response: text parts and function call arguments.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from aiogw.dialects.blocks import ROLE_PLACE, definition
from aiogw.dialects.reading import as_list
from aiogw.dialects.shape import Shape
from aiogw.dialects.walk import Out, Path, Text, json_text, strings

# countTokens may wrap a whole generate request instead of giving `contents`.
WRAPPED = "generateContentRequest"

# The readers take a `base`: the path of a wrapped request inside its countTokens body.


def _system(body: dict, out: Out, base: Path = ()) -> None:
    for key in ("systemInstruction", "system_instruction"):
        si = body.get(key)
        if isinstance(si, dict):
            _parts(si.get("parts"), (*base, key, "parts"), "system", out)
        elif isinstance(si, str):
            out.append(Text("system", (*base, key), si))


def _content(i: int, content: Any, out: Out, base: Path = ()) -> None:
    if isinstance(content, dict):
        place = ROLE_PLACE.get(content.get("role", "user"), "user")
        _parts(content.get("parts"), (*base, "contents", i, "parts"), place, out)


_DECLARATION_KEYS = ("description", "parameters", "parametersJsonSchema", "parameters_json_schema", "response",
                     "responseJsonSchema", "response_json_schema")


def _tools(body: dict, out: Out, base: Path = ()) -> None:
    for i, tool in enumerate(as_list(body.get("tools"))):
        if not isinstance(tool, dict):
            continue
        for key in ("functionDeclarations", "function_declarations"):
            for j, decl in enumerate(as_list(tool.get(key))):
                if isinstance(decl, dict):
                    strings(definition(decl, _DECLARATION_KEYS), (*base, "tools", i, key, j), "tool_definition", out)


GENERATE = Shape("gemini", _system, "contents", _content, _tools)

# A part's data fields that hold text, under either spelling: the field, the key within
# it, and the place (None: the content's own).
_PART_FIELDS: dict[str, tuple[str, str | None]] = {
    "functionCall": ("args", "assistant"), "function_call": ("args", "assistant"),
    "functionResponse": ("response", "tool_result"), "function_response": ("response", "tool_result"),
    "executableCode": ("code", None), "executable_code": ("code", None),
    "codeExecutionResult": ("output", "tool_result"), "code_execution_result": ("output", "tool_result"),
}


def _parts(parts: Any, path: Path, place: str, out: Out) -> None:
    for i, part in enumerate(as_list(parts)):
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


def _whole(body: dict, out: Out, base: Path = ()) -> None:
    _system(body, out, base)
    for i, content in enumerate(as_list(body.get("contents"))):
        _content(i, content, out, base)
    _tools(body, out, base)


def wrapped_texts(body: dict) -> list[Text]:
    """A countTokens around a generateContent request (at `WRAPPED`): its texts, and
    the outer request's own, if it has contents too."""
    out: Out = []
    _whole(body[WRAPPED], out, (WRAPPED,))
    if "contents" in body:
        _whole(body, out)
    return out


def embed_texts(body: dict) -> list[Text]:
    """embedContent's content; batchEmbedContents has requests[].content."""
    out: Out = []
    content = body.get("content")
    if isinstance(content, dict):
        _parts(content.get("parts"), ("content", "parts"), "user", out)
    for i, request in enumerate(as_list(body.get("requests"))):
        inner = request.get("content") if isinstance(request, dict) else None
        if isinstance(inner, dict):
            _parts(inner.get("parts"), ("requests", i, "content", "parts"), "user", out)
    return out


def answer_pieces(d: dict) -> Iterator[Any]:
    """The text of one stream chunk or one whole response; non-strings are dropped by
    the caller."""
    for candidate in as_list(d.get("candidates")):
        content = candidate.get("content") if isinstance(candidate, dict) else None
        for part in as_list(content.get("parts") if isinstance(content, dict) else None):
            if isinstance(part, dict):
                yield part.get("text")
                if isinstance(part.get("functionCall"), dict):
                    yield json_text(part["functionCall"].get("args"))
