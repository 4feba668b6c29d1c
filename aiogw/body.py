"""Reading a request body: bounded in size and time, a compressed one decoded piecewise.

The server runs with `auto_decompress=False`: aiohttp would otherwise inflate a gzip
body in its protocol, as each packet arrives, before the handler has even looked at
the key (2 MB of gzip that inflates to 2 GiB held the loop 3.9 s, for a client with no
key). Here a body is read only after authentication, and inflated in slices of output
with a yield to the loop between them, stopping at `max_body` bytes of output.
"""

from __future__ import annotations

import asyncio

from aiohttp import HttpVersion11, web

from aiogw import encoding
from aiogw.errors import BadRequest, RequestTimeout, TooLarge
from aiogw.untrusted import text

# Output per decompress call: the loop is held for about one slice's work (~0.1 ms at
# zlib's speed), and at most this much is produced past `max_body` before refusing.
_SLICE = 256 * 1024
_IDENTITY = ("", "identity")


async def read(request: web.Request, max_body: int, seconds: float) -> bytes | None:
    """The body, decoded; None when there is none. Raises TooLarge past `max_body`
    (decoded size), RequestTimeout when the connection sweep found it slower than
    `seconds` ([clients] body_timeout, named in the message), BadRequest for a coding
    the gateway cannot decode."""
    if not request.body_exists:
        return None
    length = request.content_length
    if length is not None and length > max_body:
        raise TooLarge(f"the request body ({length} bytes) is over the gateway's limit of {max_body} bytes")
    coding = request.headers.get("Content-Encoding", "").strip().lower()
    if coding not in _IDENTITY and coding not in encoding.CODINGS:
        raise BadRequest(
            f"the request body's Content-Encoding {text(coding, 40)!r} is not supported: send it uncompressed, "
            "gzip or deflate"
        )
    await _continue(request)
    try:
        # The time is kept by the connection sweep (`connections`), which fails the
        # body's stream with a TimeoutError: a timer here cost 8 µs a request.
        raw = await _raw(request, max_body)
        if coding in _IDENTITY:
            return raw
        return await _inflate(raw, coding, max_body)
    except TimeoutError:
        raise RequestTimeout(
            f"the request body took over {seconds:g} s to arrive; the gateway stopped waiting for it"
        ) from None


async def no_expect_handler(request: web.Request) -> None:
    """The route's expect handler: nothing before the handler runs. aiohttp's own says
    100 Continue before the key is checked (so a client without one uploads its body
    anyway), answers any other expectation with a plain-text 417 the agent's SDK cannot
    read, and a value that is not UTF-8 with a 500. Here `read` says 100 Continue once
    the key is good and the body is wanted; another expectation is ignored, as RFC 9110
    allows, and never forwarded."""


async def _continue(request: web.Request) -> None:
    if request.version == HttpVersion11 and request.headers.get("Expect", "").strip().lower() == "100-continue":
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the response proper has not started


async def _raw(request: web.Request, limit: int) -> bytes:
    """The bytes as sent. With a Content-Length the parser stops there (checked above)
    and the blocks are joined once; without one (chunked) the size is counted as the
    blocks come. A compressed body is bounded here too, then again by what it decodes to."""
    content = request.content
    if request.content_length is not None:
        return await content.read()
    blocks, size = [], 0
    while block := await content.readany():
        size += len(block)
        if size > limit:
            raise TooLarge(f"the request body is over the gateway's limit of {limit} bytes")
        blocks.append(block)
    return b"".join(blocks)


async def _inflate(data: bytes, coding: str, max_body: int) -> bytes:
    out: list[bytes] = []
    size = 0
    try:
        for piece in encoding.strict_slices(data, coding, _SLICE):
            size += len(piece)
            if size > max_body:
                raise TooLarge(f"the request body decodes to over the gateway's limit of {max_body} bytes")
            out.append(piece)
            await asyncio.sleep(0)  # let other requests through between slices
    except ValueError as exc:
        raise BadRequest(f"the request body is {exc}; send it as {coding} whole, or uncompressed") from None
    return b"".join(out)
