"""The fake Gemini API (the Generative Language API, v1beta and v1)."""

from __future__ import annotations

import orjson

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
    embedding,
    joined,
    make_turn,
    phrase,
    pick_tool,
    words,
)

_GEMINI_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_GEMINI_MESSAGES = {
    429: "You exceeded your current quota, please check your plan and billing details.",
    500: "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
}
_GEMINI_MODELS = (
    ("gemini-2.5-pro", "Gemini 2.5 Pro"),
    ("gemini-2.5-flash", "Gemini 2.5 Flash"),
    ("gemini-embedding-001", "Gemini Embedding 001"),
)
# Google ends each SSE event with CRLF pairs, and separates the elements of the
# streamed JSON array (no alt=sse) with ",\r\n".
_GEMINI_SSE_END = b"\r\n\r\n"
_GEMINI_ARRAY_SEP = b",\r\n"


def gemini_error(status: int, message: str | None = None, details: list[JSON] | None = None) -> JsonReply:
    code = _GEMINI_STATUS.get(status) or ("UNKNOWN" if status >= 500 else "FAILED_PRECONDITION")
    error: JSON = {
        "code": status,
        "message": message or _GEMINI_MESSAGES.get(status) or phrase(status),
        "status": code,
    }
    if status == 429 and details is None:
        # Google puts the back-off in the body, not in a retry-after header.
        details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}]
    if details:
        error["details"] = details
    return JsonReply({"error": error}, status)


def gemini_auth(headers: Strs, query: Strs, config: FakeConfig) -> JsonReply | None:
    given = headers.get("x-goog-api-key") or query.get("key")
    if given == config.gemini_key:
        return None
    if not given:
        return gemini_error(
            403,
            "Method doesn't allow unregistered callers (callers without"
            " established identity). Please use API Key or other form of"
            " API consumer identity to call this API.",
        )
    info = {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "API_KEY_INVALID",
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com"},
    }
    return gemini_error(400, "API key not valid. Please pass a valid API key.", [info])


def gemini_headers() -> dict[str, str]:
    return {"server-timing": "gfet4t7; dur=42", "vary": "Origin, X-Origin, Referer"}


def gemini_turn(body: JSON, raw: bytes, lean: bool = False) -> Turn:
    contents = as_list(body.get("contents"))
    last = as_dict(contents[-1]) if contents else {}
    parts = [as_dict(p) for p in as_list(last.get("parts"))]
    responses = [as_dict(p["functionResponse"]) for p in parts if "functionResponse" in p]
    result = joined(responses[0].get("response")) if responses else None
    mode = as_dict(as_dict(body.get("toolConfig")).get("functionCallingConfig")).get("mode")
    tool = None
    if result is None and last.get("role", "user") == "user" and str(mode or "").upper() != "NONE":
        decls = (
            as_dict(d) for t in as_list(body.get("tools")) for d in as_list(as_dict(t).get("functionDeclarations"))
        )
        tool = pick_tool(
            Tool(str(d.get("name", "")), as_dict(d.get("parameters") or d.get("parametersJsonSchema"))) for d in decls
        )
    sources = (body.get("systemInstruction"), contents, body.get("tools"))
    return make_turn(raw, lean, sources, tool, result, "cachedContent" in body)


def gemini_chunk(ans: Answer, model: str, parts: list[JSON], output_tokens: int, final: bool) -> JSON:
    candidate: JSON = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if final:
        candidate["finishReason"] = "STOP"
    usage: JSON = {
        "promptTokenCount": ans.input_tokens,
        "candidatesTokenCount": output_tokens,
        "totalTokenCount": ans.input_tokens + output_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": ans.input_tokens}],
    }
    if ans.cached_tokens:
        usage["cachedContentTokenCount"] = ans.cached_tokens
    return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": model, "responseId": ans.ident}


def _gemini_call_part(ans: Answer) -> JSON:
    assert ans.tool is not None
    return {"functionCall": {"name": ans.tool.name, "args": ans.args}}


def gemini_chunks(ans: Answer, model: str) -> list[JSON]:
    """The stream's chunks; a function call comes whole in one chunk, as Gemini sends it.
    Every chunk carries usage so far; the last one counts."""
    if ans.tool is not None:
        return [gemini_chunk(ans, model, [_gemini_call_part(ans)], ans.output_tokens, True)]
    chunks, so_far = [], ""
    for i, piece in enumerate(ans.pieces):
        so_far += piece
        final = i == len(ans.pieces) - 1
        chunks.append(gemini_chunk(ans, model, [{"text": piece}], words(so_far), final))
    return chunks


def _gemini_require_contents(body: JSON) -> None:
    if not as_list(body.get("contents")):
        raise BadRequest("* GenerateContentRequest.contents: contents is not specified")


def gemini_generate(call: Call) -> Reply:
    _gemini_require_contents(call.body)
    ans = answer(gemini_turn(call.body, call.raw, call.lean), call.raw, call.text, call.chunks)
    parts = [_gemini_call_part(ans)] if ans.tool else [{"text": ans.text}]
    return JsonReply(gemini_chunk(ans, call.params["model"], parts, ans.output_tokens, True))


def gemini_stream(call: Call) -> Reply:
    _gemini_require_contents(call.body)
    ans = answer(gemini_turn(call.body, call.raw, call.lean), call.raw, call.text, call.chunks)
    chunks = [orjson.dumps(c) for c in gemini_chunks(ans, call.params["model"])]
    if call.query.get("alt") == "sse":
        return StreamReply([b"data: " + c + _GEMINI_SSE_END for c in chunks], "text/event-stream")
    frames = [b"[" + chunks[0], *(_GEMINI_ARRAY_SEP + c for c in chunks[1:]), b"]"]
    return StreamReply(frames, "application/json; charset=UTF-8")


def gemini_count_tokens(call: Call) -> Reply:
    body = as_dict(call.body.get("generateContentRequest")) or call.body
    ans = answer(gemini_turn(body, call.raw, call.lean), call.raw, call.text, 1)
    return JsonReply(
        {"totalTokens": ans.input_tokens, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": ans.input_tokens}]}
    )


def _gemini_values(request: JSON) -> JSON:
    dims = request.get("outputDimensionality") or EMBEDDING_DIMS
    if not isinstance(dims, int) or not 1 <= dims <= 4096:
        raise BadRequest("outputDimensionality must be between 1 and 4096")
    return {"values": embedding(joined(request.get("content")), dims)}


def gemini_embed(call: Call) -> Reply:
    return JsonReply({"embedding": _gemini_values(call.body)})


def gemini_batch_embed(call: Call) -> Reply:
    requests = [as_dict(r) for r in as_list(call.body.get("requests"))]
    if not requests:
        raise BadRequest("* BatchEmbedContentsRequest.requests: requests is not specified")
    return JsonReply({"embeddings": [_gemini_values(r) for r in requests]})


def _gemini_model(model_id: str, name: str) -> JSON:
    embed = "embedding" in model_id
    methods = (
        ["embedContent", "batchEmbedContents"] if embed else ["generateContent", "streamGenerateContent", "countTokens"]
    )
    return {
        "name": f"models/{model_id}",
        "version": "001",
        "displayName": name,
        "description": f"{name} (aiogw fake)",
        "inputTokenLimit": 1_048_576,
        "outputTokenLimit": 65_536,
        "supportedGenerationMethods": methods,
    }


def gemini_models(call: Call) -> Reply:
    return JsonReply({"models": [_gemini_model(*m) for m in _GEMINI_MODELS]})


def gemini_model(call: Call) -> Reply:
    model_id = call.params["model"]
    known = dict(_GEMINI_MODELS)
    if model_id not in known:
        return gemini_error(404, f"models/{model_id} is not found for API version v1beta.")
    return JsonReply(_gemini_model(model_id, known[model_id]))


