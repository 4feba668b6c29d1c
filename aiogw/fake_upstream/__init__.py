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

from aiogw.fake_upstream.anthropic import (
    anthropic_auth,
    anthropic_count_tokens,
    anthropic_error,
    anthropic_headers,
    anthropic_message,
    anthropic_messages,
    anthropic_model,
    anthropic_models,
    anthropic_stream,
    anthropic_turn,
)
from aiogw.fake_upstream.gemini import (
    gemini_auth,
    gemini_batch_embed,
    gemini_chunk,
    gemini_chunks,
    gemini_count_tokens,
    gemini_embed,
    gemini_error,
    gemini_generate,
    gemini_headers,
    gemini_model,
    gemini_models,
    gemini_stream,
    gemini_turn,
)
from aiogw.fake_upstream.model import (
    CHUNKS_HEADER,
    DEFAULT_TEXT,
    DELAY_HEADER,
    EMBEDDING_DIMS,
    FAULT_HEADER,
    FAULT_KINDS,
    GATE_HEADER,
    JSON,
    LEAN_MIN_BYTES,
    MAX_BODY_BYTES,
    MAX_CHUNKS,
    MID_FAULT_EVENTS,
    SHELL_COMMAND,
    SHUTDOWN_TIMEOUT_S,
    STALL_POLL_S,
    TEXT_HEADER,
    Answer,
    BadRequest,
    Call,
    FakeConfig,
    Fault,
    JsonReply,
    Knobs,
    Received,
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
    parse_fault,
    pick_tool,
    split_text,
    sse,
    sse_data,
    strings,
    tool_arguments,
    words,
)
from aiogw.fake_upstream.openai import (
    chat_completion,
    chat_completions,
    chat_stream,
    chat_turn,
    embeddings,
    openai_auth,
    openai_error,
    openai_headers,
    openai_model,
    openai_models,
    response_object,
    responses,
    responses_events,
    responses_input_tokens,
    responses_turn,
)
from aiogw.fake_upstream.server import (
    ANTHROPIC,
    GEMINI,
    OPENAI,
    Dialect,
    Endpoint,
    FakeUpstream,
    Route,
    pick_dialect,
    read_knobs,
)

__all__ = [
    "ANTHROPIC",
    "CHUNKS_HEADER",
    "DEFAULT_TEXT",
    "DELAY_HEADER",
    "EMBEDDING_DIMS",
    "FAULT_HEADER",
    "FAULT_KINDS",
    "GATE_HEADER",
    "GEMINI",
    "JSON",
    "LEAN_MIN_BYTES",
    "MAX_BODY_BYTES",
    "MAX_CHUNKS",
    "MID_FAULT_EVENTS",
    "OPENAI",
    "SHELL_COMMAND",
    "SHUTDOWN_TIMEOUT_S",
    "STALL_POLL_S",
    "TEXT_HEADER",
    "Answer",
    "BadRequest",
    "Call",
    "Dialect",
    "Endpoint",
    "FakeConfig",
    "FakeUpstream",
    "Fault",
    "JsonReply",
    "Knobs",
    "Received",
    "Reply",
    "Route",
    "StreamReply",
    "Strs",
    "Tool",
    "Turn",
    "answer",
    "anthropic_auth",
    "anthropic_count_tokens",
    "anthropic_error",
    "anthropic_headers",
    "anthropic_message",
    "anthropic_messages",
    "anthropic_model",
    "anthropic_models",
    "anthropic_stream",
    "anthropic_turn",
    "as_dict",
    "as_list",
    "chat_completion",
    "chat_completions",
    "chat_stream",
    "chat_turn",
    "embedding",
    "embeddings",
    "gemini_auth",
    "gemini_batch_embed",
    "gemini_chunk",
    "gemini_chunks",
    "gemini_count_tokens",
    "gemini_embed",
    "gemini_error",
    "gemini_generate",
    "gemini_headers",
    "gemini_model",
    "gemini_models",
    "gemini_stream",
    "gemini_turn",
    "joined",
    "make_turn",
    "openai_auth",
    "openai_error",
    "openai_headers",
    "openai_model",
    "openai_models",
    "parse_fault",
    "pick_dialect",
    "pick_tool",
    "read_knobs",
    "response_object",
    "responses",
    "responses_events",
    "responses_input_tokens",
    "responses_turn",
    "split_text",
    "sse",
    "sse_data",
    "strings",
    "tool_arguments",
    "words",
]
