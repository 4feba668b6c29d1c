"""aiogw.relay over canned byte lists: no socket, no sleep."""

from __future__ import annotations

import orjson
import pytest

from aiogw.limits.usagechunk import UsageChunkFilter
from aiogw.relay import Ending, relay

SECRET = b"sk-provider-secret-123"


class Source:
    """Canned chunks; raises `error` after them when given (an upstream that breaks)."""

    def __init__(self, chunks: list[bytes], error: BaseException | None = None) -> None:
        self.chunks, self.error = list(chunks), error

    async def read(self) -> bytes:
        if self.chunks:
            return self.chunks.pop(0)
        if self.error is not None:
            raise self.error
        return b""


class Client:
    def __init__(self, gone_after: int | None = None) -> None:
        self.got: list[bytes] = []
        self.gone_after = gone_after

    async def write(self, chunk: bytes) -> None:
        if self.gone_after is not None and len(self.got) >= self.gone_after:
            raise ConnectionResetError("client gone")
        self.got.append(chunk)


class Watch:
    """Blocks once it has read `word`, like the answer guard's watch."""

    def __init__(self, word: bytes) -> None:
        self.word, self.seen, self.blocked = word, b"", None

    def feed(self, chunk: bytes) -> None:
        self.seen += chunk
        if self.word in self.seen:
            self.blocked = "found"


EURO = "€".encode()  # three bytes
SSE = [b"event: content_block_delta\ndata: {\"delta\":{\"text\":\"", EURO[:1], EURO[1:] + b"\"}}\n", b"\n",
       b"da", b"ta: {\"type\":\"message_stop\"}\n\n"]


async def test_chunks_go_out_as_they_came_split_anywhere():
    chunks: list[bytes] = []
    client = Client()
    assert await relay(Source(SSE).read, client.write, chunks=chunks) is Ending.DONE
    assert client.got == SSE and chunks == SSE  # same chunks, same boundaries, nothing re-framed


async def test_a_gemini_array_split_anywhere_is_relayed_whole():
    body = orjson.dumps([{"candidates": [{"content": {"parts": [{"text": "hé"}]}}]}] * 3)
    pieces = [body[i : i + 7] for i in range(0, len(body), 7)]
    client = Client()
    assert await relay(Source(pieces).read, client.write) is Ending.DONE
    assert b"".join(client.got) == body


async def test_an_upstream_that_breaks_after_n_chunks():
    chunks: list[bytes] = []
    client = Client()
    ending = await relay(Source(SSE[:3], OSError("reset")).read, client.write, broke=(OSError,), chunks=chunks)
    assert ending is Ending.UPSTREAM_BROKE and client.got == SSE[:3] and chunks == SSE[:3]


async def test_an_error_that_is_not_a_break_is_not_swallowed():
    with pytest.raises(ValueError):
        await relay(Source(SSE[:1], ValueError("bug")).read, Client().write, broke=(OSError,))


async def test_a_client_gone_mid_stream_stops_reading():
    source = Source(SSE)
    client = Client(gone_after=2)
    assert await relay(source.read, client.write) is Ending.CLIENT_GONE
    assert client.got == SSE[:2] and len(source.chunks) == len(SSE) - 3  # nothing read past the failed write


async def test_a_guard_block_mid_stream_stops_after_the_chunk_that_completed_it():
    stream = [b"data: one\n\n", b"data: for", b"bidden\n\n", b"data: three\n\n"]
    client = Client()
    assert await relay(Source(stream).read, client.write, watch=Watch(b"forbidden")) is Ending.BLOCKED
    assert client.got == stream[:3]  # the watch reads after the write: it never delays a chunk


@pytest.mark.parametrize("cut", [0, 5, len(SECRET) - 1, len(SECRET)])
async def test_the_provider_key_is_never_written_whole(cut):
    body = b'data: {"echo":"' + SECRET + b'"}\n\n'
    at = body.index(SECRET) + cut
    client = Client()
    ending = await relay(Source([body[:at], body[at:]]).read, client.write, secret=SECRET)
    assert ending is Ending.ECHO and SECRET not in b"".join(client.got)


@pytest.mark.parametrize("sizes", [(10, 3), (1,) * 40, (7, 1, 1, 2)])
async def test_the_provider_key_split_over_many_short_chunks_is_never_written_whole(sizes):
    """Found in review: only the chunk before was kept, so a key cut into three pieces
    with a short middle one went through."""
    body = b'data: {"echo":"xxxx' + SECRET + b'yyyy"}\n\n'
    at = body.index(SECRET) - 4
    pieces, rest = [body[:at]], body[at:]
    for n in sizes:
        pieces.append(rest[:n])
        rest = rest[n:]
    pieces.append(rest)
    client = Client()
    ending = await relay(Source(pieces).read, client.write, secret=SECRET)
    assert ending is Ending.ECHO and SECRET not in b"".join(client.got)


async def test_the_usage_chunk_the_gateway_asked_for_is_taken_out():
    events = [
        b'data: {"choices":[{"delta":{"content":"hi"}}],"usage":null}\n\n',
        b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}\n\n',
        b"data: [DONE]\n\n",
    ]
    joined = b"".join(events)
    pieces = [joined[i : i + 11] for i in range(0, len(joined), 11)]
    chunks: list[bytes] = []
    client = Client()
    assert await relay(Source(pieces).read, client.write, chunks=chunks, strip=UsageChunkFilter()) is Ending.DONE
    out = b"".join(client.got)
    assert b"usage" not in out and b'"content":"hi"' in out and out.endswith(b"data: [DONE]\n\n")
    assert b"".join(chunks) == joined  # the audit keeps what the upstream sent
