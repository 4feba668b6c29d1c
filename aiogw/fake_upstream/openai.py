"""The fake OpenAI API: chat completions, Responses, embeddings, models."""

from __future__ import annotations

import base64
import secrets
import struct
import time
from typing import Any

from aiogw.fake_upstream.model import (
    EMBEDDING_DIMS,
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
    embedding,
    joined,
    make_turn,
    phrase,
    pick_tool,
    retry_after,
    sse,
    sse_data,
)

_OPENAI_ERRORS = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
}
_OPENAI_MODELS = ("gpt-5", "gpt-4o", "gpt-4o-mini", "text-embedding-3-small")


def openai_error(status: int, message: str | None = None, code: str | None = None) -> JsonReply:
    kind, default_code = _OPENAI_ERRORS.get(status) or (
        ("server_error", None) if status >= 500 else ("invalid_request_error", None)
    )
    error = {"message": message or phrase(status), "type": kind, "param": None, "code": code or default_code}
    return JsonReply({"error": error}, status, retry_after(status))


def openai_auth(headers: Strs, query: Strs, config: FakeConfig) -> JsonReply | None:
    given = bearer(headers.get("authorization"))
    if given == config.openai_key:
        return None
    if not given:
        return JsonReply(
            {
                "error": {
                    "message": "You didn't provide an API key. You need to provide your API key in"
                    " an Authorization header using Bearer auth.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": None,
                }
            },
            401,
        )
    masked = f"{given[:3]}***{given[-4:]}" if len(given) > 8 else "***"
    return openai_error(401, f"Incorrect API key provided: {masked}.", "invalid_api_key")


def openai_headers() -> dict[str, str]:
    return {
        "x-request-id": f"req_{secrets.token_hex(16)}",
        "openai-processing-ms": "42",
        "openai-version": "2020-10-01",
        "x-ratelimit-limit-requests": "10000",
        "x-ratelimit-remaining-requests": "9999",
        "x-ratelimit-remaining-tokens": "29999000",
    }


def _openai_require(body: JSON, *fields: str) -> None:
    for name in fields:
        if name not in body:
            raise BadRequest(f"Missing required parameter: '{name}'.")


def chat_turn(body: JSON, raw: bytes, lean: bool = False) -> Turn:
    messages = as_list(body.get("messages"))
    last = as_dict(messages[-1]) if messages else {}
    result = joined(last.get("content")) if last.get("role") in ("tool", "function") else None
    tool = None
    if last.get("role") == "user" and body.get("tool_choice") != "none":
        functions = (as_dict(as_dict(t).get("function")) for t in as_list(body.get("tools")))
        tool = pick_tool(Tool(str(f.get("name", "")), as_dict(f.get("parameters"))) for f in functions if f)
    return make_turn(raw, lean, (messages, body.get("tools")), tool, result, b'"prompt_cache_key"' in raw)


def _chat_usage(ans: Answer) -> JSON:
    # prompt_tokens already includes the cached part.
    return {
        "prompt_tokens": ans.input_tokens,
        "completion_tokens": ans.output_tokens,
        "total_tokens": ans.input_tokens + ans.output_tokens,
        "prompt_tokens_details": {"cached_tokens": ans.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _chat_base(ans: Answer, model: str, kind: str) -> JSON:
    return {
        "id": f"chatcmpl-{ans.ident}",
        "object": kind,
        "created": int(time.time()),
        "model": model,
        "service_tier": "default",
        "system_fingerprint": "fp_aiogw_fake",
    }


def chat_completion(ans: Answer, model: str) -> JSON:
    message: JSON = {"role": "assistant", "content": ans.text or None, "refusal": None, "annotations": []}
    if ans.tool is not None:
        message["tool_calls"] = [
            {
                "id": f"call_{ans.ident}",
                "type": "function",
                "function": {"name": ans.tool.name, "arguments": ans.arguments},
            }
        ]
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "tool_calls" if ans.tool else "stop"}
    return _chat_base(ans, model, "chat.completion") | {"choices": [choice], "usage": _chat_usage(ans)}


def chat_stream(ans: Answer, model: str, include_usage: bool) -> list[bytes]:
    base = _chat_base(ans, model, "chat.completion.chunk")
    if include_usage:  # the real API then sends "usage": null in every other chunk
        base["usage"] = None

    def chunk(delta: JSON, finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return sse_data(base | {"choices": [choice]})

    if ans.tool is not None:
        call = {
            "index": 0,
            "id": f"call_{ans.ident}",
            "type": "function",
            "function": {"name": ans.tool.name, "arguments": ""},
        }
        frames = [chunk({"role": "assistant", "content": None, "tool_calls": [call], "refusal": None})]
        frames += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}) for p in ans.pieces]
    else:
        frames = [chunk({"role": "assistant", "content": "", "refusal": None})]
        frames += [chunk({"content": p}) for p in ans.pieces]
    frames.append(chunk({}, "tool_calls" if ans.tool else "stop"))
    if include_usage:
        frames.append(sse_data(base | {"choices": [], "usage": _chat_usage(ans)}))
    frames.append(b"data: [DONE]\n\n")
    return frames


def chat_completions(call: Call) -> Reply:
    _openai_require(call.body, "model", "messages")
    ans = answer(chat_turn(call.body, call.raw, call.lean), call.raw, call.text, call.chunks)
    model = str(call.body["model"])
    if call.body.get("stream") is True:
        include = as_dict(call.body.get("stream_options")).get("include_usage") is True
        return StreamReply(chat_stream(ans, model, include), "text/event-stream; charset=utf-8")
    return JsonReply(chat_completion(ans, model))


def _response_items(body: JSON) -> list[JSON]:
    items = body.get("input")
    if isinstance(items, str):
        return [{"type": "message", "role": "user", "content": items}]
    return [as_dict(i) for i in as_list(items)]


def responses_turn(body: JSON, raw: bytes, lean: bool = False) -> Turn:
    items = _response_items(body)
    last = items[-1] if items else {}
    kind = last.get("type", "message")
    result = joined(last.get("output")) if kind == "function_call_output" else None
    tool = None
    if kind == "message" and last.get("role") == "user" and body.get("tool_choice") != "none":
        functions = (t for t in map(as_dict, as_list(body.get("tools"))) if t.get("type") == "function")
        tool = pick_tool(Tool(str(t.get("name", "")), as_dict(t.get("parameters"))) for t in functions)
    sources = (body.get("instructions"), items, body.get("tools"))
    return make_turn(raw, lean, sources, tool, result, b'"prompt_cache_key"' in raw)


def _responses_usage(ans: Answer) -> JSON:
    return {
        "input_tokens": ans.input_tokens,
        "input_tokens_details": {"cached_tokens": ans.cached_tokens},
        "output_tokens": ans.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": ans.input_tokens + ans.output_tokens,
    }


def _output_text(text: str) -> JSON:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def _response_item(ans: Answer, done: bool) -> JSON:
    status = "completed" if done else "in_progress"
    if ans.tool is not None:
        return {
            "id": f"fc_{ans.ident}",
            "type": "function_call",
            "status": status,
            "arguments": ans.arguments if done else "",
            "call_id": f"call_{ans.ident}",
            "name": ans.tool.name,
        }
    content = [_output_text(ans.text)] if done else []
    return {"id": f"msg_{ans.ident}", "type": "message", "status": status, "content": content, "role": "assistant"}


def response_object(ans: Answer, body: JSON, done: bool) -> JSON:
    return {
        "id": f"resp_{ans.ident}",
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed" if done else "in_progress",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": body.get("model"),
        "output": [_response_item(ans, done=True)] if done else [],
        "parallel_tool_calls": True,
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "store": body.get("store", True),
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": as_list(body.get("tools")),
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": _responses_usage(ans) if done else None,
        "user": None,
        "metadata": {},
    }


def responses_events(ans: Answer, body: JSON) -> list[JSON]:
    """The Responses stream as event objects, numbered in order."""
    events: list[JSON] = []

    def emit(kind: str, **fields: Any) -> None:
        events.append({"type": kind, "sequence_number": len(events), **fields})

    item = _response_item(ans, done=False)
    at = {"item_id": item["id"], "output_index": 0}
    emit("response.created", response=response_object(ans, body, done=False))
    emit("response.in_progress", response=response_object(ans, body, done=False))
    emit("response.output_item.added", output_index=0, item=item)
    if ans.tool is not None:
        for piece in ans.pieces:
            emit("response.function_call_arguments.delta", **at, delta=piece)
        emit("response.function_call_arguments.done", **at, arguments=ans.arguments)
    else:
        part = {**at, "content_index": 0}
        emit("response.content_part.added", **part, part=_output_text(""))
        for piece in ans.pieces:
            emit("response.output_text.delta", **part, delta=piece, logprobs=[])
        emit("response.output_text.done", **part, text=ans.text, logprobs=[])
        emit("response.content_part.done", **part, part=_output_text(ans.text))
    emit("response.output_item.done", output_index=0, item=_response_item(ans, done=True))
    emit("response.completed", response=response_object(ans, body, done=True))
    return events


def responses(call: Call) -> Reply:
    _openai_require(call.body, "model")
    ans = answer(responses_turn(call.body, call.raw, call.lean), call.raw, call.text, call.chunks)
    if call.body.get("stream") is True:
        frames = [sse(e["type"], e) for e in responses_events(ans, call.body)]
        return StreamReply(frames, "text/event-stream; charset=utf-8")
    return JsonReply(response_object(ans, call.body, done=True))


def responses_input_tokens(call: Call) -> Reply:
    ans = answer(responses_turn(call.body, call.raw, call.lean), call.raw, call.text, 1)
    return JsonReply({"object": "response.input_tokens", "input_tokens": ans.input_tokens})


def _embedding_inputs(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    items = as_list(value)
    if items and all(isinstance(i, int) for i in items):  # one array of token ids
        return [" ".join(map(str, items))]
    return [i if isinstance(i, str) else " ".join(map(str, as_list(i))) for i in items]


def embeddings(call: Call) -> Reply:
    _openai_require(call.body, "model", "input")
    inputs = _embedding_inputs(call.body["input"])
    if not inputs:
        raise BadRequest("'input' must not be empty.")
    dims = call.body.get("dimensions") or EMBEDDING_DIMS
    if not isinstance(dims, int) or not 1 <= dims <= 4096:
        raise BadRequest("'dimensions' must be an integer between 1 and 4096.")
    as_base64 = call.body.get("encoding_format") == "base64"  # the SDK's default
    data = []
    for index, text in enumerate(inputs):
        vector: Any = embedding(text, dims)
        if as_base64:
            vector = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    tokens = sum(max(1, len(t) // 4) for t in inputs)
    return JsonReply(
        {
            "object": "list",
            "data": data,
            "model": call.body["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


def _openai_model(model_id: str) -> JSON:
    return {"id": model_id, "object": "model", "created": 1_715_367_049, "owned_by": "system"}


def openai_models(call: Call) -> Reply:
    return JsonReply({"object": "list", "data": [_openai_model(m) for m in _OPENAI_MODELS]})


def openai_model(call: Call) -> Reply:
    return JsonReply(_openai_model(call.params["model"]))


