"""The audit record of a body nested as deep as orjson parses (plain data).

orjson reads 1,024 levels and writes 254. A request or an answer nested 600 deep is
recorded as a shallow one is, under every policy: the request split into its parts (or
masked, under `redacted`), the conversation's id, the answer whole; `aiogw.jsonout`
writes what orjson will not.
"""

from __future__ import annotations

import orjson
import pytest

from aiogw import jsonout
from aiogw.audit import record as rec
from aiogw.audit.recorder import Recorder
from aiogw.config import AuditSettings
from aiogw.exchange import Exchange
from aiogw.store.sqlite import audit_read as queries
from tests.builders import SYSTEM, exchange, nested_json, nested_value, write

DEEP, SHALLOW = 600, 3
SECRET = "alice@example.com"


def _path(depth: int) -> list[str | int]:
    """The path to the leaf of `nested_value(depth)`, from the outside in."""
    return [0 if i % 2 == 0 else "k" for i in reversed(range(depth))]


def _request(depth: int, session: str | None = None) -> Exchange:
    """An Anthropic turn past SPLIT_MIN: its opening message cites a value nested
    `depth` levels, its tool input nests as deep with a personal e-mail address at the
    bottom; parsed by orjson, as the gateway does."""
    ex = exchange(1_000_000, [], session)
    ex.body = (
        b'{"model":"claude-sonnet-4-6","max_tokens":64,"system":' + orjson.dumps(SYSTEM) + b',"messages":['
        b'{"role":"user","content":[{"type":"text","text":"find the address","citations":['
        + nested_json(depth) + b']}]},'
        b'{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"probe","input":{"v":'
        + nested_json(depth, orjson.dumps(f"mail {SECRET}")) + b'}}]},'
        b'{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"' + f"found {SECRET}".encode()
        + b'"}]}]}'
    )
    ex.json = orjson.loads(ex.body)
    return ex


def _found(depth: int) -> list[dict]:
    """The guard's findings for `_request(depth)`, both only logged: the `redacted`
    policy masks them in the record."""
    where = (("tool_use", ["messages", 1, "content", 0, "input", "v", *_path(depth)], 5),
             ("tool_result", ["messages", 2, "content", 0, "content"], 6))
    return [{"id": "email", "category": "pii", "subcategory": "email", "place": place, "action": "log",
             "path": path, "start": start, "end": start + len(SECRET)} for place, path, start in where]


def _built(depth: int, policy: str, session: str | None = None) -> tuple[Exchange, rec.Record, dict]:
    ex = _request(depth, session)
    if policy == rec.REDACTED:
        ex.findings = _found(depth)
    record = rec.build(ex, policy, rec.PartsMemo())
    return ex, record, dict(zip(rec.COLUMNS, record.row, strict=True))


def _shape(record: rec.Record) -> tuple:
    """What a record keeps, not its bytes: which payloads, how many parts."""
    payload = record.payload
    kept = None if payload is None else tuple(value is not None for value in payload)
    return kept, len(record.parts), len(payload[4]) if payload is not None and payload[4] else 0


@pytest.mark.parametrize("policy", [rec.FULL, rec.REDACTED, rec.METADATA])
def test_a_deep_request_is_recorded_as_a_shallow_one_is(policy):
    ex, record, row = _built(DEEP, policy)
    _, shallow, shallow_row = _built(SHALLOW, policy)
    assert _shape(record) == _shape(shallow)
    assert row["reason"] is None and not record.mended
    assert row["request_bytes"] == len(ex.body) and row["findings"] == (2 if policy == rec.REDACTED else 0)
    # Named by its opening (system prompt, first user message), whatever the policy.
    assert row["conversation"].startswith("p-") and shallow_row["conversation"].startswith("p-")
    assert row["conversation"] == _built(DEEP, rec.FULL)[2]["conversation"]
    if policy == rec.METADATA:
        assert record.payload is None and record.parts == []
        return
    assert record.payload[1] is not None and record.payload[5] is None  # split, not stored whole
    assert len(record.payload[4]) == 3 * 16  # three messages by their digests
    stored = b"".join(data for _, data in record.parts)
    assert (SECRET.encode() in stored) == (policy == rec.FULL)
    if policy == rec.REDACTED:
        assert stored.count(b"[REDACTED:email]") == 2


def test_a_deep_request_keeps_its_session_as_its_conversation():
    _, record, row = _built(DEEP, rec.FULL, session="s-deep")
    assert row["conversation"] == "s-deep" and record.payload[1] is not None


@pytest.mark.parametrize("policy", [rec.FULL, rec.REDACTED])
async def test_a_deep_request_reads_back_whole(tmp_path, policy):
    """Stored and read back through the audit's own queries: the request as it came,
    or masked, to the last of its 600 levels."""
    db = tmp_path / "s.db"
    ex = _request(DEEP)
    if policy == rec.REDACTED:
        ex.findings = _found(DEEP)
    want = orjson.loads(ex.body.replace(SECRET.encode(), b"[REDACTED:email]") if policy == rec.REDACTED else ex.body)
    audit = await write(db, [ex], policy)
    assert audit.writer.written == 1
    conn = queries.connect(db)
    shown = queries.show(conn, conn.execute("SELECT id FROM exchanges").fetchone()[0])
    assert jsonout.dumps(shown["request"], sort_keys=True) == jsonout.dumps(want, sort_keys=True)


def test_a_request_that_cannot_be_masked_is_not_kept():
    """A build that raises takes the parsed body with it (the recorder tries again
    without it): under `redacted` the request is then not kept, never kept unmasked."""
    ex = _request(SHALLOW)  # (any depth: the old code dropped a deep one before it got here)
    ex.findings = [{**_found(SHALLOW)[1], "path": ["messages", 9]}]  # a finding the mask cannot place
    record = Recorder(AuditSettings(policy=rec.REDACTED)).build(ex)
    assert record is not None and record.payload[5] is None and record.payload[1] is None and record.parts == []
    assert "the request could not be masked, so it is not kept" in record.row[rec.COLUMNS.index("reason")]


def _sse(*events: dict) -> bytes:
    return b"".join(b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in events)


def test_a_deep_answer_is_kept_as_an_answer():
    """A stream's tool input nested 600 deep: the record keeps the answer read, not
    the stream's bytes in its stead."""
    ex = exchange(1_000_000, [{"role": "user", "content": "go"}])
    ex.response_body, ex.stream = None, True
    message = {"id": "m", "type": "message", "role": "assistant", "model": "claude-sonnet-4-6", "content": [],
               "usage": {"input_tokens": 10}}
    ex.chunks = [_sse(
        {"type": "message_start", "message": message},
        {"type": "content_block_start", "index": 0,
         "content_block": {"type": "tool_use", "id": "t1", "name": "probe", "input": {}}},
        {"type": "content_block_delta", "index": 0,
         "delta": {"type": "input_json_delta", "partial_json": nested_json(DEEP).decode()}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 20}},
        {"type": "message_stop"},
    )]
    record = rec.build(ex, rec.FULL)
    answer = rec.unpack(record.payload[6])
    assert answer["complete"] is True and answer["stop_reason"] == "tool_use"
    (block,) = answer["message"]["content"]
    assert block["type"] == "tool_use" and block["input"] == nested_value(DEEP, "x")
    assert record.payload[7] is not None  # the stream's own bytes beside it, as for any stream
