"""aiogw.sse: the WHATWG event-stream rules, and splits anywhere change nothing."""

from __future__ import annotations

import itertools

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiogw import fake_upstream as fake
from aiogw.sse import Event, SSEParser, parse

TEXT = "Grüße aus Köln — 日本語のテキスト 🎉 done."


def _anthropic() -> bytes:
    body = {"model": "claude-sonnet-4-6", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
    raw = orjson.dumps(body)
    ans = fake.answer(fake.anthropic_turn(body, raw), raw, TEXT, 6)
    return b"".join(fake.anthropic_stream(ans, "claude-sonnet-4-6"))


def _chat() -> bytes:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    raw = orjson.dumps(body)
    ans = fake.answer(fake.chat_turn(body, raw), raw, TEXT, 6)
    return b"".join(fake.chat_stream(ans, "gpt-4o", include_usage=True))


def _gemini() -> bytes:
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    call = fake.Call(body, orjson.dumps(body), {"alt": "sse"}, {"model": "gemini-2.5-pro"}, TEXT, 6)
    reply = fake.gemini_stream(call)
    assert isinstance(reply, fake.StreamReply)
    return b"".join(reply.frames)


# Real-looking streams: Anthropic (event + data, with a ping), OpenAI chat (data only,
# ending in [DONE]), Gemini alt=sse (CRLF line ends), plus comments and ids.
STREAMS = {
    "anthropic": _anthropic(),
    "chat": _chat(),
    "gemini": _gemini(),
    "mixed": b": keep-alive\nid: 7\nretry: 3000\nevent: update\ndata: one\ndata: two\n\ndata:x\r\n\r\n",
}


def feed_all(pieces: list[bytes]) -> tuple[list[Event], SSEParser]:
    parser = SSEParser()
    events: list[Event] = []
    for piece in pieces:
        events += parser.feed(piece)
    events += parser.close()
    return events, parser


def cut(data: bytes, points: list[int]) -> list[bytes]:
    bounds = [0, *sorted(set(points)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def summary(parser: SSEParser) -> tuple[Event | None, bool, int | None]:
    return parser.pending, parser.clean, parser.retry


# --- splits change nothing -------------------------------------------------------------


@pytest.mark.parametrize("name", STREAMS)
def test_every_two_way_split_gives_the_same_events(name):
    data = STREAMS[name]
    whole, parser = feed_all([data])
    for at in range(len(data) + 1):
        events, split_parser = feed_all([data[:at], data[at:]])
        assert events == whole, at
        assert summary(split_parser) == summary(parser)


@pytest.mark.parametrize("name", STREAMS)
def test_byte_by_byte_gives_the_same_events(name):
    data = STREAMS[name]
    assert feed_all([data[i : i + 1] for i in range(len(data))])[0] == feed_all([data])[0]


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"])
@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(sorted(STREAMS)), points=st.lists(st.integers(min_value=0, max_value=4000), max_size=30))
def test_random_splits_and_line_endings(ending, name, points):
    data = STREAMS[name].replace(b"\r\n", b"\n").replace(b"\n", ending)
    points = [p % (len(data) + 1) for p in points]
    whole, parser = feed_all([data])
    events, split_parser = feed_all(cut(data, points))
    assert events == whole
    assert summary(split_parser) == summary(parser)
    # The line ending never matters.
    assert whole == feed_all([STREAMS[name].replace(b"\r\n", b"\n")])[0]


_field = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\0"), max_size=12)


@settings(max_examples=60, deadline=None)
@given(
    blocks=st.lists(
        st.tuples(
            st.one_of(st.none(), _field.filter(lambda s: s != "")),
            st.lists(_field, min_size=1, max_size=3),
            st.one_of(st.none(), _field),
            st.booleans(),
        ),
        max_size=6,
    ),
    ending=st.sampled_from(["\n", "\r\n", "\r"]),
    points=st.lists(st.integers(min_value=0, max_value=10_000), max_size=10),
)
def test_serialised_events_come_back(blocks, ending, points):
    """Events written by the rules (with comments, any line ending) parse back."""
    lines: list[str] = []
    expected: list[Event] = []
    last_id = None
    for event, data, ident, comment in blocks:
        if comment:
            lines.append(":comment")
        if event is not None:
            lines.append(f"event: {event}")
        lines += [f"data: {d}" for d in data]
        if ident is not None:
            lines.append(f"id: {ident}")
            last_id = ident
        lines.append("")
        expected.append(Event(event or "message", "\n".join(data), last_id))
    stream = "".join(line + ending for line in lines).encode()
    points = [p % (len(stream) + 1) for p in points]
    events, parser = feed_all(cut(stream, points))
    assert events == expected
    assert parser.clean and parser.pending is None


@settings(max_examples=200, deadline=None)
@given(
    blocks=st.lists(
        st.tuples(st.one_of(st.none(), _field), st.lists(_field, min_size=1, max_size=2),
                  st.one_of(st.none(), _field), st.booleans()),
        max_size=6,
    ),
    ending=st.sampled_from(["\n", "\n", "\r\n"]),
    cut_at=st.one_of(st.none(), st.integers(min_value=0, max_value=10_000)),
)
def test_a_whole_body_parses_as_the_incremental_parser_reads_it(blocks, ending, cut_at):
    """`parse` reads providers' plain streams a block at a time: whatever the body (ids,
    comments, multi-line data, CRLF, a cut end), its events, `pending` and `clean` are
    the incremental parser's."""
    lines: list[str] = []
    for event, data, ident, comment in blocks:
        lines += [":c"] if comment else []
        lines += [f"event: {event}"] if event is not None else []
        lines += [f"data: {d}" for d in data] + ([f"id: {ident}"] if ident is not None else []) + [""]
    stream = "".join(line + ending for line in lines).encode()
    if cut_at is not None:
        stream = stream[: cut_at % (len(stream) + 1)]
    events, parser = parse(stream)
    expected, reference = feed_all([stream])
    assert events == expected
    assert summary(parser) == summary(reference)


def test_plain_provider_streams_take_the_block_path():
    from aiogw.sse import plain_events

    for name in ("anthropic", "chat"):
        plain = plain_events(STREAMS[name])
        assert plain is not None
        assert [Event(kind, data.decode()) for kind, data in plain] == feed_all([STREAMS[name]])[0]
    assert plain_events(STREAMS["gemini"]) is None and plain_events(STREAMS["mixed"]) is None  # CRLF; ids


# --- the rules, one by one ---------------------------------------------------------------


def test_anthropic_stream_reads_as_its_events():
    events, parser = parse(STREAMS["anthropic"])
    assert [e.event for e in events][:3] == ["message_start", "content_block_start", "ping"]
    assert events[-1] == Event("message_stop", '{"type":"message_stop"}')
    text = "".join(orjson.loads(e.data)["delta"]["text"] for e in events if e.event == "content_block_delta")
    assert text == TEXT
    assert parser.clean and parser.pending is None


def test_chat_stream_ends_with_done():
    events, _ = parse(STREAMS["chat"])
    assert {e.event for e in events} == {"message"}
    assert events[-1].data == "[DONE]"


def test_gemini_crlf_events():
    events, _ = parse(STREAMS["gemini"])
    assert all(orjson.loads(e.data)["candidates"] for e in events)
    assert not any("\r" in e.data for e in events)


def test_line_endings_cr_lf_crlf_are_equal():
    lf = b"event: a\ndata: 1\ndata: 2\n\ndata: 3\n\n"
    assert parse(lf)[0] == parse(lf.replace(b"\n", b"\r\n"))[0] == parse(lf.replace(b"\n", b"\r"))[0]
    assert parse(lf)[0] == [Event("a", "1\n2"), Event("message", "3")]


def test_crlf_split_between_cr_and_lf_is_one_line_end():
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\ndata: b\r") == []
    assert parser.feed(b"\n") == []
    assert parser.feed(b"\r") == [Event("message", "a\nb")]  # the blank line, ended by a lone CR
    assert parser.feed(b"\ndata: c\n\n") == [Event("message", "c")]  # that LF was its pair


def test_lone_cr_then_lf_is_one_blank_line_not_two():
    assert parse(b"data: a\r\r\ndata: b\r\n\r\n")[0] == [Event(data="a"), Event(data="b")]


def test_comments_are_ignored():
    assert parse(b": hello\ndata: x\n: between\n\n:\n\n")[0] == [Event(data="x")]


def test_one_optional_space_after_the_colon():
    events, _ = parse(b"data:x\n\ndata: x\n\ndata:  x\n\ndata: \n\n")
    assert [e.data for e in events] == ["x", "x", " x", ""]


def test_fields_without_a_colon():
    # "data" alone appends an empty line; "event" alone resets the type to the default.
    assert parse(b"data\ndata\n\n")[0] == [Event(data="\n")]
    assert parse(b"event\ndata: x\n\n")[0] == [Event("message", "x")]


def test_unknown_fields_and_colon_in_value():
    assert parse(b"foo: bar\ndata: a:b: c\n\n")[0] == [Event(data="a:b: c")]


def test_block_without_data_is_not_dispatched():
    assert parse(b"event: ping\n\nid: 3\n\ndata: x\n\n")[0] == [Event(data="x", id="3")]


def test_id_persists_and_resets_and_ignores_nul():
    events, _ = parse(b"id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\nid: x\0y\ndata: d\n\n")
    assert [e.id for e in events] == ["1", "1", "", ""]


def test_retry_only_ascii_digits():
    events, parser = parse(b"retry: 1500\ndata: a\n\nretry: 15s\ndata: b\n\nretry: \xd9\xa1\ndata: c\n\n")
    assert [e.retry for e in events] == [1500, None, None]
    assert parser.retry == 1500


def test_bom_at_start_only():
    assert parse(b"\xef\xbb\xbfdata: x\n\n")[0] == [Event(data="x")]
    parser = SSEParser()
    assert parser.feed(b"\xef") == [] and parser.feed(b"\xbb") == []
    assert parser.feed(b"\xbfdata: y\n\n") == [Event(data="y")]
    # A second BOM is not stripped: it makes the field name unknown.
    assert parse(b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\ndata: z\n\n")[0] == [Event(data="z")]


def test_multibyte_character_split_across_feeds():
    data = "data: 🎉日本\n\n".encode()
    for at in range(len(data) + 1):
        assert feed_all([data[:at], data[at:]])[0] == [Event(data="🎉日本")]


def test_invalid_utf8_is_replaced():
    assert parse(b"data: a\xffb\n\n")[0] == [Event(data="a\ufffdb")]


def test_unterminated_event_is_pending_not_dispatched():
    for tail in (b"data: partial", b"data: partial\n", b"event: x\ndata: partial\r\n"):
        events, parser = parse(b"data: whole\n\n" + tail)
        assert events == [Event(data="whole")]
        assert not parser.clean
        assert parser.pending is not None and parser.pending.data == "partial"


def test_clean_end_has_nothing_pending():
    _, parser = parse(b"data: a\n\n")
    assert parser.clean and parser.pending is None
    _, parser = parse(b"data: a\n\nevent: x\n")  # cut mid-event, but no data yet
    assert not parser.clean and parser.pending is None
    _, parser = parse(b"")
    assert parser.clean and parser.pending is None


def test_trailing_lone_cr_ends_the_event():
    # A CR is a whole line end: the spec dispatches here, with no LF to wait for.
    events, parser = parse(b"data: a\r\r")
    assert events == [Event(data="a")] and parser.clean


def test_many_small_feeds_of_one_long_line():
    parser = SSEParser()
    line = b"x" * 100_000
    for i in range(0, len(line), 7):
        assert parser.feed(b"data: " + line[i : i + 7] if i == 0 else line[i : i + 7]) == []
    assert parser.feed(b"\n\n") == [Event(data="x" * 100_000)]
