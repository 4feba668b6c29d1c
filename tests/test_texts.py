"""Which texts of a request the guards see, from which place, at which path; and which
texts of an answer. The guards ask the dialect (`request_texts`, `shape`,
`answer_texts`)."""

import pytest

from aiogw.dialects import DIALECTS


def places(dialect, endpoint, body):
    return [(t.place, t.path, t.text) for t in DIALECTS[dialect].request_texts(endpoint, body)]


def test_anthropic():
    body = {
        "system": [{"type": "text", "text": "sys"}],
        "messages": [
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "ls"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "out"}]},
                {"type": "tool_result", "tool_use_id": "t2", "content": "plain out"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR" * 1000}},
                {"type": "text", "text": "next"}]},
            {"role": "system", "content": "mid-conversation system"},
        ],
        "tools": [{"name": "Bash", "description": "Run it", "input_schema": {"type": "object", "properties": {
            "command": {"type": "string", "description": "the command"}}}}],
    }
    assert places("anthropic", "messages", body) == [
        ("system", ("system", 0, "text"), "sys"),
        ("user", ("messages", 0, "content"), "hello"),
        ("assistant", ("messages", 1, "content", 0, "thinking"), "hmm"),
        ("assistant", ("messages", 1, "content", 1, "input", "command"), "ls"),
        ("tool_result", ("messages", 2, "content", 0, "content", 0, "text"), "out"),
        ("tool_result", ("messages", 2, "content", 1, "content"), "plain out"),
        ("user", ("messages", 2, "content", 3, "text"), "next"),
        ("system", ("messages", 3, "content"), "mid-conversation system"),
        ("tool_definition", ("tools", 0, "description"), "Run it"),
        ("tool_definition", ("tools", 0, "input_schema", "type"), "object"),
        ("tool_definition", ("tools", 0, "input_schema", "properties", "command", "type"), "string"),
        ("tool_definition", ("tools", 0, "input_schema", "properties", "command", "description"), "the command"),
    ]


def test_openai_chat():
    body = {
        "messages": [
            {"role": "developer", "content": "dev"},
            {"role": "user", "content": [{"type": "text", "text": "hi"},
                                         {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "sh", "arguments": "{\"cmd\":\"ls\"}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "files"},
        ],
        "tools": [{"type": "function", "function": {"name": "sh", "description": "shell"}}],
    }
    assert places("openai", "chat", body) == [
        ("system", ("messages", 0, "content"), "dev"),
        ("user", ("messages", 1, "content", 0, "text"), "hi"),
        ("assistant", ("messages", 2, "tool_calls", 0, "function", "arguments"), '{"cmd":"ls"}'),
        ("tool_result", ("messages", 3, "content"), "files"),
        ("tool_definition", ("tools", 0, "function", "description"), "shell"),
    ]


def test_openai_responses():
    body = {
        "instructions": "be terse",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "do it"}]},
            {"type": "function_call", "call_id": "c", "name": "exec_command", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c", "output": "done"},
        ],
        "tools": [{"type": "function", "name": "exec_command", "description": "runs"}],
    }
    assert places("openai", "responses", body) == [
        ("system", ("instructions",), "be terse"),
        ("user", ("input", 0, "content", 0, "text"), "do it"),
        ("assistant", ("input", 1, "arguments"), "{}"),
        ("tool_result", ("input", 2, "output"), "done"),
        ("tool_definition", ("tools", 0, "description"), "runs"),
    ]
    assert places("openai", "responses", {"input": "just a string"}) == [("user", ("input",), "just a string")]


def test_gemini():
    body = {
        "systemInstruction": {"parts": [{"text": "sys"}]},
        "contents": [
            {"role": "user", "parts": [{"text": "q"}, {"inlineData": {"mimeType": "image/png", "data": "AAAA"}}]},
            {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"a": "x"}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"output": "res"}}}]},
        ],
        "tools": [{"functionDeclarations": [{"name": "f", "description": "does f"}]}],
    }
    assert places("gemini", "generate", body) == [
        ("system", ("systemInstruction", "parts", 0, "text"), "sys"),
        ("user", ("contents", 0, "parts", 0, "text"), "q"),
        ("assistant", ("contents", 1, "parts", 0, "functionCall", "args", "a"), "x"),
        ("tool_result", ("contents", 2, "parts", 0, "functionResponse", "response", "output"), "res"),
        ("tool_definition", ("tools", 0, "functionDeclarations", 0, "description"), "does f"),
    ]


def test_requests_without_a_history_are_read_whole():
    openai, gemini = DIALECTS["openai"], DIALECTS["gemini"]
    embeddings = {"input": ["one", "two"]}
    assert openai.shape("embeddings", embeddings) is None
    assert places("openai", "embeddings", embeddings) == [("user", ("input", 0), "one"), ("user", ("input", 1), "two")]
    completions = {"prompt": "p", "suffix": "s"}
    assert openai.shape("completions", completions) is None
    assert places("openai", "completions", completions) == [("user", ("prompt",), "p"), ("user", ("suffix",), "s")]
    embed = {"content": {"parts": [{"text": "a"}]}, "requests": [{"content": {"parts": [{"text": "b"}]}}]}
    assert gemini.shape("embed", embed) is None
    assert places("gemini", "embed", embed) == [
        ("user", ("content", "parts", 0, "text"), "a"),
        ("user", ("requests", 0, "content", "parts", 0, "text"), "b"),
    ]


def test_a_gemini_count_tokens_around_a_generate_request_is_read_whole():
    inner = {"systemInstruction": {"parts": [{"text": "sys"}]}, "contents": [{"role": "user", "parts": [{"text": "in"}]}]}
    body = {"generateContentRequest": inner, "contents": [{"role": "user", "parts": [{"text": "out"}]}]}
    assert DIALECTS["gemini"].shape("count_tokens", body) is None
    assert places("gemini", "count_tokens", body) == [
        ("system", ("generateContentRequest", "systemInstruction", "parts", 0, "text"), "sys"),
        ("user", ("generateContentRequest", "contents", 0, "parts", 0, "text"), "in"),
        ("user", ("contents", 0, "parts", 0, "text"), "out"),
    ]
    plain = {"contents": inner["contents"]}
    assert DIALECTS["gemini"].shape("count_tokens", plain) is not None


@pytest.mark.parametrize(
    ("dialect", "endpoint", "history"),
    [("anthropic", "messages", "messages"), ("openai", "chat", "messages"), ("openai", "responses", "input"),
     ("openai", "input_tokens", "input"), ("gemini", "generate", "contents")],
)
def test_a_shape_reads_what_the_dialect_reads(dialect, endpoint, history):
    """The guard reads a conversation by its shape (head, history, tail): the same
    texts, in the same order, as the dialect's whole read."""
    body = {"system": "s", "instructions": "i", "systemInstruction": {"parts": [{"text": "g"}]},
            history: [{"role": "user", "content": "c", "parts": [{"text": "p"}]}]}
    s = DIALECTS[dialect].shape(endpoint, body)
    assert s is not None and s.history == history
    assert s.entries(body) == body[history]
    assert s.texts(body) == DIALECTS[dialect].request_texts(endpoint, body) != []


def test_shapes_that_keep_their_history_alike_are_named_apart():
    """A remembered conversation is keyed by its shape's name: Anthropic and chat both
    keep `messages` but read them differently."""
    shapes = {DIALECTS["anthropic"].shape("messages", {}), DIALECTS["openai"].shape("chat", {}),
              DIALECTS["openai"].shape("responses", {}), DIALECTS["gemini"].shape("generate", {})}
    assert len({s.name for s in shapes}) == 4


@pytest.mark.parametrize(
    ("dialect", "data", "expected"),
    [
        ("anthropic", {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "hi"}}, ["hi"]),
        ("anthropic", {"delta": {"type": "input_json_delta", "partial_json": "{\"a\""}}, ['{"a"']),
        ("anthropic", {"content": [{"type": "thinking", "thinking": "t"},
                                   {"type": "tool_use", "input": {"cmd": "ls"}}]}, ["t", '{"cmd":"ls"}']),
        ("openai", {"choices": [{"delta": {"content": "c", "tool_calls": [{"function": {"arguments": "{}"}}]}}]},
         ["c", "{}"]),
        ("openai", {"type": "response.output_text.delta", "delta": "d"}, ["d"]),
        ("openai", {"output": [{"type": "message", "content": [{"type": "output_text", "text": "o"}]}]}, ["o"]),
        ("gemini", {"candidates": [{"content": {"parts": [{"text": "g"}, {"functionCall": {"args": {"x": 1}}}]}}]},
         ["g", '{"x":1}']),
        ("gemini", {"candidates": [{"content": {"parts": [{"text": ""}, {"text": None}]}}]}, []),
        ("openai", ["not", "an", "object"], []),
    ],
)
def test_answer_texts(dialect, data, expected):
    assert DIALECTS[dialect].answer_texts(data) == expected


def test_odd_shapes_never_raise():
    for body in ({"messages": "x"}, {"messages": [None, 3, {"role": "user"}]}, {"tools": [1]}, {"contents": {}}):
        for dialect, endpoint in (("anthropic", "messages"), ("openai", "chat"), ("openai", "responses"), ("gemini", "generate")):
            DIALECTS[dialect].request_texts(endpoint, body)
