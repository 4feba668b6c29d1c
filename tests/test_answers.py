"""Dialect.answer: streams read back into the non-streaming response, usage by the rate
it is billed at, cut streams and error envelopes. Built from the fake upstream's own
response builders, so the fake's JSON answer is the expected result of its stream."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from aiogw import fake_upstream as fake
from aiogw.dialects.anthropic import ANTHROPIC
from aiogw.dialects.base import Answer, Dialect, Usage
from aiogw.dialects.gemini import GEMINI
from aiogw.dialects.openai import OPENAI

TEXT = "Grüße aus Köln — 日本語のテキスト 🎉 fin."
CHUNKS = 6
LONG = "Please look at this. " * 30  # enough prompt for non-trivial token counts


@dataclass(frozen=True)
class Case:
    """One request answered both ways by the fake, plus how to read its text."""

    dialect: Dialect
    endpoint: str
    json: dict[str, Any]
    stream: bytes
    usage: Usage
    text: Callable[[dict[str, Any]], Any]


def _anthropic(tool: bool) -> Case:
    body: dict[str, Any] = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 512,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": LONG}],
    }
    if tool:
        schema = {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}
        body["tools"] = [{"name": "bash", "description": "Run a command", "input_schema": schema}]
    raw = orjson.dumps(body)
    ans = fake.answer(fake.anthropic_turn(body, raw), raw, TEXT, CHUNKS)
    usage = Usage(input=ans.input_tokens - ans.cached_tokens, output=ans.output_tokens, cache_read=ans.cached_tokens)
    return Case(
        ANTHROPIC,
        "messages",
        fake.anthropic_message(ans, "claude-sonnet-4-6"),
        b"".join(fake.anthropic_stream(ans, "claude-sonnet-4-6")),
        usage,
        lambda m: m["content"][0].get("text", m["content"][0].get("input")),
    )


def _openai_usage(ans: fake.Answer) -> Usage:
    return Usage(input=ans.input_tokens - ans.cached_tokens, output=ans.output_tokens, cache_read=ans.cached_tokens)


def _chat(tool: bool) -> Case:
    body: dict[str, Any] = {
        "model": "gpt-4o",
        "prompt_cache_key": "session-1",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": LONG}],
    }
    if tool:
        params = {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]}
        body["tools"] = [{"type": "function", "function": {"name": "exec_shell", "parameters": params}}]
    raw = orjson.dumps(body)
    ans = fake.answer(fake.chat_turn(body, raw), raw, TEXT, CHUNKS)
    return Case(
        OPENAI,
        "chat",
        fake.chat_completion(ans, "gpt-4o"),
        b"".join(fake.chat_stream(ans, "gpt-4o", include_usage=True)),
        _openai_usage(ans),
        lambda m: m["choices"][0]["message"].get("content") or m["choices"][0]["message"]["tool_calls"],
    )


def _responses(tool: bool) -> Case:
    body: dict[str, Any] = {"model": "gpt-5", "instructions": "Be brief.", "input": LONG, "prompt_cache_key": "k"}
    if tool:
        params = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}
        body["tools"] = [{"type": "function", "name": "read_file", "parameters": params}]
    raw = orjson.dumps(body)
    ans = fake.answer(fake.responses_turn(body, raw), raw, TEXT, CHUNKS)
    frames = [fake.sse(e["type"], e) for e in fake.responses_events(ans, body)]
    return Case(
        OPENAI,
        "responses",
        fake.response_object(ans, body, done=True),
        b"".join(frames),
        _openai_usage(ans),
        lambda m: (m["output"][0].get("content") or [{}])[0].get("text", m["output"][0].get("arguments")),
    )


def _gemini(tool: bool, sse: bool) -> Case:
    body: dict[str, Any] = {
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "contents": [{"role": "user", "parts": [{"text": LONG}]}],
        "cachedContent": "cachedContents/abc",
    }
    if tool:
        decl = {"name": "get_weather", "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}}}
        body["tools"] = [
            {"functionDeclarations": [{**decl, "parameters": {**decl["parameters"], "required": ["city"]}}]}
        ]
    raw = orjson.dumps(body)
    call = fake.Call(body, raw, {"alt": "sse"} if sse else {}, {"model": "gemini-2.5-pro"}, TEXT, CHUNKS)
    json_reply, stream_reply = fake.gemini_generate(call), fake.gemini_stream(call)
    assert isinstance(json_reply, fake.JsonReply) and isinstance(stream_reply, fake.StreamReply)
    ans = fake.answer(fake.gemini_turn(body, raw), raw, TEXT, CHUNKS)
    usage = Usage(input=ans.input_tokens - ans.cached_tokens, output=ans.output_tokens, cache_read=ans.cached_tokens)
    return Case(
        GEMINI,
        "stream_generate",
        json_reply.body,
        b"".join(stream_reply.frames),
        usage,
        lambda m: m["candidates"][0]["content"]["parts"][0].get("text"),
    )


CASES = {
    "anthropic-text": _anthropic(False),
    "anthropic-tool": _anthropic(True),
    "chat-text": _chat(False),
    "chat-tool": _chat(True),
    "responses-text": _responses(False),
    "responses-tool": _responses(True),
    "gemini-sse-text": _gemini(False, True),
    "gemini-sse-tool": _gemini(True, True),
    "gemini-array-text": _gemini(False, False),
    "gemini-array-tool": _gemini(True, False),
}


def same_response(message: dict[str, Any]) -> dict[str, Any]:
    """Drop what legitimately differs between a stream and a JSON answer: timestamps,
    and the empty `annotations` a chat completion has but chat deltas never send."""
    out = {k: v for k, v in message.items() if k not in ("created", "created_at")}
    if "choices" in out:
        out["choices"] = [
            {**c, "message": {k: v for k, v in c["message"].items() if k != "annotations"}} for c in out["choices"]
        ]
    return out


# --- whole answers ---------------------------------------------------------------------


@pytest.mark.parametrize("name", CASES)
def test_json_answer(name):
    case = CASES[name]
    answer = case.dialect.answer(case.endpoint, 200, False, orjson.dumps(case.json))
    assert answer.message == case.json
    assert answer.usage == case.usage
    assert answer.complete and answer.error is None
    assert answer.usage.cache_read > 0  # the cases ask for caching, so the split is tested


@pytest.mark.parametrize("name", CASES)
def test_stream_reads_back_as_the_json_answer(name):
    case = CASES[name]
    whole = case.dialect.answer(case.endpoint, 200, False, orjson.dumps(case.json))
    answer = case.dialect.answer(case.endpoint, 200, True, case.stream)
    assert answer.message is not None
    assert same_response(answer.message) == same_response(case.json)
    assert answer.usage == case.usage
    assert answer.complete and answer.error is None
    assert (answer.model, answer.stop_reason) == (whole.model, whole.stop_reason)
    assert answer.model and answer.stop_reason


def test_stop_reasons_and_models():
    read = {name: c.dialect.answer(c.endpoint, 200, True, c.stream) for name, c in CASES.items()}
    assert read["anthropic-tool"].stop_reason == "tool_use"
    assert read["chat-text"].stop_reason == "stop"
    assert read["chat-tool"].stop_reason == "tool_calls"
    assert read["responses-text"].stop_reason == "completed"
    assert read["gemini-sse-text"].stop_reason == "STOP"
    assert read["gemini-array-text"].model == "gemini-2.5-pro"


def test_tool_calls_are_reassembled():
    anthropic = ANTHROPIC.answer("messages", 200, True, CASES["anthropic-tool"].stream).message
    assert anthropic is not None
    assert anthropic["content"][0]["input"] == {"command": fake.SHELL_COMMAND}
    chat = OPENAI.answer("chat", 200, True, CASES["chat-tool"].stream).message
    assert chat is not None
    call = chat["choices"][0]["message"]["tool_calls"][0]
    assert orjson.loads(call["function"]["arguments"]) == {"cmd": fake.SHELL_COMMAND}
    assert "index" not in call


# --- cut streams -----------------------------------------------------------------------


def cut_points(data: bytes) -> list[int]:
    """Every 3rd byte, and every byte inside a multi-byte UTF-8 character."""
    inside = [i for i, b in enumerate(data) if 0x80 <= b < 0xC0]
    return sorted({*range(0, len(data), 3), *inside})


def text_so_far(case: Case, message: dict[str, Any] | None) -> Any:
    """The answer's text in a partial message, or None where there is none yet."""
    try:
        return case.text(message) if message else None
    except (IndexError, KeyError, TypeError):
        return None


def _le(a: Usage, b: Usage) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("name", CASES)
def test_cut_streams_are_incomplete_and_never_raise(name):
    case = CASES[name]
    full_text = case.text(case.json)
    previous = Usage()
    # Gemini's SSE has no end marker: dropping only its very last byte (an LF after a
    # lone CR, itself a line end) still leaves the whole last event.
    end = len(case.stream) - 1 if name.startswith("gemini-sse") else len(case.stream)
    for at in cut_points(case.stream[:end]):
        answer = case.dialect.answer(case.endpoint, 200, True, case.stream[:at])
        assert not answer.complete, at
        assert answer.error is None
        assert _le(answer.usage, case.usage) and answer.usage.output >= previous.output, at
        previous = answer.usage
        text = text_so_far(case, answer.message)
        if isinstance(text, str) and isinstance(full_text, str):
            assert full_text.startswith(text), at


def test_anthropic_cut_after_message_start_has_input_usage():
    case = CASES["anthropic-text"]
    first = case.stream.index(b"\n\n") + 2
    answer = ANTHROPIC.answer("messages", 200, True, case.stream[: first + 10])
    assert answer.usage == Usage(input=case.usage.input, output=1, cache_read=case.usage.cache_read)
    assert answer.message is not None and answer.message["content"] == []
    assert not answer.complete


def test_anthropic_cut_tool_input_keeps_the_raw_string():
    case = CASES["anthropic-tool"]
    at = case.stream.index(b"content_block_stop")  # all pieces but the block is open
    answer = ANTHROPIC.answer("messages", 200, True, case.stream[:at])
    assert answer.message is not None
    assert answer.message["content"][0]["input"] == {"command": fake.SHELL_COMMAND}
    half = case.stream.index(b"input_json_delta") + 200
    answer = ANTHROPIC.answer("messages", 200, True, case.stream[:half])
    assert answer.message is not None
    partial = answer.message["content"][0]["input"]
    assert isinstance(partial, str) and partial.startswith('{"')


def test_chat_cut_before_usage_chunk_has_zero_usage():
    case = CASES["chat-text"]
    at = case.stream.index(b'"choices":[]')
    at = case.stream.rindex(b"data:", 0, at)
    answer = OPENAI.answer("chat", 200, True, case.stream[:at])
    assert answer.usage == Usage()
    assert answer.message is not None and answer.message["choices"][0]["message"]["content"] == TEXT
    assert not answer.complete


def test_gemini_cut_has_the_last_chunk_usage():
    case = CASES["gemini-sse-text"]
    frames = case.stream.split(b"\r\n\r\n")[:-1]
    for k in range(1, len(frames)):
        body = b"\r\n\r\n".join(frames[:k]) + b"\r\n\r\n" + frames[k][:30]
        answer = GEMINI.answer("stream_generate", 200, True, body)
        expected = orjson.loads(frames[k - 1][len(b"data: ") :])["usageMetadata"]["candidatesTokenCount"]
        assert answer.usage.output == expected and not answer.complete


def test_gemini_sse_cut_on_an_event_boundary_is_incomplete():
    case = CASES["gemini-sse-text"]
    first = case.stream.index(b"\r\n\r\n") + 4
    answer = GEMINI.answer("stream_generate", 200, True, case.stream[:first])
    assert answer.message is not None and not answer.complete


def test_responses_cut_before_completed_assembles_the_output():
    case = CASES["responses-text"]
    at = case.stream.index(b"event: response.output_text.done")
    answer = OPENAI.answer("responses", 200, True, case.stream[:at])
    assert answer.message is not None
    assert answer.message["output"][0]["content"][0]["text"] == TEXT
    assert answer.message["status"] == "in_progress"
    assert answer.usage == Usage() and not answer.complete


# --- usage semantics -------------------------------------------------------------------


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(fake.sse(e["type"], e) for e in events)


def _anthropic_events(start_usage: dict[str, Any], end_usage: dict[str, Any]) -> bytes:
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-opus-4-6", "content": []}
    return sse(
        {"type": "message_start", "message": {**message, "stop_reason": None, "usage": start_usage}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": end_usage},
        {"type": "message_stop"},
    )


def test_anthropic_message_delta_usage_merges_with_message_start():
    start = {
        "input_tokens": 10,
        "cache_creation_input_tokens": 100,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 60, "ephemeral_1h_input_tokens": 40},
        "output_tokens": 1,
    }
    # Newer models report final input and cache counts at the end; nulls change nothing.
    end = {"input_tokens": 12, "cache_read_input_tokens": 7, "cache_creation_input_tokens": None, "output_tokens": 30}
    answer = ANTHROPIC.answer("messages", 200, True, _anthropic_events(start, end))
    assert answer.usage == Usage(input=12, output=30, cache_read=7, cache_write=100, cache_write_1h=40)
    assert answer.message is not None and answer.message["usage"]["cache_creation_input_tokens"] == 100
    assert answer.stop_reason == "end_turn" and answer.complete


def test_anthropic_message_delta_with_output_only():
    start = {"input_tokens": 5, "cache_read_input_tokens": 3, "output_tokens": 1}
    answer = ANTHROPIC.answer("messages", 200, True, _anthropic_events(start, {"output_tokens": 9}))
    assert answer.usage == Usage(input=5, output=9, cache_read=3)


def test_anthropic_thinking_and_several_blocks():
    message = {"id": "m", "type": "message", "role": "assistant", "model": "claude", "content": [], "usage": {}}
    stream = sse(
        {"type": "message_start", "message": message},
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "thinking", "thinking": "", "signature": ""},
        },
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Let me "}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "think."}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "sig=="}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Done."}},
        {"type": "content_block_stop", "index": 1},
        {
            "type": "content_block_start",
            "index": 2,
            "content_block": {"type": "tool_use", "id": "t", "name": "x", "input": {}},
        },
        {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": ""}},
        {"type": "content_block_stop", "index": 2},
        {
            "type": "content_block_start",
            "index": 3,
            "content_block": {"type": "tool_use", "id": "u", "name": "y", "input": {}},
        },
        {"type": "content_block_delta", "index": 3, "delta": {"type": "input_json_delta", "partial_json": '{"a": '}},
        {"type": "content_block_stop", "index": 3},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 20}},
        {"type": "message_stop"},
    )
    answer = ANTHROPIC.answer("messages", 200, True, stream)
    assert answer.message is not None
    assert answer.message["content"] == [
        {"type": "thinking", "thinking": "Let me think.", "signature": "sig=="},
        {"type": "text", "text": "Done."},
        {"type": "tool_use", "id": "t", "name": "x", "input": {}},
        {"type": "tool_use", "id": "u", "name": "y", "input": '{"a": '},  # did not parse: kept raw
    ]
    assert answer.complete and answer.usage.output == 20


def test_openai_chat_usage_subtracts_cached_and_counts_reasoning():
    body = {
        "id": "c",
        "object": "chat.completion",
        "model": "o3",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": 1000,
            "completion_tokens": 300,
            "prompt_tokens_details": {"cached_tokens": 800},
            "completion_tokens_details": {"reasoning_tokens": 250},
        },
    }
    answer = OPENAI.answer("chat", 200, False, orjson.dumps(body))
    assert answer.usage == Usage(input=200, output=300, cache_read=800, reasoning=250)


def test_openai_chat_stream_without_usage_chunk_has_zero_usage():
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    raw = orjson.dumps(body)
    ans = fake.answer(fake.chat_turn(body, raw), raw, TEXT, CHUNKS)
    answer = OPENAI.answer("chat", 200, True, b"".join(fake.chat_stream(ans, "gpt-4o", include_usage=False)))
    assert answer.usage == Usage() and answer.complete
    assert answer.message is not None and "usage" not in answer.message


def test_openai_compatible_nulls_and_obfuscation():
    chunks = [
        {
            "id": "x",
            "object": "chat.completion.chunk",
            "model": "llama",
            "obfuscation": "pad",
            "choices": [{"index": 0, "delta": {"role": "assistant", "reasoning_content": "hm"}}],
        },
        {
            "id": "x",
            "object": "chat.completion.chunk",
            "model": "llama",
            "choices": [{"index": 0, "delta": {"content": "ok", "reasoning_content": "m"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "prompt_tokens_details": None},
        },
    ]
    stream = b"".join(fake.sse_data(c) for c in chunks) + b"data: [DONE]\n\n"
    answer = OPENAI.answer("chat", 200, True, stream)
    assert answer.message is not None and "obfuscation" not in answer.message
    assert answer.message["choices"][0]["message"] == {"role": "assistant", "content": "ok", "reasoning_content": "hmm"}
    assert answer.usage == Usage(input=5, output=2) and answer.complete


def test_responses_usage_and_incomplete():
    response = {
        "id": "r",
        "object": "response",
        "model": "gpt-5",
        "status": "incomplete",
        "incomplete_details": {"reason": "max_output_tokens"},
        "output": [{"type": "reasoning", "id": "rs", "summary": []}],
        "usage": {
            "input_tokens": 900,
            "input_tokens_details": {"cached_tokens": 600},
            "output_tokens": 50,
            "output_tokens_details": {"reasoning_tokens": 50},
        },
    }
    stream = sse(
        {"type": "response.created", "response": {**response, "status": "in_progress", "output": [], "usage": None}},
        {"type": "response.incomplete", "response": response},
    )
    answer = OPENAI.answer("responses", 200, True, stream)
    assert answer.usage == Usage(input=300, output=50, cache_read=600, reasoning=50)
    assert answer.stop_reason == "max_output_tokens" and answer.complete
    assert answer.message == response


def test_responses_completed_without_output_is_assembled():
    item = {"id": "rs_1", "type": "reasoning", "summary": []}
    done = {"id": "r", "object": "response", "model": "gpt-5", "status": "completed", "output": [], "usage": None}
    stream = sse(
        {"type": "response.created", "response": {**done, "status": "in_progress"}},
        {"type": "response.output_item.added", "output_index": 0, "item": item},
        {
            "type": "response.reasoning_summary_part.added",
            "item_id": "rs_1",
            "output_index": 0,
            "summary_index": 0,
            "part": {"type": "summary_text", "text": ""},
        },
        {
            "type": "response.reasoning_summary_text.delta",
            "item_id": "rs_1",
            "output_index": 0,
            "summary_index": 0,
            "delta": "Thinking",
        },
        {"type": "response.reasoning_summary_text.delta", "item_id": "rs_1", "summary_index": 0, "delta": " hard"},
        {
            "type": "response.output_item.added",
            "output_index": 1,
            "item": {"id": "m", "type": "message", "role": "assistant", "content": []},
        },
        {"type": "response.output_text.delta", "output_index": 1, "content_index": 0, "delta": "Hi"},
        {"type": "response.codex.undocumented", "whatever": 1},
        {"type": "response.completed", "response": done},
    )
    answer = OPENAI.answer("responses", 200, True, stream)
    assert answer.message is not None and answer.complete
    assert answer.message["output"] == [
        {**item, "summary": [{"type": "summary_text", "text": "Thinking hard"}]},
        {
            "id": "m",
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Hi", "annotations": []}],
        },
    ]


def test_gemini_usage_semantics():
    body = {
        "candidates": [{"content": {"role": "model", "parts": [{"text": "x"}]}, "finishReason": "STOP"}],
        "usageMetadata": {
            "promptTokenCount": 1000,
            "cachedContentTokenCount": 700,
            "toolUsePromptTokenCount": 50,
            "candidatesTokenCount": 40,
            "thoughtsTokenCount": 160,
            "totalTokenCount": 1250,
        },
        "modelVersion": "gemini-2.5-pro",
    }
    answer = GEMINI.answer("generate", 200, False, orjson.dumps(body))
    assert answer.usage == Usage(input=350, output=200, cache_read=700, reasoning=160)


def test_gemini_thought_parts_and_signatures_join_by_kind():
    chunks = [
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "Plan ", "thought": True}]}, "index": 0}]},
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "more.", "thought": True}]}, "index": 0}]},
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "Answer"}]}, "index": 0}]},
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "", "thoughtSignature": "c2ln"}]}}]},
        {"candidates": [{"content": {"role": "model", "parts": [{"text": " more"}]}}]},
        {"candidates": [{"content": {"role": "model", "parts": [{"thoughtSignature": "c2ln2"}]}}]},
        {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]},
                    "finishReason": "STOP",
                }
            ],
            "usageMetadata": {"promptTokenCount": 3},
        },
    ]
    body = b"".join(b"data: " + orjson.dumps(c) + b"\r\n\r\n" for c in chunks)
    answer = GEMINI.answer("stream_generate", 200, True, body)
    assert answer.message is not None and answer.complete
    assert answer.message["candidates"][0]["content"]["parts"] == [
        {"text": "Plan more.", "thought": True},
        {"text": "Answer", "thoughtSignature": "c2ln"},
        {"text": " more", "thoughtSignature": "c2ln2"},  # a signature-only part, no text at all
        {"functionCall": {"name": "f", "args": {}}},
    ]


def test_gemini_blocked_prompt_is_complete():
    chunk = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 9}}
    answer = GEMINI.answer("stream_generate", 200, True, b"data: " + orjson.dumps(chunk) + b"\r\n\r\n")
    assert answer.complete and answer.usage.input == 9


@pytest.mark.parametrize(
    ("dialect", "endpoint", "reply", "usage"),
    [
        (
            OPENAI,
            "embeddings",
            fake.embeddings(fake.Call({"model": "e", "input": ["abcdefgh", "ijkl"]}, b"", {}, {}, "", 1)),
            Usage(input=3),
        ),
        (
            GEMINI,
            "embed",
            fake.gemini_embed(fake.Call({"content": {"parts": [{"text": "x"}]}}, b"", {}, {}, "", 1)),
            Usage(),
        ),
        (ANTHROPIC, "count_tokens", fake.JsonReply({"input_tokens": 1234}), Usage()),
        (GEMINI, "count_tokens", fake.JsonReply({"totalTokens": 12}), Usage()),
    ],
)
def test_embeddings_and_counting(dialect, endpoint, reply, usage):
    """Embeddings bill input only; counting tokens bills nothing (the count is the message)."""
    answer = dialect.answer(endpoint, 200, False, orjson.dumps(reply.body))
    assert answer.usage == usage and answer.complete and answer.message == reply.body


def test_unknown_endpoint_best_effort():
    body = {"usage": {"input_tokens": 3, "output_tokens": 4}, "model": "m"}
    answer = ANTHROPIC.answer("other", 200, False, orjson.dumps(body))
    assert answer.usage == Usage(input=3, output=4) and answer.model == "m"
    # stream=True, but the upstream answered one JSON object
    assert OPENAI.answer("chat", 200, True, orjson.dumps(CASES["chat-text"].json)).usage == CASES["chat-text"].usage


# --- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dialect", "endpoint", "reply"),
    [
        (ANTHROPIC, "messages", fake.anthropic_error(429)),
        (ANTHROPIC, "messages", fake.anthropic_error(529)),
        (OPENAI, "chat", fake.openai_error(401, "bad key")),
        (OPENAI, "responses", fake.openai_error(500)),
        (GEMINI, "generate", fake.gemini_error(429)),
        (GEMINI, "stream_generate", fake.gemini_error(503)),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_error_envelopes(dialect, endpoint, reply, stream):
    answer = dialect.answer(endpoint, reply.status, stream, orjson.dumps(reply.body))
    assert answer.error == reply.body
    assert answer.message is None and answer.usage == Usage() and answer.complete
    # The same envelope under a 200 (an upstream that says "error" in its body): the
    # usage read alone is what the whole read finds, nothing.
    alone = dialect.usage(endpoint, stream, orjson.dumps(reply.body))
    assert alone is None or alone == dialect.answer(endpoint, 200, stream, orjson.dumps(reply.body)).usage == Usage()


def test_gemini_error_in_a_json_array_and_non_json_errors():
    envelope = fake.gemini_error(400, "bad").body
    assert GEMINI.answer("stream_generate", 400, True, b"[" + orjson.dumps(envelope) + b"]").error == envelope
    answer = OPENAI.answer("chat", 502, False, b"<html>Bad Gateway</html>")
    assert answer.error == {"raw": "<html>Bad Gateway</html>"} and not answer.complete


def test_error_events_mid_stream():
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    head = CASES["anthropic-text"].stream.split(b"\n\n")
    body = b"\n\n".join(head[:4]) + b"\n\n" + fake.sse("error", overloaded)
    answer = ANTHROPIC.answer("messages", 200, True, body)
    assert answer.error == overloaded and not answer.complete and answer.message is not None

    chat_error = {"error": {"message": "server had an error", "type": "server_error", "param": None, "code": None}}
    chat = CASES["chat-text"].stream.split(b"\n\n")
    answer = OPENAI.answer("chat", 200, True, b"\n\n".join(chat[:3]) + b"\n\n" + fake.sse_data(chat_error))
    assert answer.error == chat_error and not answer.complete

    event = {"type": "error", "code": "server_error", "message": "boom", "param": None, "sequence_number": 3}
    answer = OPENAI.answer("responses", 200, True, sse(event))
    assert answer.error == event and not answer.complete

    failed = {
        "id": "r",
        "object": "response",
        "status": "failed",
        "error": {"code": "server_error", "message": "x"},
        "output": [],
        "usage": {"input_tokens": 10, "output_tokens": 0},
    }
    answer = OPENAI.answer("responses", 200, True, sse({"type": "response.failed", "response": failed}))
    assert answer.error == failed["error"] and not answer.complete and answer.usage.input == 10

    gemini_error = fake.gemini_error(500).body
    answer = GEMINI.answer("stream_generate", 200, True, b"data: " + orjson.dumps(gemini_error) + b"\r\n\r\n")
    assert answer.error == gemini_error and not answer.complete


# --- request ids -----------------------------------------------------------------------


def test_request_ids():
    from multidict import CIMultiDict

    assert ANTHROPIC.request_id(CIMultiDict({"Request-Id": "req_1"})) == "req_1"
    assert OPENAI.request_id(CIMultiDict({"X-Request-ID": "req_2"})) == "req_2"
    assert GEMINI.request_id(CIMultiDict({"x-request-id": "nope"})) is None
    assert ANTHROPIC.request_id(CIMultiDict()) is None


# --- never raises ----------------------------------------------------------------------

_WORDS = st.sampled_from(
    "message_start content_block_delta text_delta input_json_delta response.completed"
    " response.output_text.delta error [DONE]".split()
)
_KEYS = st.sampled_from(
    "type index delta message usage content_block choices candidates content parts text response"
    " output_index content_index item error tool_calls function arguments output input_tokens usageMetadata".split()
)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**6) | st.text(max_size=8) | _WORDS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=5),
    max_leaves=20,
)


def _body(events: list, form: str, junk: bytes) -> bytes:
    """A response body of the generated events in one of the forms providers use, or junk."""
    if form == "sse":
        return b"".join(fake.sse(str(e.get("type") if isinstance(e, dict) else "x"), e) for e in events)
    if form == "array":
        return b"[" + b",".join(orjson.dumps(e) for e in events)
    if form == "json":
        return orjson.dumps(events[0] if events else {})
    return junk


@settings(max_examples=150, deadline=None)
@given(
    events=st.lists(_json, max_size=6),
    dialect=st.sampled_from([ANTHROPIC, OPENAI, GEMINI]),
    endpoint=st.sampled_from(["messages", "chat", "responses", "stream_generate", "generate", "other"]),
    status=st.sampled_from([200, 400, 500]),
    form=st.sampled_from(["sse", "array", "json", "bytes"]),
    junk=st.binary(max_size=20),
)
def test_never_raises(events, dialect, endpoint, status, form, junk):
    body = _body(events, form, junk)
    for stream in (True, False):
        answer = dialect.answer(endpoint, status, stream, body)
        assert isinstance(answer, Answer)
        orjson.dumps(answer.message)  # plain data all the way down


@pytest.mark.parametrize("name", CASES)
def test_usage_alone_is_the_whole_reads_usage_wherever_the_stream_ends(name):
    """What a user's limits are charged at the end of a stream (its usage events alone)
    is what the whole answer read back says, for a whole stream and one cut anywhere.
    Anthropic, chat, Responses and Gemini SSE streams are read so; Gemini's JSON array
    is read whole (None)."""
    case = CASES[name]
    whole = case.dialect.stream_usage(case.endpoint, case.stream)
    if name.startswith("gemini-array"):
        assert whole is None
        return
    assert whole == case.usage
    for at in cut_points(case.stream):
        body = case.stream[:at]
        alone = case.dialect.stream_usage(case.endpoint, body)
        if alone is not None:  # None: not plain to the end (cut mid-event): read whole
            assert alone == case.dialect.answer(case.endpoint, 200, True, body).usage, at
    # Unnamed events (Anthropic, Responses need the names), another endpoint: read whole.
    unnamed = b"".join(b"data: " + line[6:] + b"\n\n" for line in case.stream.split(b"\n") if line[:6] == b"data: ")
    if not name.startswith(("chat", "gemini")):  # Gemini's events have no names anyway
        assert case.dialect.stream_usage(case.endpoint, unnamed) is None
    assert case.dialect.stream_usage("embeddings" if name.startswith(("chat", "responses")) else "count_tokens",
                                     case.stream) is None


@pytest.mark.parametrize("name", CASES)
def test_usage_of_a_json_answer_alone_is_the_whole_reads(name):
    """What limits charge when nothing else reads the answer: the usage object alone,
    whatever the stream flag said (an upstream may answer a stream with one object)."""
    case = CASES[name]
    body = orjson.dumps(case.json)
    for stream in (False, True):
        assert case.dialect.usage(case.endpoint, stream, body) == case.usage


@settings(max_examples=150, deadline=None)
@given(
    events=st.lists(_json, max_size=6),
    dialect=st.sampled_from([ANTHROPIC, OPENAI, GEMINI]),
    endpoint=st.sampled_from(["messages", "chat", "responses", "stream_generate", "generate", "other"]),
    form=st.sampled_from(["sse", "array", "json", "bytes"]),
    junk=st.binary(max_size=20),
)
def test_usage_alone_is_none_or_the_whole_reads(events, dialect, endpoint, form, junk):
    body = _body(events, form, junk)
    for stream in (True, False):
        alone = dialect.usage(endpoint, stream, body)
        assert alone is None or alone == dialect.answer(endpoint, 200, stream, body).usage


def test_gemini_usage_alone_never_trusts_a_key_spelled_otherwise_or_a_lone_cr():
    """A later chunk can spell usageMetadata with escapes, and a lone CR ends an SSE line
    where JSON sees whitespace: both are read whole, so the charge is the whole read's."""
    first = b'data: {"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":1}}\r\n\r\n'
    escaped = first + b'data: {"usage\\u004detadata":{"promptTokenCount":7,"candidatesTokenCount":70}}\r\n\r\n'
    lone_cr = b'data: {"usageMetadata":{"promptTokenCount":9,"candidatesTokenCount":9},"a"\r:1}\r\n\r\n'
    for body in (escaped, first[:-4] + b'\r' + lone_cr[6:], lone_cr):
        alone = GEMINI.stream_usage("stream_generate", body)
        assert alone is None or alone == GEMINI.answer("stream_generate", 200, True, body).usage
    assert GEMINI.stream_usage("stream_generate", escaped) is None
    assert GEMINI.answer("stream_generate", 200, True, escaped).usage == Usage(input=7, output=70)
    assert GEMINI.stream_usage("stream_generate", first) == Usage(input=5, output=1)


def _block(kind: str, data: dict | str, shape: str) -> bytes:
    raw = data.encode() if isinstance(data, str) else orjson.dumps(data)
    if shape == "id":  # a field between the event and data lines
        return f"event: {kind}\nid: 7\n".encode() + b"data: " + raw + b"\n\n"
    if shape == "nameless":
        return b"data: " + raw + b"\n\n"
    return f"event: {kind}\n".encode() + b"data: " + raw + b"\n\n"


_ANTHROPIC_BLOCKS = st.one_of(
    st.tuples(st.just("message_start"), st.builds(
        lambda i, o: {"type": "message_start", "message": {"usage": {"input_tokens": i, "output_tokens": o}}},
        st.integers(0, 9), st.integers(0, 9))),
    st.tuples(st.just("message_delta"), st.builds(
        lambda o, c: {"type": "message_delta", "usage": {"output_tokens": o, "cache_read_input_tokens": c}},
        st.integers(0, 99), st.integers(0, 9))),
    st.tuples(st.just("content_block_delta"), st.builds(
        lambda t: {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}},
        st.sampled_from(["hi", "\nevent: message_delta\ndata: {}\n\n", "event: message_start", "\r\n"]))),
    st.tuples(st.just("message_stop"), st.just({"type": "message_stop"})),
    st.tuples(st.just("message_delta"), st.just("{not json")),
)


_START_0 = ("message_start", {"type": "message_start", "message": {"usage": {"input_tokens": 0, "output_tokens": 0}}})
_START_9 = ("message_start", {"type": "message_start", "message": {"usage": {"input_tokens": 9}}})
_DELTA_5 = ("message_delta", {"type": "message_delta", "usage": {"output_tokens": 5}})


@settings(max_examples=300, deadline=None)
@example(blocks=[(_START_0, "plain"), (_DELTA_5, "nameless")], start=False, cut=0)  # a usage event without a name
@example(blocks=[(_START_0, "plain"), (("content_block_delta", _DELTA_5[1]), "plain")], start=False, cut=0)  # misnamed
@example(blocks=[(_START_0, "plain"), (_DELTA_5, "id"), (_DELTA_5, "plain")], start=False, cut=0)  # two, one odd
@example(blocks=[(_START_0, "plain"), (_DELTA_5, "plain"), (("message_stop", {"type": "message_stop"}), "plain"),
                 (("content_block_delta", _DELTA_5[1]), "plain")], start=False, cut=0)  # one hidden after the end
@example(blocks=[(_START_0, "plain"), (("content_block_delta", _START_9[1]), "plain"), (_DELTA_5, "plain")],
         start=False, cut=0)  # one hidden before the last
@example(blocks=[(_START_0, "plain"), (_DELTA_5, "plain"),
                 (("ping", '{"type": "\\u006dessage_delta", "usage": {"output_tokens": 7}}'), "plain")],
         start=False, cut=0)  # a type spelled with escapes
@example(blocks=[(("message_delta", "{not json"), "plain"), (_DELTA_5, "plain")], start=True, cut=0)  # broken between
@given(blocks=st.lists(st.tuples(_ANTHROPIC_BLOCKS, st.sampled_from(["plain"] * 6 + ["id", "nameless"])),
                       max_size=8),
       start=st.booleans(), cut=st.integers(0, 3))
def test_anthropic_usage_found_by_search_is_the_whole_reads(blocks, start, cut):
    """The usage of an Anthropic stream is found by searching its bytes for its two
    usage events (or, failing that, by splitting it into events); whenever the usage
    alone is given, it is what the whole read answers, for any mix of events, text that
    spells event lines, events named otherwise than their type, odd shapes, cut ends."""
    from aiogw.dialects import anthropic
    from aiogw.sse import plain_events

    head = [(("message_start", {"type": "message_start", "message": {"usage": {"input_tokens": 3}}}), "plain")]
    body = b"".join(_block(kind, data, shape) for (kind, data), shape in (head if start else []) + blocks)
    body = body[: len(body) - cut]
    alone = anthropic.stream_usage(body)
    if alone is not None:
        assert alone == ANTHROPIC.answer("messages", 200, True, body).usage
    found = anthropic.usage_events(body)
    events = plain_events(body)
    if alone is not None and found is not None and events is not None:  # what the search vouched for
        assert _usage_payloads(found) == _usage_payloads(events)


def _usage_payloads(events: list[tuple[str, bytes]]) -> list[dict]:
    """The payloads the whole read folds into usage: those of the two usage types, by
    type and not by event name; data that is not JSON holds no usage."""
    out = []
    for _, data in events:
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            continue
        if isinstance(payload, dict) and payload.get("type") in ("message_start", "message_delta"):
            out.append(payload)
    return out


def test_anthropic_streams_as_providers_send_them_take_the_search():
    """Not a path only the property above reaches: the fake's streams, with ping events,
    tool input and thinking, are read by searching (and give the whole read's usage)."""
    from aiogw.dialects import anthropic

    names = [name for name, case in CASES.items() if case.dialect is ANTHROPIC and case.endpoint == "messages"]
    assert names
    for name in names:
        assert anthropic.usage_events(CASES[name].stream) is not None, name
