"""Audit records as text a person reads in a terminal: tables and one exchange in full."""

from __future__ import annotations

import time
from typing import Any

import orjson

from aiogw.dialects.texts import path_text, same_prefix

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


def utc(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) if ts else "-"


def _cell(row: dict, key: str) -> str:
    value = row.get(key)
    if key == "started":
        return utc(value)
    if key == "duration_ms":
        return f"{value:.0f}" if value is not None else "-"
    if key == "reason":
        return value or ""
    if key == "input_tokens":
        return str((value or 0) + (row.get("cache_read_tokens") or 0) + (row.get("cache_write_tokens") or 0))
    return "-" if value is None else str(value)


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
    and history this one resends: only what is new is printed again."""
    r = record
    out = [
        f"exchange     {r['id']}   {utc(r['started'])} UTC   {r['duration_ms']:.0f} ms"
        + (f" (first byte {r['ttfb_ms']:.0f} ms)" if r.get("ttfb_ms") is not None else ""),
        f"user         {r['user'] or '-'} (key {r['key_id'] or '-'}) from {r['client'] or '-'} · {r['user_agent'] or '-'}",
        f"route        {r['route'] or '-'} ({r['dialect'] or '-'}) {r.get('method') or ''} {r.get('path') or ''} "
        f"· {r['endpoint'] or '-'} · model {r['model'] or '-'}" + (" · stream" if r["stream"] else ""),
        f"result       {r['status']} {r['outcome']}"
        + (f" ({r['reason']})" if r["reason"] else "")
        + (f" · provider request {r['request_id']}" if r["request_id"] else ""),
        f"tokens       input {r['input_tokens']} · output {r['output_tokens']} (reasoning {r['reasoning_tokens']})"
        f" · cache read {r['cache_read_tokens']} · cache write {r['cache_write_tokens']}",
        f"cost         {_cost(r)}",
        f"conversation {r['conversation'] or '-'}",
    ]
    if r.get("findings_detail"):
        out.append("findings")
        for f in r["findings_detail"]:
            where = path_text(f.get("path", ())) or f.get("place", "")
            out.append(
                f"  - {f.get('action')}: {f.get('category')}/{f.get('subcategory')} (pattern {f.get('id')}) "
                f"in {f.get('place')} at {where} [{f.get('start')}:{f.get('end')}]"
            )
    if r.get("payloads", True) is None:
        out.append("\n(payloads not stored: audit policy 'metadata')")
        return "\n".join(out)
    request = r.get("request")
    if isinstance(request, dict):
        out += _request(request, before)
    elif request:
        out += ["", "== request", str(request)]
    response = r.get("response")
    if response is not None:
        out += ["", "== answer", _text(response.get("message", response) if isinstance(response, dict) else response)]
    return "\n".join(out)


_SYSTEM_KEYS = ("system", "instructions", "systemInstruction")
_MESSAGE_KEYS = ("messages", "input", "contents")


def _request(body: dict, before: dict | None = None) -> list[str]:
    before = before or {}
    out = []
    for key in _SYSTEM_KEYS:
        if body.get(key):
            title = "== system" if key == "system" else f"== system ({key})"
            if before.get(key) == body[key]:
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
                out += [f"--- {role}", _text(m.get("content", m.get("parts", m)) if isinstance(m, dict) else m)]
        elif isinstance(messages, str):
            out += ["", "== input", messages]
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        if before.get("tools") == tools:
            out += ["", f"== tools ({len(tools)}): as in the turn before"]
        else:
            out += ["", f"== tools ({len(tools)})"]
            for tool in tools:
                out.append("  " + _tool_line(tool))
    return out


def _tool_line(tool: Any) -> str:
    if not isinstance(tool, dict):
        return str(tool)
    fn = tool.get("function") if isinstance(tool.get("function"), dict) else tool
    if "functionDeclarations" in tool:
        return ", ".join(str(d.get("name")) for d in tool["functionDeclarations"] if isinstance(d, dict))
    desc = str(fn.get("description") or "").splitlines()[0:1]
    return f"{fn.get('name') or fn.get('type')}: {desc[0] if desc else ''}"[:160]


def _text(value: Any) -> str:
    """Content blocks as readable lines: text as text, everything else as compact JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(_text(v) for v in value)
    if isinstance(value, dict):
        if isinstance(value.get("text"), str) and len(value) <= 3:
            return value["text"]
        kind = value.get("type")
        if kind == "tool_result" or "functionResponse" in value or kind == "function_call_output":
            body = value.get("content", value.get("functionResponse", value.get("output")))
            return f"[tool result {value.get('tool_use_id') or value.get('call_id') or ''}]\n{_text(body)}"
        if kind in ("tool_use", "function_call") or "functionCall" in value:
            return f"[tool call] {orjson.dumps(value).decode()}"
        if "content" in value and "role" in value:
            return _text(value["content"])
        if "choices" in value:  # an OpenAI chat completion
            return _text([c.get("message", c) for c in value["choices"] if isinstance(c, dict)])
        if "candidates" in value:  # a Gemini response
            return _text([c.get("content", {}).get("parts", []) for c in value["candidates"] if isinstance(c, dict)])
        if "output" in value and isinstance(value["output"], list):  # a Responses object
            return _text(value["output"])
        if kind == "message" and "content" in value:
            return _text(value["content"])
    return orjson.dumps(value).decode()


def _cost(r: dict) -> str:
    cost = r.get("cost_usd")
    if cost is None:
        return "-"
    return f"${cost:.6f}" + ("" if r.get("priced", 1) else " (model not in the price table: the default price)")
