"""A realistic fake of the Anthropic, OpenAI and Gemini HTTP APIs, served by one aiohttp app.

Tests drive it in process (``FakeUpstream``), ``bench/`` and the demo run it standalone
(``python -m aiogw.fake_upstream --port N``). It answers the endpoints agents use with
the providers' own JSON shapes, SSE event sequences, usage fields, headers and error
envelopes, and it misbehaves on request.

Which provider a request is for: a path under ``/v1beta/``, a Gemini method
(``models/m:generateContent``) or a Gemini key (``x-goog-api-key``, ``?key=``) means
Gemini; ``/v1/messages`` or an ``anthropic-version``/``x-api-key`` header means
Anthropic; anything else is OpenAI. A leading ``/anthropic``, ``/openai``, ``/gemini``
or ``/google`` path segment forces the provider and is stripped, for setups that want
one base URL per provider.

The model is deterministic. It answers ``FakeConfig.text`` split into ``chunks`` pieces.
When the request declares tools and its last turn is a plain user message, it calls the
first declared tool with arguments built from that tool's schema (a shell-like tool runs
``echo aiogw-fake-tool``). When the last turn carries a tool result, it answers
"The tool returned: <first 200 characters of the result>". Input tokens are a quarter of
the characters of the request's texts, output tokens the words of the answer; ids are
derived from the request body, so equal bodies get equal ids.

Lean mode (``--lean``, ``FakeConfig.lean``) is for load benches, where the fake shares a
core with the load generator: for a body over ``LEAN_MIN_BYTES`` it skips the walk over
every text (input tokens become a quarter of the body's bytes) and derives ids from a
CRC-32 instead of SHA-256. Everything else — routing, parsing, tool calls, streams,
faults — behaves as in the default mode.

Per-request controls are request headers (the gateway forwards headers it does not know):

    x-fake-fault: refuse      close the connection without answering
                  stall       read the request, then never send headers
                  stall-mid   send two stream events (half the body if not streaming),
                              then go silent
                  die         send two stream events (half the body if not streaming),
                              then abort the connection: a broken chunked body
                  status=NNN  answer NNN in the provider's error envelope
    x-fake-chunks: N          text deltas in a stream
    x-fake-delay: S           seconds between stream events
    x-fake-text: TEXT         the model's answer for this request
    x-fake-gate: NAME         hold every stream event after the first until
                              FakeUpstream.open_gate(NAME)

``FakeConfig.fault`` is the default when the header is absent.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gzip
import hashlib
import http
import math
import os
import re
import secrets
import signal
import struct
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

JSON = dict[str, Any]
Strs = Mapping[str, str]  # headers, query

DEFAULT_TEXT = "Hello from the aiogw fake upstream. Every request gets this same answer."
# Its output (aiogw-tool-42) is not in the command, so seeing it proves the tool ran.
SHELL_COMMAND = "echo aiogw-tool-$((6*7))"
FAULT_HEADER = "x-fake-fault"
CHUNKS_HEADER = "x-fake-chunks"
DELAY_HEADER = "x-fake-delay"
GATE_HEADER = "x-fake-gate"
TEXT_HEADER = "x-fake-text"  # the model's answer text for this request
# Anthropic accepts bodies up to 32 MB and agents resend the whole conversation every
# turn; the fake must take what the real API takes (aiohttp's default is 1 MiB).
MAX_BODY_BYTES = 32 * 1024 * 1024
# Streams are built in memory before they are sent; this caps what one header can ask.
MAX_CHUNKS = 100_000
# Events sent before a stall-mid or die fault: enough for a client to have seen the
# stream start (Anthropic's message_start, OpenAI's role chunk).
MID_FAULT_EVENTS = 2
# How often a stalled handler looks whether its client left or the server stops; the
# runner of start() cancels handlers on disconnect anyway, this covers other runners.
STALL_POLL_S = 0.05
# How long stop() lets open streams finish before aiohttp cancels them.
SHUTDOWN_TIMEOUT_S = 1.0
EMBEDDING_DIMS = 16
# Lean mode's threshold: below it the text walk costs little; above it (agents' 200 KB
# conversations) the walk and the SHA-256 are most of the fake's CPU per request.
LEAN_MIN_BYTES = 16 * 1024


@dataclass
class FakeConfig:
    """How the fake behaves; read on every request, so a test may change it live."""

    anthropic_key: str = "sk-ant-fake"
    openai_key: str = "sk-openai-fake"
    gemini_key: str = "gemini-fake"
    chunks: int = 5
    chunk_delay: float = 0.0
    compress: bool = False
    text: str = DEFAULT_TEXT
    record: bool = True
    fault: str = ""
    lean: bool = False  # see the module docstring: cheaper answers to large bodies


@dataclass(frozen=True, slots=True)
class Received:
    """One request exactly as it arrived (header names lower-cased)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


# --------------------------------------------------------------------------------------
# Plain data: faults, replies, what the fake model reads and answers
# --------------------------------------------------------------------------------------

FAULT_KINDS = frozenset({"refuse", "stall", "stall-mid", "die"})


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str = ""  # "" (none), one of FAULT_KINDS, or "status"
    status: int = 0


def parse_fault(value: str) -> Fault:
    """Parse an ``x-fake-fault`` value; ValueError names what is accepted."""
    value = value.strip().lower()
    if not value:
        return Fault()
    if value in FAULT_KINDS:
        return Fault(value)
    code = value.removeprefix("status=")
    if code != value and code.isdigit() and 400 <= int(code) <= 599:
        return Fault("status", int(code))
    raise ValueError(f"unknown {FAULT_HEADER} {value!r}: use refuse, stall, stall-mid, die or status=NNN")


@dataclass(frozen=True, slots=True)
class Knobs:
    """The per-request controls, headers over FakeConfig."""

    fault: Fault
    chunks: int
    delay: float


class BadRequest(Exception):
    """The request is malformed; answered 400 in the provider's envelope."""


@dataclass(frozen=True, slots=True)
class JsonReply:
    body: Any
    status: int = 200
    headers: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class StreamReply:
    frames: Sequence[bytes]  # each one event, written and flushed on its own
    content_type: str


Reply = JsonReply | StreamReply


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    schema: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Turn:
    """What the fake model reads from a request, whatever the dialect."""

    texts: tuple[str, ...]
    tool: Tool | None = None  # the model calls this tool
    tool_result: str | None = None  # the last turn carries this tool result
    cache: bool = False  # the request asks for prompt caching
    lean_bytes: int = 0  # lean mode, large body: its size stands in for `texts` (empty)


@dataclass(frozen=True, slots=True)
class Answer:
    """The model's answer: text deltas, or a tool call whose JSON arguments are split."""

    text: str
    pieces: tuple[str, ...]
    tool: Tool | None
    arguments: str
    input_tokens: int  # the whole prompt, the cached part included
    cached_tokens: int
    output_tokens: int
    ident: str

    @property
    def args(self) -> JSON:
        return orjson.loads(self.arguments)


@dataclass(frozen=True, slots=True)
class Call:
    """One request as an endpoint sees it: plain data, no sockets."""

    body: JSON
    raw: bytes
    query: Mapping[str, str]
    params: Mapping[str, str]  # named groups of the route's pattern
    text: str
    chunks: int
    lean: bool = False


# Keys whose string values are structure, not text the model reads.
_STRUCTURE_KEYS = frozenset(
    {
        "type",
        "role",
        "id",
        "tool_use_id",
        "tool_call_id",
        "call_id",
        "status",
        "cache_control",
        "signature",
        "thoughtSignature",
        "mimeType",
        "format",
    }
)
_SHELL_NAME = re.compile(r"bash|shell|exec", re.IGNORECASE)


def strings(value: Any) -> Iterator[str]:
    """Every text in a JSON value, skipping structural fields such as ``type``."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in _STRUCTURE_KEYS:
                yield from strings(item)


def joined(value: Any) -> str:
    return "\n".join(strings(value))


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_dict(value: Any) -> JSON:
    return value if isinstance(value, dict) else {}


def split_text(text: str, n: int) -> tuple[str, ...]:
    """n non-empty pieces that join back to the text; a text shorter than n is doubled
    until it is long enough, so a bench can ask for long streams."""
    n = max(1, n)
    text = text or "."
    while len(text) < n:
        text = f"{text} {text}"
    size = len(text)
    return tuple(text[size * i // n : size * (i + 1) // n] for i in range(n))


def words(text: str) -> int:
    return max(1, len(text.split()))


def _json_type(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type", "string")
    if isinstance(kind, list):  # ["string", "null"]
        kind = next((k for k in kind if str(k).lower() != "null"), "string")
    return str(kind).lower()  # Gemini schemas say "STRING"


def _sample(schema: Mapping[str, Any]) -> Any:
    if as_list(schema.get("enum")):
        return schema["enum"][0]
    samples = {"integer": 1, "number": 1, "boolean": True, "array": [], "object": {}}
    return samples.get(_json_type(schema), "fake")


def pick_tool(tools: Iterable[Tool]) -> Tool | None:
    """The tool the fake model calls: the first shell-like one, so a real agent runs a
    harmless command and sends its output back; else the first declared."""
    declared = list(tools)
    return next((t for t in declared if _SHELL_NAME.search(t.name)), declared[0] if declared else None)


def tool_arguments(tool: Tool) -> JSON:
    """Arguments for a call: a shell command for shell-like tools, then every required
    property filled with a short value of its type."""
    props = as_dict(tool.schema.get("properties"))
    args: JSON = {}
    if _SHELL_NAME.search(tool.name):
        key = next((k for k in ("command", "cmd") if k in props), None)
        if key is None and not props:  # schema-less shell tools, e.g. Anthropic's bash
            key = "command"
        if key is not None:
            is_array = _json_type(as_dict(props.get(key))) == "array"
            args[key] = ["bash", "-lc", SHELL_COMMAND] if is_array else SHELL_COMMAND
    for name in as_list(tool.schema.get("required")):
        if isinstance(name, str) and name not in args:
            args[name] = _sample(as_dict(props.get(name)))
    return args


def make_turn(raw: bytes, lean: bool, sources: tuple[Any, ...], tool: Tool | None, result: str | None,
              cache: bool) -> Turn:
    """A Turn whose texts are every string of `sources`; in lean mode, for a large body,
    none are walked and the body's size stands in for them."""
    if lean and len(raw) > LEAN_MIN_BYTES:
        return Turn((), tool, result, cache, len(raw))
    return Turn(tuple(s for value in sources for s in strings(value)), tool, result, cache)


def answer(turn: Turn, raw: bytes, text: str, chunks: int) -> Answer:
    if turn.lean_bytes:
        prompt = max(1, turn.lean_bytes // 4)
        # 24 hex digits like the SHA-256 ids: the CRC, then the size to spread them.
        ident = f"{zlib.crc32(raw):08x}{turn.lean_bytes:016x}"
    else:
        prompt = max(1, sum(map(len, turn.texts)) // 4)
        ident = hashlib.sha256(raw).hexdigest()[:24]
    cached = prompt // 2 if turn.cache else 0
    if turn.tool is not None:
        arguments = orjson.dumps(tool_arguments(turn.tool)).decode()
        # At least two pieces so clients must join them; never more than characters,
        # which would repeat the JSON.
        pieces = split_text(arguments, min(max(2, chunks), len(arguments)))
        return Answer("", pieces, turn.tool, arguments, prompt, cached, words(arguments), ident)
    if turn.tool_result is not None:
        text = f"The tool returned: {turn.tool_result[:200]}"
    pieces = split_text(text, chunks)
    text = "".join(pieces)
    return Answer(text, pieces, None, "", prompt, cached, words(text), ident)


def embedding(text: str, dims: int) -> list[float]:
    """A deterministic vector; values k/128 are exact in float32, so base64 round trips."""
    digest = b""
    counter = 0
    while len(digest) < dims:
        digest += hashlib.sha256(f"{counter}:{text}".encode()).digest()
        counter += 1
    return [(byte - 128) / 128 for byte in digest[:dims]]


def sse(event: str, data: Any) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def sse_data(data: Any) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


def _bearer(value: str | None) -> str | None:
    if value and value[:7].lower() == "bearer ":
        return value[7:].strip()
    return None


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Overloaded" if status == 529 else "Error"


def _retry_after(status: int) -> dict[str, str]:
    return {"retry-after": "7"} if status == 429 else {}


# --------------------------------------------------------------------------------------
# Anthropic
# --------------------------------------------------------------------------------------

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
    body = {"type": "error", "error": {"type": kind, "message": message or _phrase(status)}}
    return JsonReply(body, status, _retry_after(status))


def anthropic_auth(headers: Strs, query: Strs, config: FakeConfig) -> JsonReply | None:
    given = headers.get("x-api-key") or _bearer(headers.get("authorization"))
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


# --------------------------------------------------------------------------------------
# OpenAI: chat completions, Responses, embeddings, models
# --------------------------------------------------------------------------------------

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
    error = {"message": message or _phrase(status), "type": kind, "param": None, "code": code or default_code}
    return JsonReply({"error": error}, status, _retry_after(status))


def openai_auth(headers: Strs, query: Strs, config: FakeConfig) -> JsonReply | None:
    given = _bearer(headers.get("authorization"))
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


# --------------------------------------------------------------------------------------
# Gemini (the Generative Language API, v1beta and v1)
# --------------------------------------------------------------------------------------

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
        "message": message or _GEMINI_MESSAGES.get(status) or _phrase(status),
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


# --------------------------------------------------------------------------------------
# Dialects and routing
# --------------------------------------------------------------------------------------

Endpoint = Callable[[Call], Reply]
Route = tuple[str, "re.Pattern[str]", Endpoint]


@dataclass(frozen=True, slots=True)
class Dialect:
    """One provider: its routes, its key check, its error envelope, its headers."""

    name: str
    routes: tuple[Route, ...]
    authenticate: Callable[[Strs, Strs, FakeConfig], JsonReply | None]
    error: Callable[[int, str | None], JsonReply]
    headers: Callable[[], dict[str, str]]

    def route(self, method: str, path: str) -> tuple[Endpoint, dict[str, str]] | None:
        for route_method, pattern, endpoint in self.routes:
            if route_method == method and (m := pattern.fullmatch(path)):
                return endpoint, m.groupdict()
        return None


def _routes(*table: tuple[str, str, Endpoint]) -> tuple[Route, ...]:
    return tuple((method, re.compile(pattern), endpoint) for method, pattern, endpoint in table)


_MODEL = r"(?P<model>[^/:]+)"
_GEMINI_BASE = r"/v1(?:beta)?/models"

ANTHROPIC = Dialect(
    "anthropic",
    _routes(
        ("POST", r"/v1/messages", anthropic_messages),
        ("POST", r"/v1/messages/count_tokens", anthropic_count_tokens),
        ("GET", r"/v1/models", anthropic_models),
        ("GET", rf"/v1/models/{_MODEL}", anthropic_model),
    ),
    anthropic_auth,
    anthropic_error,
    anthropic_headers,
)

OPENAI = Dialect(
    "openai",
    _routes(
        ("POST", r"/v1/chat/completions", chat_completions),
        ("POST", r"/v1/responses", responses),
        ("POST", r"/v1/responses/input_tokens", responses_input_tokens),
        ("POST", r"/v1/embeddings", embeddings),
        ("GET", r"/v1/models", openai_models),
        ("GET", rf"/v1/models/{_MODEL}", openai_model),
    ),
    openai_auth,
    openai_error,
    openai_headers,
)

GEMINI = Dialect(
    "gemini",
    _routes(
        ("POST", rf"{_GEMINI_BASE}/{_MODEL}:generateContent", gemini_generate),
        ("POST", rf"{_GEMINI_BASE}/{_MODEL}:streamGenerateContent", gemini_stream),
        ("POST", rf"{_GEMINI_BASE}/{_MODEL}:countTokens", gemini_count_tokens),
        ("POST", rf"{_GEMINI_BASE}/{_MODEL}:embedContent", gemini_embed),
        ("POST", rf"{_GEMINI_BASE}/{_MODEL}:batchEmbedContents", gemini_batch_embed),
        ("GET", _GEMINI_BASE, gemini_models),
        ("GET", rf"{_GEMINI_BASE}/{_MODEL}", gemini_model),
    ),
    gemini_auth,
    gemini_error,
    gemini_headers,
)

_PREFIXES = {"anthropic": ANTHROPIC, "openai": OPENAI, "gemini": GEMINI, "google": GEMINI}


def pick_dialect(path: str, headers: Strs, query: Strs) -> tuple[Dialect, str]:
    """The provider a request is for, and its path without a provider prefix.

    ``GET /v1/models`` exists for all three, so headers decide where the path cannot."""
    first, _, rest = path[1:].partition("/")
    if first in _PREFIXES:
        return _PREFIXES[first], f"/{rest}"
    if path.startswith("/v1beta/") or ":" in path or "x-goog-api-key" in headers or "key" in query:
        return GEMINI, path
    if path.startswith("/v1/messages") or "anthropic-version" in headers or "x-api-key" in headers:
        return ANTHROPIC, path
    return OPENAI, path


def read_knobs(headers: Strs, config: FakeConfig) -> Knobs:
    """Per-request controls; ValueError when a header is malformed."""
    fault = parse_fault(headers.get(FAULT_HEADER, config.fault))
    try:
        chunks = int(headers.get(CHUNKS_HEADER, config.chunks))
        delay = float(headers.get(DELAY_HEADER, config.chunk_delay))
    except ValueError:
        raise ValueError(f"{CHUNKS_HEADER} must be an integer and {DELAY_HEADER} a number") from None
    if not 1 <= chunks <= MAX_CHUNKS or not (math.isfinite(delay) and delay >= 0):
        raise ValueError(f"{CHUNKS_HEADER} must be 1..{MAX_CHUNKS}, {DELAY_HEADER} >= 0")
    return Knobs(fault, chunks, delay)


def _parse_body(method: str, raw: bytes) -> JSON:
    if method != "POST":
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    return body


# --------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------


def _gone(request: web.BaseRequest) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _cut(request: web.BaseRequest, resp: web.StreamResponse) -> web.StreamResponse:
    """Abort the connection. The handler still returns a response: aiohttp then fails
    quietly to finish it, where a raised ConnectionError would be logged as an error."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    return resp


def _accepts_gzip(request: web.BaseRequest) -> bool:
    return "gzip" in request.headers.get("accept-encoding", "").lower()


class FakeUpstream:
    """The fake providers as one server.

    ``received`` lists every request as it arrived (when ``config.record``).
    ``aborted`` counts exchanges whose client left before the fake finished them:
    mid-stream (including a ``stall-mid``), or while a ``stall`` held back the headers.
    """

    def __init__(self, config: FakeConfig | None = None) -> None:
        self.config = config or FakeConfig()
        self.received: list[Received] = []
        self._aborted = 0
        self._stopping = False
        self._runner: web.AppRunner | None = None
        self._gates: dict[str, asyncio.Event] = {}

    def open_gate(self, name: str) -> None:
        """Let a stream sent with `x-fake-gate: NAME` go on past its first event.

        Call it on the fake's own loop (e.g. with `loop.call_soon_threadsafe`).
        """
        self._gates.setdefault(name, asyncio.Event()).set()

    @property
    def aborted(self) -> int:
        return self._aborted

    def clear(self) -> None:
        """Forget what was received and the aborted count."""
        self.received.clear()
        self._aborted = 0

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Serve on host:port (0 picks a free port); return the bound port."""
        if self._runner is not None:
            raise RuntimeError("FakeUpstream is already started")
        self._stopping = False
        # handler_cancellation: a client that leaves cancels its handler at once, which
        # is how a stalled handler learns it and how a stream stops between events.
        runner = web.AppRunner(
            self.app(), handler_cancellation=True, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S
        )
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        return runner.addresses[0][1]

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._stopping = True  # stalled handlers notice and let go
        await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._serve(request)
        except asyncio.CancelledError:
            # aiohttp cancels a handler when its client disconnects; at stop() it
            # cancels what is left, which is no client's doing.
            if not self._stopping:
                self._aborted += 1
            raise

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        if self.config.record:
            headers = {k.lower(): v for k, v in request.headers.items()}
            self.received.append(
                Received(request.method, request.rel_url.raw_path, request.rel_url.raw_query_string, headers, raw)
            )
        dialect, path = pick_dialect(request.path, request.headers, request.query)
        try:
            knobs = read_knobs(request.headers, self.config)
        except ValueError as exc:
            return self._json(request, dialect, dialect.error(400, str(exc)))
        if knobs.fault.kind == "refuse":
            return _cut(request, web.Response())
        if knobs.fault.kind == "stall":
            return await self._hold(request, web.Response())
        denied = dialect.authenticate(request.headers, request.query, self.config)
        if denied is not None:
            return self._json(request, dialect, denied)
        if knobs.fault.kind == "status":
            return self._json(request, dialect, dialect.error(knobs.fault.status, None))
        reply = self._reply(request, dialect, path, raw, knobs)
        if isinstance(reply, StreamReply):
            return await self._stream(request, dialect, reply, knobs, MID_FAULT_EVENTS)
        if knobs.fault.kind in ("stall-mid", "die"):
            # A plain JSON answer broken half-way: the status line says 200, the body ends early.
            data = orjson.dumps(reply.body)
            halves = StreamReply([data[: len(data) // 2], data[len(data) // 2 :]], "application/json")
            return await self._stream(request, dialect, halves, knobs, 1)
        return self._json(request, dialect, reply)

    def _reply(self, request: web.Request, dialect: Dialect, path: str, raw: bytes, knobs: Knobs) -> Reply:
        found = dialect.route(request.method, path)
        if found is None:
            return dialect.error(404, f"Not found: {request.method} {request.path}")
        endpoint, params = found
        try:
            body = _parse_body(request.method, raw)
            text = request.headers.get(TEXT_HEADER, self.config.text)
            call = Call(body, raw, request.query, params, text, knobs.chunks, self.config.lean)
            return endpoint(call)
        except BadRequest as exc:
            return dialect.error(400, str(exc))

    def _json(self, request: web.Request, dialect: Dialect, reply: JsonReply) -> web.Response:
        data = orjson.dumps(reply.body)
        headers = {**dialect.headers(), **(reply.headers or {})}
        if self.config.compress and _accepts_gzip(request):
            data = gzip.compress(data)
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=data, status=reply.status, headers=headers, content_type="application/json")

    async def _stream(
        self, request: web.Request, dialect: Dialect, reply: StreamReply, knobs: Knobs, cut_after: int
    ) -> web.StreamResponse:
        """Write the frames one by one, each flushed; stop the moment the client leaves."""
        resp = web.StreamResponse(headers=dialect.headers())
        resp.headers["Content-Type"] = reply.content_type
        resp.headers["Cache-Control"] = "no-cache"
        packer = None
        if self.config.compress and _accepts_gzip(request):
            resp.headers["Content-Encoding"] = "gzip"
            packer = zlib.compressobj(wbits=31)  # 31: gzip header and trailer
        mid_fault = knobs.fault.kind in ("stall-mid", "die")
        frames = reply.frames[:cut_after] if mid_fault else reply.frames
        # A gated stream holds every event after the first until the test opens the gate:
        # that proves, without timing, that a proxy relays before the next event exists.
        gate_name = request.headers.get(GATE_HEADER)
        gate = self._gates.setdefault(gate_name, asyncio.Event()) if gate_name else None
        try:
            await resp.prepare(request)
            for i, frame in enumerate(frames):
                if i and gate is not None:
                    await gate.wait()
                if i and knobs.delay:
                    await asyncio.sleep(knobs.delay)
                if self._stopping:
                    return _cut(request, resp)
                # A sync flush per event, so each event can be decoded as it arrives.
                data = packer.compress(frame) + packer.flush(zlib.Z_SYNC_FLUSH) if packer else frame
                await resp.write(data)
            if knobs.fault.kind == "die":
                return _cut(request, resp)
            if knobs.fault.kind == "stall-mid":
                return await self._hold(request, resp)
            await resp.write_eof(packer.flush() if packer else b"")
        except ConnectionError:
            # The client went away: stop at once; aiohttp drops the connection quietly.
            self._aborted += 1
        return resp

    async def _hold(self, request: web.Request, resp: web.StreamResponse) -> web.StreamResponse:
        """Send nothing more until the client leaves (counted) or the server stops."""
        while not self._stopping:
            if _gone(request):
                self._aborted += 1
                return resp
            await asyncio.sleep(STALL_POLL_S)
        return _cut(request, resp)


# --------------------------------------------------------------------------------------
# Standalone: python -m aiogw.fake_upstream --port N
# --------------------------------------------------------------------------------------


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m aiogw.fake_upstream", description="Fake Anthropic, OpenAI and Gemini APIs."
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--chunks", type=int, default=FakeConfig.chunks)
    parser.add_argument("--chunk-delay", type=float, default=FakeConfig.chunk_delay)
    parser.add_argument("--compress", action="store_true")
    parser.add_argument(
        "--lean", action="store_true", help=f"for bodies over {LEAN_MIN_BYTES} bytes, skip the text walk (bench mode)"
    )
    parser.add_argument(
        "--record", action="store_true", help="keep every request in memory (off: a bench run would grow without bound)"
    )
    return parser.parse_args(argv)


async def _serve_until_signal(config: FakeConfig, host: str, port: int) -> None:
    fake = FakeUpstream(config)
    bound = await fake.start(host, port)
    print(f"fake upstream listening on http://{host}:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await fake.stop()


def main(argv: Sequence[str] | None = None) -> None:
    args = _parse_args(argv)
    config = FakeConfig(
        anthropic_key=os.environ.get("FAKE_ANTHROPIC_KEY", FakeConfig.anthropic_key),
        openai_key=os.environ.get("FAKE_OPENAI_KEY", FakeConfig.openai_key),
        gemini_key=os.environ.get("FAKE_GEMINI_KEY", FakeConfig.gemini_key),
        chunks=args.chunks,
        chunk_delay=args.chunk_delay,
        compress=args.compress,
        record=args.record,
        lean=args.lean,
    )
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve_until_signal(config, args.host, args.port))
    else:
        uvloop.run(_serve_until_signal(config, args.host, args.port))


if __name__ == "__main__":
    main()
