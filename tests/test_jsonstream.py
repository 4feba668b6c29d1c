"""aiogw.jsonstream: Gemini's streamed JSON array, split anywhere."""

from __future__ import annotations

import itertools

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiogw import fake_upstream as fake
from aiogw.jsonstream import JSONArraySplitter

TEXT = 'Tricky: [brackets] {braces} "quotes" \\ backslash — 日本語 🎉'


def gemini_array() -> tuple[bytes, list[dict]]:
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    raw = orjson.dumps(body)
    call = fake.Call(body, raw, {}, {"model": "gemini-2.5-flash"}, TEXT, 8)
    reply = fake.gemini_stream(call)
    assert isinstance(reply, fake.StreamReply)
    ans = fake.answer(fake.gemini_turn(body, raw), raw, TEXT, 8)
    return b"".join(reply.frames), fake.gemini_chunks(ans, "gemini-2.5-flash")


def split_all(pieces: list[bytes]) -> tuple[list[bytes], bool]:
    splitter = JSONArraySplitter()
    out: list[bytes] = []
    for piece in pieces:
        out += splitter.feed(piece)
    return out, splitter.close()


def cut(data: bytes, points: list[int]) -> list[bytes]:
    bounds = [0, *sorted({p % (len(data) + 1) for p in points}), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def test_gemini_array_from_the_fake():
    data, chunks = gemini_array()
    elements, complete = split_all([data])
    assert [orjson.loads(e) for e in elements] == chunks
    assert complete


def test_every_two_way_split():
    data, chunks = gemini_array()
    for at in range(len(data) + 1):
        elements, complete = split_all([data[:at], data[at:]])
        assert [orjson.loads(e) for e in elements] == chunks, at
        assert complete


def test_byte_by_byte():
    data, chunks = gemini_array()
    elements, complete = split_all([data[i : i + 1] for i in range(len(data))])
    assert [orjson.loads(e) for e in elements] == chunks and complete


def test_elements_arrive_as_soon_as_complete():
    splitter = JSONArraySplitter()
    assert splitter.feed(b'[{"a": "}"') == []
    assert splitter.feed(b"}") == [b'{"a": "}"}']
    assert splitter.feed(b',\r\n{"b": 1}') == [b'{"b": 1}']
    assert not splitter.closed
    assert splitter.feed(b"\r\n]") == [] and splitter.close()


def test_escaped_quotes_and_backslashes_split_anywhere():
    element = orjson.dumps({"s": 'a\\"]}[{"\\\\', "t": ["\\", '"']})
    data = b"[" + element + b"]"
    for at in range(len(data) + 1):
        assert split_all([data[:at], data[at:]]) == ([element], True)


def test_pretty_printed_elements_and_loose_whitespace():
    values = [{"a": [1, {"b": "x]"}]}, {"c": None}]
    pretty = b"  \r\n[\n" + b" ,\n".join(orjson.dumps(v, option=orjson.OPT_INDENT_2) for v in values) + b"\n]\n"
    elements, complete = split_all([pretty])
    assert [orjson.loads(e) for e in elements] == values and complete


def test_scalars_and_nested_arrays():
    elements, complete = split_all([b'[1, "x,]", true, null, [2, [3]], -4.5e3]'])
    assert [orjson.loads(e) for e in elements] == [1, "x,]", True, None, [2, [3]], -4500.0] and complete


def test_scalar_split_is_held_back():
    splitter = JSONArraySplitter()
    assert splitter.feed(b"[12") == []
    assert splitter.feed(b"34,") == [b"1234"]


def test_empty_array_and_bom():
    assert split_all([b"[]"]) == ([], True)
    assert split_all([b"\xef\xbb", b"\xbf[ ]"]) == ([], True)


def test_truncated_array_is_not_complete():
    data, chunks = gemini_array()
    for at in range(len(data)):
        elements, complete = split_all([data[:at]])
        assert not complete
        assert [orjson.loads(e) for e in elements] == chunks[: len(elements)]


def test_trailing_bytes_make_it_incomplete():
    assert split_all([b'[{"a":1}] garbage']) == ([b'{"a":1}'], False)
    assert split_all([b'[{"a":1}]  \r\n']) == ([b'{"a":1}'], True)


@pytest.mark.parametrize("data", [b'{"error": {}}', b"garbage", b"[}]", b'[{"a": 1}}, {"b": 2}]'])
def test_malformed_input_is_flagged_not_raised(data):
    splitter = JSONArraySplitter()
    elements = splitter.feed(data)
    assert splitter.error and not splitter.close()
    assert elements == ([b'{"a": 1}'] if data.startswith(b"[{") else [])  # what came before the fault
    assert splitter.feed(b"[]") == []  # and nothing more is taken


def test_buffer_holds_at_most_one_element():
    splitter = JSONArraySplitter()
    splitter.feed(b"[" + b",".join([b'{"k": "' + b"x" * 1000 + b'"}'] * 100))
    assert splitter.buffered < 2000  # earlier elements are not kept


_json = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=80, deadline=None)
@given(
    values=st.lists(_json, max_size=6),
    separator=st.sampled_from([b",", b",\r\n", b" ,\n  ", b"\t,"]),
    pretty=st.booleans(),
    points=st.lists(st.integers(min_value=0), max_size=12),
)
def test_random_arrays_split_randomly(values, separator, pretty, points):
    option = orjson.OPT_INDENT_2 if pretty else 0
    data = b"[" + separator.join(orjson.dumps(v, option=option) for v in values) + b"]"
    elements, complete = split_all(cut(data, points))
    assert [orjson.loads(e) for e in elements] == values
    assert complete
