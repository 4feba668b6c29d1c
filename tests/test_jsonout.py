"""aiogw.jsonout: orjson's bytes at any depth (plain data)."""

from __future__ import annotations

import orjson
import pytest

from aiogw import jsonout

SORTED = orjson.OPT_SORT_KEYS


def nested(depth: int, inner: object = "x") -> object:
    value = inner
    for i in range(depth):
        value = [value] if i % 2 else {"k": value, "a": 1}
    return value


@pytest.mark.parametrize("value", [
    nested(40, "é\"\\\n😀"), {"b": [1, -2.5, True, None, 1e300], "a": {}, "c": []}, [], {}, "s", 10**18, None,
    (1, [2, (3,)]), float("nan"),
])
def test_what_orjson_writes_is_written_the_same(value):
    for sort_keys, option in ((False, None), (True, SORTED)):
        assert jsonout.dumps(value, sort_keys=sort_keys) == orjson.dumps(value, option=option)
        assert jsonout.dumps_any_depth(value, sort_keys=sort_keys) == orjson.dumps(value, option=option)


@pytest.mark.parametrize("pairs", [126, 127, 128, 300, 511])  # levels: 1 + 2 a pair, to 1,023
def test_any_depth_orjson_parses_is_written_and_reads_back(pairs):
    raw = b'{"v":' + b'[{"b":1,"a":' * pairs + b'"bottom"' + b"}]" * pairs + b"}"
    value = orjson.loads(raw)
    assert jsonout.dumps(value) == raw
    assert jsonout.dumps(value, sort_keys=True) == raw.replace(b'{"b":1,"a":', b'{"a":').replace(b"}]", b',"b":1}]')
    assert jsonout.dumps(orjson.loads(jsonout.dumps(value))) == raw  # (== on 1,023 levels: RecursionError)


def test_a_deep_value_under_a_shallow_one_is_written():
    value = {"messages": [{"role": "user", "content": nested(600)}], "model": "m"}
    text = jsonout.dumps(value)
    assert text.startswith(b'{"messages":[{"role":"user","content":[{"k":') and text.endswith(b'}],"model":"m"}')
    assert orjson.loads(text) == value


@pytest.mark.parametrize("bad", ["\udcff", 2**70, {1: "a"}, object()])
def test_what_orjson_cannot_write_at_all_raises_as_orjson_does(bad):
    for value in (bad, nested(300, bad)):
        with pytest.raises(orjson.JSONEncodeError):
            jsonout.dumps(value)
    with pytest.raises(orjson.JSONEncodeError):
        jsonout.dumps_any_depth({1: "a"})  # never `{1:"a"}`, which is no JSON


def test_a_leaf_writer_of_the_callers_own():
    def leaf(value: object) -> bytes:
        return b'"?"' if isinstance(value, str) and "\udcff" in value else orjson.dumps(value)

    assert jsonout.dumps_any_depth({"a\udcff": ["b\udcff", 1]}, leaf=leaf) == b'{"?":["?",1]}'


def test_depth_counts_containers():
    assert [jsonout.depth(v) for v in ("s", 1, [], {}, [[]], {"a": [1, {"b": []}]}, (1, (2,)))] == [0, 0, 1, 1, 2, 4, 2]
    assert jsonout.depth(nested(1000)) == 1000
