"""The chunk loop of a relayed stream: byte chunks in from a source, out to a writer.

It knows no socket and no provider: `read` gives the upstream's next chunk (b"" at its
end), `write` hands a chunk to the client. Each chunk is written as it came, with no
re-framing and no JSON work, and kept by reference for the finisher. What may edit or
stop the stream comes in as plain objects: the usage-chunk filter, the answer guard's
watch, the provider key that must never go back. The loop says how the stream ended;
what that means for the connection (cut it, write a last error event) is the caller's.
Tested with canned byte lists (tests/test_relay.py).
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from typing import Protocol


class Ending(enum.Enum):
    DONE = "done"  # the upstream's end reached, everything written
    UPSTREAM_BROKE = "upstream_broke"  # `read` raised one of `broke`
    CLIENT_GONE = "client_gone"  # `write` raised ConnectionError
    BLOCKED = "blocked"  # the watch blocked the answer
    ECHO = "echo"  # the upstream sent the provider key back: the rest is withheld


class Filter(Protocol):
    def feed(self, chunk: bytes) -> bytes: ...
    def end(self) -> bytes: ...


class Watch(Protocol):
    blocked: object | None

    def feed(self, chunk: bytes) -> None: ...


async def relay(
    read: Callable[[], Awaitable[bytes]],
    write: Callable[[bytes], Awaitable[None]],
    *,
    broke: tuple[type[BaseException], ...] = (),
    chunks: list[bytes] | None = None,
    strip: Filter | None = None,
    watch: Watch | None = None,
    secret: bytes | None = None,
) -> Ending:
    """Relay until the source ends or something stops it; see `Ending`.

    `chunks` receives every chunk read (the audit's copy, as it came upstream). `strip`
    rewrites what is written (it may hold back an incomplete event). `watch` reads each
    chunk after it is written, so a guard never delays one. `secret`: a chunk that would
    carry it, alone or across the boundary with the one before, is not written.
    """
    # The last len(secret) - 1 bytes read before this chunk, however many chunks they
    # came in: the secret may span any number of short chunks.
    tail = b""
    keep = 1 - len(secret) if secret else 0
    while True:
        try:
            chunk = await read()
        except broke:
            return Ending.UPSTREAM_BROKE
        if not chunk:
            break
        if chunks is not None:
            chunks.append(chunk)
        if secret is not None:
            if secret in chunk or (tail and secret in tail + chunk[: len(secret)]):
                return Ending.ECHO
            tail = chunk[keep:] if len(chunk) >= -keep else (tail + chunk)[keep:]
        try:
            if strip is None:
                await write(chunk)
            elif cleaned := strip.feed(chunk):
                await write(cleaned)
        except ConnectionError:
            return Ending.CLIENT_GONE
        if watch is not None:
            watch.feed(chunk)
            if watch.blocked is not None:
                return Ending.BLOCKED
    if strip is not None and (rest := strip.end()):
        try:
            await write(rest)
        except ConnectionError:
            return Ending.CLIENT_GONE
    return Ending.DONE
