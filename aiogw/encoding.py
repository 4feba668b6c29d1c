"""Undo a response's Content-Encoding, for the audit tap (the relay forwards the
compressed bytes untouched; DESIGN §7).

`decode` is tolerant by design: an upstream that dies mid-stream leaves a gzip stream
without its end, and the audit still wants every byte that decodes. So truncated or
corrupt input gives the output decoded up to that point instead of an error. Only an
encoding we cannot decode at all raises (ValueError), because then nothing is known.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

# Decompress in bounded slices: when a slice is corrupt, what earlier slices produced
# is kept and the bad one is redone finely. 64 KiB keeps the per-slice cost (a call and
# a copy of zlib's state) negligible against zlib's own work.
_SLICE = 64 * 1024
# Only a damaged slice is redone in steps this small; the loss is what they would yield.
_SALVAGE_STEP = 64
_GZIP_WBITS = 16 + zlib.MAX_WBITS
_ZLIB_WBITS = zlib.MAX_WBITS
_RAW_WBITS = -zlib.MAX_WBITS
_IDENTITY = frozenset({"", "identity", "none"})  # "none" is not standard, but seen in the wild


def decode(body: bytes, content_encoding: str | None, limit: int | None = None) -> bytes:
    """The body with its Content-Encoding undone.

    Handles identity, gzip, x-gzip and deflate (zlib-wrapped, or raw as some servers
    send it), and lists of codings ("gzip, identity"), undone last-applied first.
    Truncated or corrupt data yields what decoded before the damage. `limit` caps the
    output (a small body can inflate a thousandfold); what lies past it is dropped.
    Raises ValueError naming the coding for anything else (br, zstd, compress, …).
    """
    if not content_encoding:
        return body if limit is None else body[:limit]
    codings = [c.strip().lower() for c in content_encoding.split(",")]
    for coding in codings:
        if coding not in _IDENTITY and coding not in _DECODERS:
            raise ValueError(
                f"unsupported Content-Encoding {coding!r} (in {content_encoding!r}): "
                "only gzip, x-gzip, deflate and identity can be decoded"
            )
    for coding in reversed(codings):
        if coding not in _IDENTITY:
            body = _DECODERS[coding](body, limit)
    return body if limit is None else body[:limit]


def _gunzip(body: bytes, limit: int | None) -> bytes:
    """gzip, including several concatenated members (RFC 1952 allows it)."""
    out: list[bytes] = []
    room = limit
    while body:
        data, end = _inflate(zlib.decompressobj(_GZIP_WBITS), body, room)
        out.append(data)
        if room is not None:
            room -= len(data)
        if end is None or room == 0:
            break  # truncated, corrupt or full: keep what came out
        body = body[end:]
        if not body.startswith(b"\x1f\x8b"):
            break  # trailing garbage after the last member is ignored, as gzip(1) does
    return b"".join(out)


def _deflate(body: bytes, limit: int | None) -> bytes:
    """HTTP's deflate is zlib-wrapped (RFC 9110), but servers sending raw deflate are
    common enough that browsers accept both; tell them apart by the zlib header."""
    if not body:
        return b""
    if _zlib_header(body):
        data = _inflate(zlib.decompressobj(_ZLIB_WBITS), body, limit)[0]
        if data:
            return data
        # About one raw stream in 500 starts with bytes that pass the header check.
    return _inflate(zlib.decompressobj(_RAW_WBITS), body, limit)[0]


def _zlib_header(body: bytes) -> bool:
    # RFC 1950: CM=8 (deflate) in the low nibble, and CMF*256+FLG divisible by 31.
    return len(body) >= 2 and body[0] & 0x0F == 8 and (body[0] << 8 | body[1]) % 31 == 0


def _inflate(decompressor: zlib._Decompress, body: bytes, room: int | None) -> tuple[bytes, int | None]:
    """What decodes (at most `room` bytes), and where in `body` the compressed stream
    ended (None: it did not, or the output was cut at `room`)."""
    if room is not None and room <= 0:
        return b"", None
    out: list[bytes] = []
    view = memoryview(body)
    for start in range(0, len(body), _SLICE):
        piece = view[start : start + _SLICE]
        before = decompressor.copy()  # zlib drops a failing call's whole output
        try:
            data = decompressor.decompress(piece, room or 0)  # 0: no bound
        except zlib.error:
            out.append(_salvage(before, piece, room))
            return b"".join(out), None
        out.append(data)
        if room is not None:
            room -= len(data)
            if room <= 0:
                return b"".join(out), None
        if decompressor.eof:
            return b"".join(out), start + len(piece) - len(decompressor.unused_data)
    tail = decompressor.flush()  # a truncated stream: flush gives what is pending
    out.append(tail if room is None else tail[:room])
    return b"".join(out), None


def _salvage(decompressor: zlib._Decompress, piece: memoryview, room: int | None) -> bytes:
    """Redo a slice that failed in small steps, keeping the output before the damage."""
    out: list[bytes] = []
    try:
        for start in range(0, len(piece), _SALVAGE_STEP):
            out.append(decompressor.decompress(piece[start : start + _SALVAGE_STEP]))
    except zlib.error:
        pass  # corrupt from here on: what came out so far is the answer
    data = b"".join(out)
    return data if room is None else data[:room]


_DECODERS = {"gzip": _gunzip, "x-gzip": _gunzip, "deflate": _deflate}
CODINGS = frozenset(_DECODERS)  # what `decode` undoes (identity aside)


def strict_slices(data: bytes, coding: str, size: int) -> Iterator[bytes]:
    """`data` decoded in slices of at most `size` bytes, strictly, for a reader that must
    refuse bad data and bound what it decodes as it goes (a request body, `aiogw.body`):
    gzip may be several members, deflate zlib-wrapped or raw (as `decode` reads them);
    ValueError, naming what is wrong, for data cut short, damaged, or followed by
    anything but another gzip member. `decode` keeps what it can instead: it reads
    responses, where the bytes are relayed as they came anyway."""
    if coding != "deflate":
        yield from _strict(data, _GZIP_WBITS, coding, size, members=True)
        return
    if not _zlib_header(data):
        yield from _strict(data, _RAW_WBITS, coding, size, members=False)
        return
    wrapped = _strict(data, _ZLIB_WBITS, coding, size, members=False)
    try:
        first = next(wrapped)
    except StopIteration:
        return
    except ValueError:
        # About one raw stream in 500 starts with bytes that pass the header check.
        yield from _strict(data, _RAW_WBITS, coding, size, members=False)
        return
    yield first
    yield from wrapped


def _strict(data: bytes, wbits: int, coding: str, size: int, members: bool) -> Iterator[bytes]:
    rest = data
    while True:
        inflater = zlib.decompressobj(wbits)
        pending = rest
        while not inflater.eof:
            try:
                piece = inflater.decompress(pending, size)
            except zlib.error as exc:
                raise ValueError(f"not valid {coding} data ({exc})") from None
            pending = inflater.unconsumed_tail
            if piece:
                yield piece
            elif not pending:
                raise ValueError(f"not complete {coding} data")
        rest = inflater.unused_data
        if not rest:
            return
        if not (members and rest[:2] == b"\x1f\x8b"):
            raise ValueError(f"followed by {len(rest)} bytes that are not {coding} data")
