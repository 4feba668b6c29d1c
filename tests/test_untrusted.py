"""aiogw.untrusted: text from outside made storable, and shown visibly (plain data)."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from aiogw import untrusted


def test_a_header_aiohttp_escaped_becomes_valid_text():
    raw = b"\xff\xfe-agent \xc3\xa9".decode("utf-8", "surrogateescape")  # as aiohttp hands it over
    assert not untrusted.is_utf8(raw)
    clean = untrusted.text(raw, 100)
    assert clean == "\\xff\\xfe-agent é" and clean.encode("utf-8")  # says what the client sent


def test_long_values_are_cut_and_say_so():
    assert untrusted.text("a" * 10_000, 512) == "a" * 512 + "…[9488 more characters]"
    assert untrusted.text("short", 512) == "short" and untrusted.text(None, 5) is None


@given(st.text(alphabet=st.characters(codec=None), max_size=300), st.integers(min_value=1, max_value=400))
def test_any_text_becomes_storable_and_bounded(value, limit):
    clean = untrusted.text(value, limit)
    clean.encode("utf-8")  # never raises: SQLite, orjson and the log take it
    orjson.dumps(clean)
    assert len(clean) <= limit + len("…[ more characters]") + 6


def test_bad_header_names_the_first_one_that_is_not_utf8():
    bad = b"\xff".decode("utf-8", "surrogateescape")
    assert untrusted.bad_header([("Accept", "*/*"), ("User-Agent", "é ok")]) is None
    assert untrusted.bad_header([("Accept", "*/*"), ("X-Thing", bad), ("Y", bad)]) == "X-Thing"


def test_visible_escapes_what_a_terminal_acts_on():
    assert untrusted.visible("a\x1b[2Jb\x07\x7f\u009b\u202e") == "a\\x1b[2Jb\\x07\\x7f\\x9b\\u202e"
    assert untrusted.visible("line\n\tnext", lines=True) == "line\n\tnext"
    assert untrusted.visible("line\nnext") == "line\\x0anext"


def test_json_visible_reads_back_the_same():
    value = {"m": "a\x7fb\u009b\u202ec\x1b\u2028"}
    data = untrusted.json_visible(orjson.dumps(value))
    assert data.isascii() and orjson.loads(data) == value
