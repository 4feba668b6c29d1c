"""Audit records as text a person reads in a terminal: tables and one exchange in full.

Everything a record holds came from an agent, a web page or a provider, and reaches an
operator's terminal: control characters are shown as escapes (`untrusted.visible`), never sent
to the terminal to act on. A part too deeply nested for orjson is shown as a
placeholder that says so, never as a traceback (`not_shown`).
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from aiogw import jsonout
from aiogw.dialects.shape import equal, same_prefix
from aiogw.dialects.walk import path_text
from aiogw.store.base import NOT_SHOWN
from aiogw.untrusted import visible

_LIST = (
    ("ID", "id", 26),
    ("TIME (UTC)", "started", 19),
    ("USER", "user", 14),
    ("ROUTE", "route", 10),
    ("MODEL", "model", 24),
    ("ST", "status", 3),
    ("OUTCOME", "outcome", 16),
    ("IN+CACHE", "input_tokens", 8),
    ("OUT", "output_tokens", 6),
    ("MS", "duration_ms", 7),
    ("F", "findings", 2),
    ("REASON", "reason", 40),  # why it was refused or failed: auth, rate_limit:..., guard_request
)


def _v(value: Any) -> str:
    """A record's field on one line: '-' when empty."""
    return "-" if value is None or value == "" else visible(str(value))


# Past this depth `_text` shows a part as compact JSON, not as lines: far below
# Python's recursion limit, and no message a person reads is nested deeper.
_TEXT_DEPTH = 32


def not_shown(value: Any, error: Exception) -> tuple[str, str, int]:
    """Why a value cannot be written as JSON by orjson, its JSON text written without
    that limit, and its depth."""
    text, depth = deep_json(value)
    if "Recursion limit" in str(error):
        why = f"nested too deeply to show: {depth} levels (orjson writes 255)"
    else:
        why = f"cannot be shown as JSON ({error})"
    return why, text, depth


def _placeholder(value: Any, error: Exception) -> str:
    why, text, _ = not_shown(value, error)
    return f"[{why}, {len(text.encode('utf-8', 'replace'))} bytes; `aiogw audit show ID --json` holds it as text]"


def deep_json(value: Any) -> tuple[str, int]:
    """(compact JSON text, depth) of a value, however deep (`jsonout`); what orjson
    cannot write at all is shown as text that says what it was (`_json_leaf`)."""
    return jsonout.dumps_any_depth(value, leaf=_json_leaf).decode(), jsonout.depth(value)


def _json_leaf(item: Any) -> bytes:
    """A key or a value as orjson writes it; else text not UTF-8 with its escapes shown,
    an integer past 64 bits as its digits, anything else as a string of its repr."""
    try:
        return orjson.dumps(item)
    except orjson.JSONEncodeError:
        if isinstance(item, str):  # lone surrogates: undecodable bytes
            return orjson.dumps(visible(item, lines=True))
        if isinstance(item, int):
            return str(item).encode()
        return _json_leaf(repr(item)[:200])


def utc(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) if ts else "-"


def _cell(row: dict, key: str) -> str:
    value = row.get(key)
    if key == "started":
        return utc(value)
    if key == "duration_ms":
        return f"{value:.0f}" if value is not None else "-"
    if key == "reason":
        return visible(str(value or ""))
    if key == "input_tokens":
        return str((value or 0) + (row.get("cache_read_tokens") or 0) + (row.get("cache_write_tokens") or 0))
    return "-" if value is None else visible(str(value))


def table(rows: list[dict]) -> str:
    lines = [" ".join(title.ljust(width) for title, _, width in _LIST).rstrip()]
    for row in rows:
        cells = []
        for _, key, width in _LIST:
            text = _cell(row, key)
            cells.append((text if len(text) <= width else text[: width - 1] + "…").ljust(width))
        lines.append(" ".join(cells).rstrip())
    return "\n".join(lines)


def exchange(record: dict, before: dict | None = None) -> str:
    """One exchange: who, what, tokens; then system prompt, messages, tools, answer.
    `before`: the request of the conversation's turn before, whose system prompt, tools
    and history this one resends: only what is new is printed again.

    Every field is shown through `visible`: a header field on its one line (a newline
    in a model name cannot forge the next header), a message body with its own lines."""
    r = record
    out = [
        f"exchange     {_v(r['id'])}   {utc(r['started'])} UTC   {_ms(r['duration_ms'])} ms"
        + (f" (first byte {_ms(r['ttfb_ms'])} ms)" if r.get("ttfb_ms") is not None else ""),
        f"user         {_v(r['user'])} (key {_v(r['key_id'])}) from {_v(r['client'])} · {_v(r['user_agent'])}",
        f"route        {_v(r['route'])} ({_v(r['dialect'])}) {visible(str(r.get('method') or ''))} "
        f"{visible(str(r.get('path') or ''))} · {_v(r['endpoint'])} · model {_v(r['model'])}"
        + (" · stream" if r["stream"] else ""),
        f"result       {_v(r['status'])} {_v(r['outcome'])}"
        + (f" ({visible(str(r['reason']))})" if r["reason"] else "")
        + (f" · provider request {visible(str(r['request_id']))}" if r["request_id"] else ""),
        f"tokens       input {r['input_tokens']} · output {r['output_tokens']} (reasoning {r['reasoning_tokens']})"
        f" · cache read {r['cache_read_tokens']} · cache write {r['cache_write_tokens']}",
        f"cost         {_cost(r)}",
        f"conversation {_v(r['conversation'])}",
    ]
    findings = r.get("findings_detail")
    if findings:
        out.append("findings")
        for f in findings if isinstance(findings, list) else [findings]:
            out.append("  - " + _finding(f))
    if r.get("payloads", True) is None:
        out.append("\n(payloads not stored: audit policy 'metadata')")
        return "\n".join(out)
    request = r.get("request")
    if isinstance(request, dict) and not _is_placeholder(request):
        out += _request(request, before)
    elif request:
        out += ["", "== request", _text(request)]
    response = r.get("response")
    if response is not None:
        answer = response.get("message", response) if isinstance(response, dict) else response
        out += ["", "== answer", _text(answer)]
    # Each part was made visible as it was added; this pass is the guarantee that no
    # line of the page can reach the terminal raw, whatever a part's renderer missed.
    return visible("\n".join(out), lines=True)


def _ms(value: Any) -> str:
    return f"{value:.0f}" if isinstance(value, (int, float)) else "-"


def _finding(f: Any) -> str:
    if not isinstance(f, dict):
        return visible(str(f))
    try:
        where = path_text(f.get("path", ())) or f.get("place", "")
    except TypeError:
        where = f.get("place", "")
    return visible(
        f"{f.get('action')}: {f.get('category')}/{f.get('subcategory')} (pattern {f.get('id')}) "
        f"in {f.get('place')} at {where} [{f.get('start')}:{f.get('end')}]"
    )


_SYSTEM_KEYS = ("system", "instructions", "systemInstruction")
_MESSAGE_KEYS = ("messages", "input", "contents")


def _request(body: dict, before: dict | None = None) -> list[str]:
    before = before or {}
    out = []
    for key in _SYSTEM_KEYS:
        if body.get(key):
            title = "== system" if key == "system" else f"== system ({key})"
            if equal(before.get(key), body[key]):
                out += ["", f"{title}: as in the turn before"]
            else:
                out += ["", title, _text(body[key])]
    for key in _MESSAGE_KEYS:
        messages = body.get(key)
        if isinstance(messages, list):
            old = before.get(key)
            same = same_prefix(old, messages) if isinstance(old, list) else 0
            out += ["", f"== messages ({len(messages)}" + (f"; the first {same} as in the turn before)" if same else ")")]
            for m in messages[same:]:
                role = m.get("role") or m.get("type") or "?" if isinstance(m, dict) else "?"
                out += [f"--- {visible(str(role))}", _text(m.get("content", m.get("parts", m)) if isinstance(m, dict) else m)]
        elif isinstance(messages, str):
            out += ["", "== input", visible(messages, lines=True)]
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        if equal(before.get("tools"), tools):
            out += ["", f"== tools ({len(tools)}): as in the turn before"]
        else:
            out += ["", f"== tools ({len(tools)})"]
            for tool in tools:
                out.append("  " + _tool_line(tool))
    return out


def _tool_line(tool: Any) -> str:
    if not isinstance(tool, dict):
        return _text(tool).replace("\n", "\\n")[:160]
    fn = tool.get("function") if isinstance(tool.get("function"), dict) else tool
    if "functionDeclarations" in tool and isinstance(tool["functionDeclarations"], list):
        return visible(", ".join(str(d.get("name")) for d in tool["functionDeclarations"] if isinstance(d, dict)))
    desc = str(fn.get("description") or "").splitlines()[0:1]
    return visible(f"{fn.get('name') or fn.get('type')}: {desc[0] if desc else ''}"[:160])




def _is_placeholder(value: Any) -> bool:
    return isinstance(value, dict) and NOT_SHOWN in value


def _text(value: Any, depth: int = 0) -> str:
    """Content blocks as readable lines: text as text, everything else as compact JSON;
    a part too deep for that as a placeholder. Always visible-safe."""
    if isinstance(value, str):
        return visible(value, lines=True)
    if _is_placeholder(value):  # what the store could not read back: say so
        return f"[{visible(str(value['aiogw_not_shown']))}]"
    if depth > _TEXT_DEPTH:
        return _compact(value)
    if isinstance(value, list):
        return "\n".join(_text(v, depth + 1) for v in value)
    if isinstance(value, dict):
        if isinstance(value.get("text"), str) and len(value) <= 3:
            return visible(value["text"], lines=True)
        kind = value.get("type")
        if kind == "tool_result" or "functionResponse" in value or kind == "function_call_output":
            body = value.get("content", value.get("functionResponse", value.get("output")))
            ident = value.get("tool_use_id") or value.get("call_id") or ""
            return f"[tool result {visible(str(ident))}]\n{_text(body, depth + 1)}"
        if kind in ("tool_use", "function_call") or "functionCall" in value:
            return f"[tool call] {_compact(value)}"
        if "content" in value and "role" in value:
            return _text(value["content"], depth + 1)
        if isinstance(value.get("choices"), list):  # an OpenAI chat completion
            return _text([c.get("message", c) for c in value["choices"] if isinstance(c, dict)], depth + 1)
        if isinstance(value.get("candidates"), list):  # a Gemini response
            return _text(
                [c.get("content", {}).get("parts", []) for c in value["candidates"] if isinstance(c, dict)
                 and isinstance(c.get("content", {}), dict)],
                depth + 1,
            )
        if "output" in value and isinstance(value["output"], list):  # a Responses object
            return _text(value["output"], depth + 1)
        if kind == "message" and "content" in value:
            return _text(value["content"], depth + 1)
    return _compact(value)


def _compact(value: Any) -> str:
    """Compact JSON on one line (orjson escapes what JSON must; `visible` the rest), or
    the placeholder of a value orjson cannot write."""
    try:
        return visible(orjson.dumps(value).decode())
    except orjson.JSONEncodeError as exc:
        return _placeholder(value, exc)


def _cost(r: dict) -> str:
    cost = r.get("cost_usd")
    if cost is None:
        return "-"
    return f"${cost:.6f}" + ("" if r.get("priced", 1) else " (model not in the price table: the default price)")
