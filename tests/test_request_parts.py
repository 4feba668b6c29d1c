"""Dialect.request_parts / rebuild: system, messages and tools split out for
content-addressed storage, and put back so the body is exactly what it was."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiogw.dialects.anthropic import ANTHROPIC
from aiogw.dialects.base import Dialect, RequestParts
from aiogw.dialects.gemini import GEMINI
from aiogw.dialects.openai import OPENAI

TOOLS_ANTHROPIC = [{"name": "bash", "description": "Run", "input_schema": {"type": "object"}}]
TOOLS_OPENAI = [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {}}}]
TOOLS_RESPONSES = [{"type": "function", "name": "f", "parameters": {}}]
TOOLS_GEMINI = [{"functionDeclarations": [{"name": "f", "description": "d"}]}]
CONTENTS = [{"role": "user", "parts": [{"text": "hi"}]}, {"role": "model", "parts": [{"functionCall": {"name": "f"}}]}]

# (dialect, endpoint, body, expected system, messages, tools)
CASES: list[tuple[Dialect, str, dict[str, Any], Any, Any, Any]] = [
    (
        ANTHROPIC,
        "messages",
        {
            "model": "claude-opus-4-6",
            "max_tokens": 1024,
            "stream": True,
            "system": [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "text", "text": "yo"}]},
            ],
            "tools": TOOLS_ANTHROPIC,
            "metadata": {"user_id": "u"},
            "thinking": {"type": "enabled", "budget_tokens": 2000},
        },
        [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": [{"type": "text", "text": "yo"}]}],
        TOOLS_ANTHROPIC,
    ),
    (
        ANTHROPIC,
        "count_tokens",
        {"model": "claude-haiku-4-5", "system": "Be brief.", "messages": [{"role": "user", "content": "x"}]},
        "Be brief.",
        [{"role": "user", "content": "x"}],
        None,
    ),
    (
        OPENAI,
        "chat",
        {
            "model": "gpt-4o",
            "messages": [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "hi"}],
            "tools": TOOLS_OPENAI,
            "stream_options": {"include_usage": True},
            "system": "not a chat field: stays in rest",
        },
        None,
        [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        TOOLS_OPENAI,
    ),
    (
        OPENAI,
        "responses",
        {
            "model": "gpt-5-codex",
            "instructions": "You are Codex.",
            "input": [
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
                {"type": "function_call_output", "call_id": "c", "output": "ok"},
            ],
            "tools": TOOLS_RESPONSES,
            "reasoning": {"effort": "high"},
            "store": False,
        },
        "You are Codex.",
        [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
            {"type": "function_call_output", "call_id": "c", "output": "ok"},
        ],
        TOOLS_RESPONSES,
    ),
    (
        OPENAI,
        "responses",
        {"model": "gpt-5", "input": "Tell me a joke."},
        None,
        [{"role": "user", "content": "Tell me a joke."}],
        None,
    ),
    (
        OPENAI,
        "input_tokens",
        {"model": "gpt-5", "input": "count me", "instructions": "sys"},
        "sys",
        [{"role": "user", "content": "count me"}],
        None,
    ),
    (OPENAI, "embeddings", {"model": "text-embedding-3-small", "input": ["a", "b"]}, None, None, None),
    (OPENAI, "completions", {"model": "davinci", "prompt": "Once"}, None, None, None),
    (
        GEMINI,
        "generate",
        {
            "systemInstruction": {"parts": [{"text": "Be brief."}]},
            "contents": CONTENTS,
            "tools": TOOLS_GEMINI,
            "generationConfig": {"temperature": 0.2},
        },
        {"parts": [{"text": "Be brief."}]},
        CONTENTS,
        TOOLS_GEMINI,
    ),
    (
        GEMINI,
        "stream_generate",
        {"system_instruction": {"parts": [{"text": "snake"}]}, "contents": CONTENTS},
        {"parts": [{"text": "snake"}]},
        CONTENTS,
        None,
    ),
    (GEMINI, "count_tokens", {"contents": CONTENTS}, None, CONTENTS, None),
    (
        GEMINI,
        "count_tokens",
        {
            "generateContentRequest": {
                "model": "models/gemini-2.5-pro",
                "systemInstruction": {"parts": [{"text": "wrapped"}]},
                "contents": CONTENTS,
                "tools": TOOLS_GEMINI,
            }
        },
        {"parts": [{"text": "wrapped"}]},
        CONTENTS,
        TOOLS_GEMINI,
    ),
    (GEMINI, "embed", {"content": {"parts": [{"text": "embed me"}]}, "taskType": "RETRIEVAL_QUERY"}, None, None, None),
    (GEMINI, "embed", {"requests": [{"model": "models/e", "content": {"parts": [{"text": "x"}]}}]}, None, None, None),
    (ANTHROPIC, "models", {}, None, None, None),
    (OPENAI, "other", {"messages": [{"role": "user"}], "tools": []}, None, None, None),
]
IDS = [f"{d.name}-{e}-{i}" for i, (d, e, *_) in enumerate(CASES)]


@pytest.mark.parametrize(("dialect", "endpoint", "body", "system", "messages", "tools"), CASES, ids=IDS)
def test_split_and_rebuild(dialect, endpoint, body, system, messages, tools):
    parts = dialect.request_parts(endpoint, body)
    assert (parts.system, parts.messages, parts.tools) == (system, messages, tools)
    inner = parts.rest[parts.within] if parts.within else parts.rest
    for key, value in ((parts.system_key, system), (parts.messages_key, messages), (parts.tools_key, tools)):
        if value is not None:
            assert key not in inner  # what was split out is not stored twice
    assert dialect.rebuild(parts) == body


@pytest.mark.parametrize(("dialect", "endpoint", "body", "system", "messages", "tools"), CASES, ids=IDS)
def test_rebuild_after_storage(dialect, endpoint, body, system, messages, tools):
    """The audit stores system, each message and tools apart, the other fields as
    JSON, and rebuilds `RequestParts(system=…, messages=…, tools=…, **meta)`."""
    parts = dialect.request_parts(endpoint, body)
    stored = orjson.loads(orjson.dumps(parts))
    content = {k: stored.pop(k) for k in ("system", "messages", "tools")}
    messages_back = [orjson.loads(orjson.dumps(m)) for m in content["messages"] or []] or content["messages"]
    rebuilt = RequestParts(system=content["system"], messages=messages_back, tools=content["tools"], **stored)
    assert dialect.rebuild(rebuilt) == body


def test_string_input_is_stored_as_one_user_message_and_rebuilt_as_a_string():
    parts = OPENAI.request_parts("responses", {"model": "m", "input": "hi"})
    assert parts.string_input and parts.messages == [{"role": "user", "content": "hi"}]
    assert OPENAI.rebuild(parts) == {"model": "m", "input": "hi"}


def test_nulls_and_unexpected_types_stay_in_rest():
    body = {"model": "m", "system": None, "tools": None, "messages": {"not": "a list"}}
    parts = ANTHROPIC.request_parts("messages", body)
    assert (parts.system, parts.messages, parts.tools) == (None, None, None)
    assert parts.rest == body and ANTHROPIC.rebuild(parts) == body
    # Only Responses reads a string as a message list.
    parts = ANTHROPIC.request_parts("messages", {"messages": "hi"})
    assert parts.messages is None and parts.rest == {"messages": "hi"}


def test_parts_do_not_alias_the_body():
    body = {"messages": [{"role": "user", "content": "x"}], "model": "m"}
    parts = ANTHROPIC.request_parts("messages", body)
    assert parts.messages is not None
    parts.messages.append({"role": "assistant"})
    parts.rest["extra"] = 1
    assert body == {"messages": [{"role": "user", "content": "x"}], "model": "m"}


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=10,
)
_KEYS = (
    "system messages tools instructions input systemInstruction system_instruction contents"
    " generateContentRequest model stream"
).split()
_ENDPOINTS = "messages count_tokens chat responses input_tokens embeddings generate stream_generate embed other".split()


@settings(max_examples=100, deadline=None)
@given(
    body=st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=5), _json | st.lists(_json, max_size=3), max_size=6),
    wrapped=st.dictionaries(st.sampled_from(_KEYS), _json | st.lists(_json, max_size=3), max_size=4),
    dialect=st.sampled_from([ANTHROPIC, OPENAI, GEMINI]),
    endpoint=st.sampled_from(_ENDPOINTS),
)
def test_any_body_round_trips(body, wrapped, dialect, endpoint):
    if wrapped and "generateContentRequest" not in body:
        body["generateContentRequest"] = wrapped
    parts = dialect.request_parts(endpoint, body)
    assert dialect.rebuild(parts) == body
    stored = orjson.loads(orjson.dumps(parts))
    assert dialect.rebuild(RequestParts(**stored)) == orjson.loads(orjson.dumps(body))
