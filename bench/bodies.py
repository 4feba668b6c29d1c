"""Realistic Anthropic Messages request bodies of a chosen size, built once per run.

A coding agent resends its whole conversation every turn: a system prompt, the tool
list, then user/assistant turns where the assistant calls tools (tool_use) and the
user turn carries their output (tool_result). The history grows until the body
reaches the wanted size; the last turn is a tool result, as it is mid-task.

Small bodies (up to 20 KB) are the first turns of a short task, built here; larger ones
are a Claude Code session from `bench.agent_text` (a 30 KB system prompt and tool list,
then real source text read, grepped, diffed and tested), cut where it reaches the size.
"""

from __future__ import annotations

import orjson

from bench import agent_text

MODEL = "claude-sonnet-4-5-20250929"
SYSTEM = (
    "You are a coding agent working in the user's repository. Read files before you edit "
    "them, keep changes small, run the tests after each change, and explain what you did "
    "in one short paragraph at the end."
)
TOOLS = [
    {"name": "bash", "description": "Run a shell command in the repository and return its output.",
     "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}},
    {"name": "read_file", "description": "Read a file of the repository.",
     "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}},
]
# One tool result's worth of "file content": source-like lines, as agents read them.
_SOURCE = "".join(f"    def method_{i}(self, value: int) -> int:\n        return value * {i} + 1\n" for i in range(40))


def _turns(n: int, result_chars: int) -> list[dict]:
    """The n-th exchange of the history: a tool call and its result."""
    tool_id = f"toolu_bench{n:06d}"
    return [
        {"role": "assistant", "content": [
            {"type": "text", "text": f"Let me look at module_{n}.py."},
            {"type": "tool_use", "id": tool_id, "name": "read_file", "input": {"path": f"src/module_{n}.py"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": tool_id, "content": _SOURCE[:result_chars]},
        ]},
    ]


# Replaced by a fresh number on every request by post.lua: each request is a new turn.
SEQ_MARK = "@@SEQ@@@@@"


def messages_body(target_bytes: int, *, stream: bool = False, marked: bool = False) -> bytes:
    """A Messages body of about `target_bytes` (within a few percent, at least the base).
    `marked`: its last tool result ends with SEQ_MARK, for post.lua to number."""
    if target_bytes > 20_000:
        return agent_body(target_bytes, stream=stream, marked=marked)
    body: dict = {
        "model": MODEL, "max_tokens": 1024, "system": SYSTEM, "tools": TOOLS,
        "messages": [{"role": "user", "content": "The tests in tests/test_parser.py fail; please fix them."}],
    }
    if stream:
        body["stream"] = True
    n = 0
    while len(orjson.dumps(body)) < target_bytes:
        body["messages"].extend(_turns(n, 120))  # short tool results: one exchange still fits
        n += 1
        if n > 100_000:  # a guard against a target no history can reach
            break
    return orjson.dumps(_marked(body) if marked else body)


def _marked(body: dict) -> dict:
    """The body with SEQ_MARK at the end of its last tool result (a string content)."""
    last = body["messages"][-1]
    for block in last["content"] if isinstance(last["content"], list) else ():
        if block.get("type") == "tool_result" and isinstance(block.get("content"), str):
            block["content"] += f"\n[bench request {SEQ_MARK}]"
            return body
    raise ValueError("the body does not end with a tool result to mark")


def agent_body(target_bytes: int, *, stream: bool = False, marked: bool = False) -> bytes:
    """The first turn of a coding-agent session whose body reaches `target_bytes`
    (and ends with a tool result)."""
    session = agent_text.Session()
    while True:
        body = session.body(stream=stream)
        data = orjson.dumps(body)
        if len(data) >= target_bytes and body["messages"][-1]["role"] == "user" and session.n % 17:
            return orjson.dumps(_marked(body)) if marked else data
        # Skip serialising turns far below the target: each turn adds a few KB at most.
        for _ in range(max(1, (target_bytes - len(data)) // 8_000)):
            session.turn()
