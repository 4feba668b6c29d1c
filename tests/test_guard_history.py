"""The guard's conversation memo finds, turn after turn, exactly what a full read finds."""

from __future__ import annotations

import copy
import random

import pytest

from aiogw.config_guards import GuardActions
from aiogw.exchange import Exchange
from aiogw.guards import catalog
from aiogw.guards.check import GuardCheck
from aiogw.guards.engine import Engine
from aiogw.guards.policy import Policy
from tests.guard_corpus import build

LOG_ALL = GuardActions(tuple((c, p, "log") for c in ("injection", "credential", "pii")
                             for p in ("system", "user", "assistant", "tool_result", "tool_definition")))


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(catalog.load())


def _message(dialect: str, role: str, text: str, i: int) -> dict:
    if dialect == "anthropic":
        if role == "tool":
            return {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"t{i}", "content": text}]}
        if role == "assistant":
            return {"role": "assistant", "content": [{"type": "text", "text": text},
                                                     {"type": "tool_use", "id": f"t{i}", "name": "bash",
                                                      "input": {"command": text[:80]}}]}
        return {"role": "user", "content": [{"type": "text", "text": text}]}
    if dialect == "chat":
        if role == "assistant":
            return {"role": "assistant", "content": text,
                    "tool_calls": [{"id": f"t{i}", "type": "function",
                                    "function": {"name": "bash", "arguments": text[:80]}}]}
        return {"role": role, "content": text, **({"tool_call_id": f"t{i}"} if role == "tool" else {})}
    if dialect == "responses":
        if role == "tool":
            return {"type": "function_call_output", "call_id": f"t{i}", "output": text}
        if role == "assistant":
            return {"type": "function_call", "call_id": f"t{i}", "name": "bash", "arguments": text[:80]}
        return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    if role == "tool":
        return {"role": "user", "parts": [{"functionResponse": {"name": "bash", "response": {"out": text}}}]}
    return {"role": "model" if role == "assistant" else "user", "parts": [{"text": text}]}


def _body(dialect: str, system: str, history: list, tools: list) -> tuple[str, str, dict]:
    if dialect == "anthropic":
        return "anthropic", "messages", {"model": "m", "system": system, "messages": history,
                                         "tools": [{"name": "bash", "description": d, "input_schema": {}} for d in tools]}
    if dialect == "chat":
        return "openai", "chat", {"model": "m", "messages": [{"role": "system", "content": system}, *history],
                                  "tools": [{"type": "function", "function": {"name": "bash", "description": d}}
                                            for d in tools]}
    if dialect == "responses":
        return "openai", "responses", {"model": "m", "instructions": system, "input": history,
                                       "tools": [{"type": "function", "name": "bash", "description": d} for d in tools]}
    return "gemini", "generate", {"systemInstruction": {"parts": [{"text": system}]}, "contents": history,
                                  "tools": [{"functionDeclarations": [{"name": "bash", "description": d}
                                                                      for d in tools]}]}


def _findings(check: GuardCheck, dialect: str, endpoint: str, body: dict, user: str) -> list:
    ex = Exchange("POST")
    ex.dialect, ex.endpoint, ex.user, ex.json, ex.body = dialect, endpoint, user, copy.deepcopy(body), b"{}"
    check.check(ex)
    return ex.findings or []


@pytest.mark.parametrize("dialect", ["anthropic", "chat", "responses", "gemini"])
def test_turn_after_turn_the_memo_finds_what_a_full_read_finds(engine, dialect):
    rng = random.Random(dialect)
    docs = [d.text for d in build.corpus()]
    rng.shuffle(docs)
    policy = Policy(LOG_ALL, ())
    kept = GuardCheck(engine, policy)
    system, tools, history = docs.pop(), [docs.pop(), docs.pop()], []
    found_any = 0
    for turn in range(40):
        history.append(_message(dialect, rng.choice(["assistant", "tool"]), docs.pop(), turn))
        history.append(_message(dialect, rng.choice(["user", "tool"]), docs.pop(), turn))
        change = rng.random()
        if change < 0.15 and history:  # the last entry edited (a cache marker moved)
            history[-1] = _message(dialect, "user", docs.pop(), turn)
        elif change < 0.25:  # tools changed
            tools = [docs.pop()]
        elif change < 0.3 and len(history) > 4:  # history compacted: an early entry replaced
            history[1] = _message(dialect, "user", docs.pop(), turn)
        dialect_name, endpoint, body = _body(dialect, system, history, tools)
        full = _findings(GuardCheck(engine, policy), dialect_name, endpoint, body, "u")
        assert _findings(kept, dialect_name, endpoint, body, "u") == full, turn
        found_any += len(full)
    assert found_any > 0  # the corpus put findings into the history
    assert kept.conversations.reused > 0  # and the memo did work


def test_two_dialects_with_the_same_first_message_do_not_share_a_read(engine):
    """Anthropic and OpenAI chat both keep "messages", but read tools differently."""
    policy = Policy(LOG_ALL, ())
    kept = GuardCheck(engine, policy)
    secret = "AKIAIOSFODNN7EXAMPL3"
    first = [{"role": "user", "content": "hello"}]
    tools = [{"name": "t", "description": "plain", "input_schema": {"description": f"key {secret}"},
              "function": {"name": "t", "description": "plain"}}]
    chat = {"model": "m", "messages": first, "tools": tools}
    messages = {"model": "m", "messages": first, "tools": tools}
    for dialect, endpoint, body in (("openai", "chat", chat), ("anthropic", "messages", messages)):
        fresh = _findings(GuardCheck(engine, policy), dialect, endpoint, body, "u")
        assert _findings(kept, dialect, endpoint, body, "u") == fresh, dialect


def test_agents_whose_conversations_open_alike_keep_their_own_reads(engine):
    """Two sessions of one user, the same opening message, turns interleaved: with the
    agent's session id in the key each turn reads only what is new (findings as a full
    read's); without it they would push each other's read out every turn."""
    policy = Policy(LOG_ALL, ())
    kept = GuardCheck(engine, policy)
    docs = [d.text for d in build.corpus()]
    opening = _message("anthropic", "user", "fix the failing tests", 0)
    histories = {"session-a": [opening], "session-b": [opening]}
    for turn in range(1, 11):
        for session, history in histories.items():
            history.append(_message("anthropic", "assistant", docs.pop(), turn))
            history.append(_message("anthropic", "tool", docs.pop(), turn))
            _, endpoint, body = _body("anthropic", "system prompt", history, ["run a command"])
            ex = Exchange("POST")
            ex.dialect, ex.endpoint, ex.user, ex.session = "anthropic", endpoint, "u", session
            ex.json, ex.body = copy.deepcopy(body), b"{}"
            kept.check(ex)
            assert (ex.findings or []) == _findings(GuardCheck(engine, policy), "anthropic", endpoint, body, "u")
    # Every turn after each session's first found its own previous read: turn t reuses
    # the 2t - 1 entries it repeats (a read of the other session would share only one).
    assert kept.conversations.reused == 2 * sum(2 * t - 1 for t in range(2, 11))
