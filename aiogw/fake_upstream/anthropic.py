"""The fake Anthropic Messages API: turns, messages, streams, errors, models."""

from __future__ import annotations

import secrets

from aiogw.fake_upstream.model import (
    JSON,
    Answer,
    BadRequest,
    Call,
    FakeConfig,
    JsonReply,
    Reply,
    StreamReply,
    Strs,
    Tool,
    Turn,
    answer,
    as_dict,
    as_list,
    bearer,
    joined,
    make_turn,
    phrase,
    pick_tool,
    retry_after,
    sse,
)

_ANTHROPIC_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_ANTHROPIC_MODELS = (
    ("claude-opus-4-6", "Claude Opus 4.6", "2026-02-05T00:00:00Z"),
    ("claude-sonnet-4-6", "Claude Sonnet 4.6", "2026-02-17T00:00:00Z"),
    ("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-01T00:00:00Z"),
)


def anthropic_error(status: int, message: str | None = None) -> JsonReply:
    kind = _ANTHROPIC_ERRORS.get(status) or ("api_error" if status >= 500 else "invalid_request_error")
    body = {"type": "error", "error": {"type": kind, "message": message or phrase(status)}}
    return JsonReply(body, status, retry_after(status))


def anthropic_auth(headers: Strs, query: Strs, config: FakeConfig) -> JsonReply | None:
    given = headers.get("x-api-key") or bearer(headers.get("authorization"))
    if given == config.anthropic_key:
        return None
    return anthropic_error(401, "invalid x-api-key" if given else "x-api-key header is required")


def anthropic_headers() -> dict[str, str]:
    return {
        "request-id": f"req_{secrets.token_hex(12)}",
        "anthropic-ratelimit-requests-limit": "4000",
        "anthropic-ratelimit-requests-remaining": "3999",
        "anthropic-ratelimit-tokens-limit": "2000000",
        "anthropic-ratelimit-tokens-remaining": "1999000",
    }


def anthropic_turn(body: JSON, raw: bytes, lean: bool = False) -> Turn:
    messages = as_list(body.get("messages"))
    # Claude Code may end the list with a mid-conversation system message; the turn
    # the model answers is the last user or assistant one.
    turns = [m for m in map(as_dict, messages) if m.get("role") != "system"]
    last = turns[-1] if turns else {}
    result = None
    if last.get("role") == "user":
        blocks = map(as_dict, as_list(last.get("content")))
        results = (b for b in blocks if b.get("type") == "tool_result")
        result = next((joined(b.get("content")) for b in results), None)
    tool = None
    no_tools = as_dict(body.get("tool_choice")).get("type") == "none"
    if result is None and last.get("role") == "user" and not no_tools:
        tools = map(as_dict, as_list(body.get("tools")))
        tool = pick_tool(Tool(str(t.get("name", "")), as_dict(t.get("input_schema"))) for t in tools)
    sources = (body.get("system"), messages, body.get("tools"))
    return make_turn(raw, lean, sources, tool, result, b'"cache_control"' in raw)


def _anthropic_usage(ans: Answer, output_tokens: int) -> JSON:
    # input_tokens excludes cache reads; they are reported on top.
    return {
        "input_tokens": ans.input_tokens - ans.cached_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": ans.cached_tokens,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def _anthropic_block(ans: Answer, done: bool) -> JSON:
    if ans.tool is not None:
        args = ans.args if done else {}
        return {"type": "tool_use", "id": f"toolu_{ans.ident}", "name": ans.tool.name, "input": args}
    return {"type": "text", "text": ans.text if done else ""}


def anthropic_message(ans: Answer, model: str) -> JSON:
    return {
        "id": f"msg_{ans.ident}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [_anthropic_block(ans, done=True)],
        "stop_reason": "tool_use" if ans.tool else "end_turn",
        "stop_sequence": None,
        "usage": _anthropic_usage(ans, ans.output_tokens),
    }


def anthropic_stream(ans: Answer, model: str) -> list[bytes]:
    start = anthropic_message(ans, model) | {
        "content": [],
        "stop_reason": None,
        "usage": _anthropic_usage(ans, 1),
    }
    if ans.tool is not None:
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in ans.pieces]
    else:
        deltas = [{"type": "text_delta", "text": p} for p in ans.pieces]
    stop_reason = "tool_use" if ans.tool else "end_turn"
    return [
        sse("message_start", {"type": "message_start", "message": start}),
        sse(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": _anthropic_block(ans, done=False)},
        ),
        sse("ping", {"type": "ping"}),
        *(sse("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": d}) for d in deltas),
        sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
        sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": ans.output_tokens},
            },
        ),
        sse("message_stop", {"type": "message_stop"}),
    ]


def _anthropic_require(body: JSON, *fields: str) -> None:
    for name in fields:
        if name not in body:
            raise BadRequest(f"{name}: Field required")
    if not isinstance(body.get("messages"), list):
        raise BadRequest("messages: Input should be a valid list")


def anthropic_messages(call: Call) -> Reply:
    _anthropic_require(call.body, "model", "messages", "max_tokens")
    ans = answer(anthropic_turn(call.body, call.raw, call.lean), call.raw, call.text, call.chunks)
    model = str(call.body["model"])
    if call.body.get("stream") is True:
        return StreamReply(anthropic_stream(ans, model), "text/event-stream; charset=utf-8")
    return JsonReply(anthropic_message(ans, model))


def anthropic_count_tokens(call: Call) -> Reply:
    _anthropic_require(call.body, "model", "messages")
    ans = answer(anthropic_turn(call.body, call.raw, call.lean), call.raw, call.text, 1)
    return JsonReply({"input_tokens": ans.input_tokens})


def _anthropic_model(model_id: str, name: str, created: str) -> JSON:
    return {"type": "model", "id": model_id, "display_name": name, "created_at": created}


def anthropic_models(call: Call) -> Reply:
    try:
        limit = int(call.query.get("limit", "20"))
    except ValueError:
        raise BadRequest("limit: Input should be a valid integer") from None
    if not 1 <= limit <= 1000:
        raise BadRequest("limit: Input should be between 1 and 1000")
    page = [_anthropic_model(*m) for m in _ANTHROPIC_MODELS[:limit]]
    return JsonReply(
        {
            "data": page,
            "has_more": limit < len(_ANTHROPIC_MODELS),
            "first_id": page[0]["id"],
            "last_id": page[-1]["id"],
        }
    )


def anthropic_model(call: Call) -> Reply:
    model_id = call.params["model"]
    return JsonReply(_anthropic_model(model_id, model_id, _ANTHROPIC_MODELS[0][2]))


