"""The audit's split of a conversation into stored parts, with and without the guard's
hint: the same refs and the same new parts either way, and a wrong hint changes nothing."""

from __future__ import annotations

import orjson

from aiogw.audit.conversation import split_request
from aiogw.audit.memo import PartsMemo
from aiogw.dialects import DIALECTS
from aiogw.dialects.shape import same_prefix

ANTHROPIC = DIALECTS["anthropic"]


def _body(turns: int) -> dict:
    messages = []
    for i in range(turns):
        messages.append({"role": "user", "content": [{"type": "text", "text": f"turn {i} " + "x" * 3000}]})
        messages.append({"role": "assistant", "content": [{"type": "text", "text": f"answer {i}"}]})
    return {"model": "m", "system": "s" * 20000, "tools": [{"name": "t", "input_schema": {}}], "messages": messages}


def _run(hinted: bool) -> list[tuple[list[bytes], list[bytes]]]:
    memo = PartsMemo()
    out = []
    previous = None
    for turns in range(1, 8):
        body = orjson.loads(orjson.dumps(_body(turns)))  # a fresh parse every turn, as in the gateway
        if turns == 5:
            body["messages"][2]["content"][0]["text"] = "compacted"  # an early message changed
        hint = None
        if hinted and previous is not None:
            same = same_prefix(previous, body["messages"])
            hint = (previous, same)
        _, refs, parts = split_request(ANTHROPIC, "messages", body, 50_000, memo, day=1, hint=hint)
        out.append((refs["messages"], sorted(h for h, _ in parts)))
        previous = body["messages"]
    return out


def test_the_guards_hint_gives_the_same_refs_and_parts():
    assert _run(hinted=True) == _run(hinted=False)


def test_a_wrong_hint_is_not_believed():
    memo = PartsMemo()
    first = orjson.loads(orjson.dumps(_body(3)))
    split_request(ANTHROPIC, "messages", first, 50_000, memo, day=1)
    second = orjson.loads(orjson.dumps(_body(4)))
    second["messages"][2]["content"][0]["text"] = "changed"  # same first message: the memo finds `first`
    unrelated = orjson.loads(orjson.dumps(_body(3)))["messages"]  # equal values, other objects
    _, refs, _ = split_request(ANTHROPIC, "messages", second, 50_000, memo, day=1, hint=(unrelated, 6))
    _, honest, _ = split_request(ANTHROPIC, "messages", orjson.loads(orjson.dumps(second)), 50_000, PartsMemo(), day=1)
    assert refs["messages"] == honest["messages"]


def test_a_batch_not_written_takes_its_memo_entries_back():
    """A failed commit: the batch is built again, and must hand its parts again."""
    memo = PartsMemo()
    body = orjson.loads(orjson.dumps(_body(2)))
    memo.mark()
    _, _, parts = split_request(ANTHROPIC, "messages", body, 50_000, memo, day=1)
    assert len(parts) == 6  # system, tools, four messages
    memo.drop_fresh()  # the commit failed
    _, _, again = split_request(ANTHROPIC, "messages", body, 50_000, memo, day=1)
    assert sorted(h for h, _ in again) == sorted(h for h, _ in parts)
