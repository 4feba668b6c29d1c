"""aiogw.encoding: undo Content-Encoding, tolerating a stream cut mid-way."""

from __future__ import annotations

import gzip
import random
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiogw.encoding import decode

BODY = b"".join(b'data: {"n": %d, "text": "Gr\xc3\xbc\xc3\x9fe \xf0\x9f\x8e\x89"}\n\n' % i for i in range(3000))


def gzip_frames(frames: list[bytes]) -> bytes:
    """Compressed as the fake upstream (and real servers) stream it: a sync flush per
    event, so each event is decodable as it arrives."""
    packer = zlib.compressobj(wbits=31)
    return b"".join(packer.compress(f) + packer.flush(zlib.Z_SYNC_FLUSH) for f in frames) + packer.flush()


def raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize("coding", [None, "", "identity", "IDENTITY"])
def test_identity(coding):
    assert decode(BODY, coding) is BODY


@pytest.mark.parametrize(
    ("coding", "pack"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("GZip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", raw_deflate),
        (" gzip , identity ", gzip.compress),
    ],
)
def test_whole_bodies(coding, pack):
    assert decode(pack(BODY), coding) == BODY


def test_codings_are_undone_last_first():
    assert decode(gzip.compress(zlib.compress(BODY)), "deflate, gzip") == BODY


def test_concatenated_gzip_members():
    assert decode(gzip.compress(b"one ") + gzip.compress(b"two"), "gzip") == b"one two"
    assert decode(gzip.compress(b"one ") + b"\x00garbage", "gzip") == b"one "


def test_empty_bodies():
    assert decode(b"", "gzip") == b""
    assert decode(b"", "deflate") == b""


def test_stream_cut_mid_gzip_gives_the_decodable_prefix():
    frames = [BODY[i : i + 500] for i in range(0, len(BODY), 500)]
    packed = gzip_frames(frames)
    seen_growth = 0
    previous = b""
    for at in range(0, len(packed), max(1, len(packed) // 200)):
        out = decode(packed[:at], "gzip")
        assert BODY.startswith(out)
        assert len(out) >= len(previous)
        seen_growth += len(out) > len(previous)
        previous = out
    assert seen_growth > 10  # the prefix really grows as more arrives
    # Cut right after a sync flush: every whole event before it is there.
    first_two = zlib.compressobj(wbits=31)
    head = b"".join(first_two.compress(f) + first_two.flush(zlib.Z_SYNC_FLUSH) for f in frames[:2])
    assert decode(head, "gzip") == b"".join(frames[:2])


def test_truncated_deflate_both_kinds():
    for packed in (zlib.compress(BODY), raw_deflate(BODY)):
        out = decode(packed[: len(packed) // 2], "deflate")
        assert out and BODY.startswith(out)


def test_corrupt_data_keeps_what_decoded_before():
    packed = bytearray(gzip_frames([BODY[i : i + 500] for i in range(0, len(BODY), 500)]))
    middle = len(packed) // 2
    packed[middle : middle + 20] = bytes(20)
    out = decode(bytes(packed), "gzip")
    assert BODY.startswith(out) and len(out) > len(BODY) // 4


def test_garbage_gives_nothing_not_an_error():
    assert decode(b"not compressed at all", "gzip") == b""


@pytest.mark.parametrize("coding", ["br", "zstd", "compress", "gzip, br", "snappy"])
def test_unknown_codings_raise_a_clear_error(coding):
    with pytest.raises(ValueError, match="unsupported Content-Encoding"):
        decode(b"x", coding)


@settings(max_examples=40, deadline=None)
@given(
    data=st.binary(max_size=3000),
    coding=st.sampled_from(["gzip", "deflate"]),
    cut=st.floats(min_value=0, max_value=1),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_any_cut_gives_a_prefix(data, coding, cut, seed):
    pieces = [data[i : i + 97] for i in range(0, len(data), 97)]
    packed = gzip_frames(pieces) if coding == "gzip" else random.Random(seed).choice([zlib.compress, raw_deflate])(data)
    out = decode(packed[: int(len(packed) * cut)], coding)
    assert data.startswith(out)
    assert decode(packed, coding) == data


@pytest.mark.parametrize(("coding", "pack"), [("gzip", gzip.compress), ("deflate", zlib.compress), (None, bytes)])
def test_limit_caps_the_output(coding, pack):
    bomb = pack(b"\0" * 5_000_000)
    assert decode(bomb, coding, limit=1000) == b"\0" * 1000
    assert decode(pack(b"abc"), coding, limit=1000) == b"abc"
    assert decode(gzip.compress(b"one ") + gzip.compress(b"two"), "gzip", limit=6) == b"one tw"
    assert decode(bomb, coding, limit=0) == b""
