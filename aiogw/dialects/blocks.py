"""A request message's content walked for its texts, by the place they come from.

Places: `system` (system prompts, developer messages), `user`, `assistant` (earlier
answers, and the tool calls the model made), `tool_result` (tool output and content
fetched from elsewhere: the untrusted input), `tool_definition` (tool descriptions and
schemas). Each text carries its path in the parsed body, so a redaction can be written
back at exactly that string.

Content is a string or a list of blocks (Anthropic) or parts (OpenAI), which share
their `type: text` shape; each dialect's request reader (`*_texts` modules) walks its
messages with `content`. Every block a provider defines that carries text is read:
text, thinking, documents with a text or content source, search results, tool inputs
and results, the results of a provider's own tools (web fetch, code execution). A
block of a type this module does not know is read whole, as JSON. What is skipped is
what the provider itself takes as binary or by reference (images, audio, files, PDF
documents, encrypted reasoning); inside free-form JSON (tool inputs, function results,
schemas) a string is skipped only when it is, whole, base64 data (`walk.binary`).

Walks are bounded: free-form JSON is walked with a stack of its own, not by
recursion, and blocks are nested at most `_MAX_BLOCK_DEPTH` deep before the rest is
walked as JSON (orjson parses bodies nested 1,024 deep).
"""

from __future__ import annotations

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
OPAQUE_KEYS = frozenset(("type", "id", "call_id", "tool_use_id", "file_id", "approval_request_id", "signature",
                         "encrypted_content", "encrypted_stdout", "encrypted_index", "fingerprint", "cache_control",
                         "media_type", "status"))
# Blocks within blocks (a document in a tool result, its content source's blocks) are
# read as blocks this deep; deeper, as JSON.
_MAX_BLOCK_DEPTH = 3

# A message's role → the place of its texts.
ROLE_PLACE = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "model": "assistant",
              "tool": "tool_result", "function": "tool_result"}


def text(value: Any, path: Path, place: str, out: Out) -> None:
    """`value` when it is a non-empty string."""
    if isinstance(value, str) and value:
        out.append(Text(place, path, value))


def content(value: Any, path: Path, place: str, out: Out, depth: int = 0) -> None:
    """A message's content: a string, or a list of blocks/parts with text. `depth`:
    how many blocks this content is inside (a tool result's, a document's)."""
    if isinstance(value, str):
        if value:
            out.append(Text(place, path, value))
        return
    if not isinstance(value, list):
        return
    if depth >= _MAX_BLOCK_DEPTH:
        strings(value, path, place, out, OPAQUE_KEYS)
        return
    for i, block in enumerate(value):
        if not isinstance(block, dict):  # a bare string, or JSON of no block's shape
            strings(block, (*path, i), place, out, OPAQUE_KEYS)
            continue
        kind = block.get("type")
        if kind == "text":  # the common case first
            if isinstance(block.get("text"), str):
                out.append(Text(place, (*path, i, "text"), block["text"]))
        elif kind == "tool_result":
            content(block.get("content"), (*path, i, "content"), "tool_result", out, depth + 1)
        elif kind in _OPAQUE_BLOCKS:
            continue
        elif kind in ("tool_use", "server_tool_use", "mcp_tool_use"):
            strings(block.get("input"), (*path, i, "input"), "assistant", out)
        elif kind == "thinking":
            text(block.get("thinking"), (*path, i, "thinking"), place, out)
        elif kind == "document":
            _document(block, (*path, i), place, out, depth)
        elif kind == "search_result":
            # Retrieved content, wherever the agent puts it: untrusted, as a tool's output.
            text(block.get("title"), (*path, i, "title"), "tool_result", out)
            text(block.get("source"), (*path, i, "source"), "tool_result", out)
            content(block.get("content"), (*path, i, "content"), "tool_result", out, depth + 1)
        else:
            # Any other block, read as JSON. The results of the provider's own tools
            # (web search and fetch, code execution, MCP) are tool output.
            tool_output = isinstance(kind, str) and kind.endswith("tool_result")
            strings(block, (*path, i), "tool_result" if tool_output else place, out, OPAQUE_KEYS)


def _document(block: dict, path: Path, place: str, out: Out, depth: int) -> None:
    """A document block: its title and context, and a text or content source (a PDF,
    base64 or by URL or file id, is binary)."""
    text(block.get("title"), (*path, "title"), place, out)
    text(block.get("context"), (*path, "context"), place, out)
    source = block.get("source")
    if not isinstance(source, dict):
        return
    kind = source.get("type")
    if kind == "text":
        text(source.get("data"), (*path, "source", "data"), place, out)
    elif kind == "content":
        content(source.get("content"), (*path, "source", "content"), place, out, depth + 1)


def definition(tool: dict, keys: tuple[str, ...]) -> dict:
    """The parts of a tool definition a model reads as instructions."""
    return {k: tool[k] for k in keys if k in tool}
