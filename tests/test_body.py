"""Compressed request bodies: what the gateway inflates, and what it refuses.

A request body is inflated strictly (`encoding.strict_slices`): every gzip member, a
deflate stream zlib-wrapped or raw; anything cut, damaged or trailing is a 400 in the
provider's envelope, never forwarded. The plain-data tests drive the decoder; the last
ones send through a real gateway to the fake upstream.
"""

from __future__ import annotations

import gzip
import zlib

import httpx
import orjson
import pytest

from aiogw import encoding

BODY = orjson.dumps({"model": "claude-haiku-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]})


def raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


def raw_that_looks_wrapped(data: bytes) -> tuple[bytes, bytes]:
    """A raw deflate stream whose first two bytes pass the zlib header check, with what
    it decodes to (`data` and trailing spaces). zlib's own encoder never writes one (its
    first block is final, or stored with zero padding), but any encoder may: a stored,
    non-final block whose padding bit 3 is set (0x08) and whose length's low byte is 29
    (0x081D is a multiple of 31), then an empty final stored block."""
    data += b" " * ((29 - len(data)) % 256)
    n = len(data)
    stream = bytes([0x08, n & 0xFF, n >> 8, ~n & 0xFF, (~n >> 8) & 0xFF]) + data + b"\x01\x00\x00\xff\xff"
    assert stream[0] & 0x0F == 8 and (stream[0] << 8 | stream[1]) % 31 == 0
    return stream, data


def decoded(data: bytes, coding: str, size: int = 7) -> bytes:
    return b"".join(encoding.strict_slices(data, coding, size))


def test_every_gzip_member_is_read():
    assert decoded(gzip.compress(b"first ") + gzip.compress(b"second"), "gzip") == b"first second"


def test_slices_are_bounded():
    assert max(map(len, encoding.strict_slices(gzip.compress(b"x" * 1000), "gzip", 64))) == 64


def test_deflate_is_read_wrapped_or_raw():
    assert decoded(zlib.compress(BODY), "deflate") == BODY
    assert decoded(raw_deflate(BODY), "deflate") == BODY
    packed, data = raw_that_looks_wrapped(BODY)
    assert decoded(packed, "deflate") == data


@pytest.mark.parametrize(
    ("data", "coding", "said"),
    [
        (gzip.compress(BODY) + b"trailing", "gzip", "followed by 8 bytes that are not gzip data"),
        (zlib.compress(BODY) + b"\x1f\x8b more", "deflate", "followed by 7 bytes that are not deflate data"),
        (gzip.compress(BODY)[:-12], "gzip", "not complete gzip data"),
        (b"not gzip at all", "gzip", "not valid gzip data"),
        (b"", "gzip", "not complete gzip data"),
    ],
)
def test_what_does_not_decode_whole_is_named(data, coding, said):
    with pytest.raises(ValueError, match=said):
        decoded(data, coding)


def test_two_gzip_members_reach_the_upstream_whole(gw):
    half = len(BODY) // 2
    r = httpx.post(f"{gw.url('anthropic')}/v1/messages", content=gzip.compress(BODY[:half]) + gzip.compress(BODY[half:]),
                   headers={"x-api-key": gw.key, "content-encoding": "gzip", "content-type": "application/json"})
    assert r.status_code == 200, r.text
    (sent,) = gw.fake.received
    assert sent.body == BODY and "content-encoding" not in {k.lower() for k in sent.headers}


def test_a_raw_deflate_body_that_looks_wrapped_is_read(gw):
    packed, data = raw_that_looks_wrapped(BODY)
    r = httpx.post(f"{gw.url('anthropic')}/v1/messages", content=packed,
                   headers={"x-api-key": gw.key, "content-encoding": "deflate", "content-type": "application/json"})
    assert r.status_code == 200, r.text
    (sent,) = gw.fake.received
    assert sent.body == data


def test_bytes_after_the_gzip_data_are_a_400_in_the_providers_envelope(gw):
    r = httpx.post(f"{gw.url('anthropic')}/v1/messages", content=gzip.compress(BODY) + b"junk",
                   headers={"x-api-key": gw.key, "content-encoding": "gzip", "content-type": "application/json"})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "followed by 4 bytes that are not gzip data" in error["message"]
    assert gw.fake.received == []
