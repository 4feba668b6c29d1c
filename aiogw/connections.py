"""Client connections: a cap per address, and a sweep that lets go of the stuck ones.

aiohttp bounds only an idle keep-alive connection (`keepalive_timeout`, set from
`[clients] idle_timeout`). A client that trickles its request head a line at a time,
or stops reading its answer, would hold its socket, the upstream request behind it
and the answer's buffers for as long as it likes. Here:

- a connection over `max_connections_per_address` from one address is closed at once;
- a request head still incomplete `header_timeout` seconds after its first byte gets
  a 408 and the connection is closed;
- a request body still incomplete `body_timeout` seconds after its head fails with a
  TimeoutError, which the reader (`aiogw.body`) answers with a 408;
- a connection whose unsent output has not moved for `write_timeout` seconds (the
  client reads nothing, its socket buffers are full) is aborted: the handler is
  cancelled, which closes the upstream request, and the exchange is audited with why.

One sweep a second walks the open connections: a few microseconds each, nothing on the
request path (a timer per request cost 8 µs).

The handler also answers what aiohttp could not parse (`handle_error`): in a provider's
envelope, recorded, never quoting the request's bytes. This leans on three attributes of
aiohttp's RequestHandler (`_request_in_progress`, `_messages`, `_loop`); aiohttp is
pinned, and tests/test_edge_hostile.py fails if they change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from aiogw.client_settings import ClientLimits
from aiogw.dialects import guess
from aiogw.untrusted import visible

log = logging.getLogger("aiogw.connections")

# How often the sweep runs: the timeouts are met to within this.
SWEEP_SECONDS = 1.0
_TIMEOUT_408 = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"

# Why a connection was let go, as the audit's reason for an exchange on it.
HEADER_TIMEOUT = "client_timeout: headers"
WRITE_TIMEOUT = "client_timeout: not reading its answer"


class BodyTimeout(TimeoutError):
    """A request body slower than [clients] body_timeout. A TimeoutError, because that is
    what aiohttp's own read-on after an early answer stops quietly on."""


class Handler(RequestHandler):
    """aiohttp's handler, watched: it tells the Watch when it opens, receives and closes."""

    __slots__ = ("address", "body", "body_since", "gone", "head_since", "stall_since", "stall_size", "watch")

    def __init__(self, manager: web.Server, *, watch: Watch, **kwargs) -> None:
        super().__init__(manager, **kwargs)
        self.watch = watch
        self.address: str | None = None
        self.head_since = 0.0  # when the first byte of a still incomplete request head came
        self.body: Any = None  # the payload of the newest request: while it is under way, bytes are body
        self.body_since = 0.0  # when its head came, while its body is still coming
        self.stall_size = 0  # unsent output at the last sweep, and since when it has not moved
        self.stall_since = 0.0
        self.gone: str | None = None  # why the gateway let go of this connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        self.address = peer[0] if isinstance(peer, tuple) else None
        if not self.watch.admit(self):
            self.gone = "too many connections from this address"
            transport.abort()  # type: ignore[attr-defined]

    def connection_lost(self, exc: BaseException | None) -> None:
        self.watch.release(self)
        super().connection_lost(exc)

    def handle_error(
        self, request: Any, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        """A request aiohttp could not parse (or a fault before any handler): answered in
        the envelope of the provider its path looks like, with a one-line reason.
        aiohttp's own answer and log line quote the offending line as it came, a gateway
        key in it included; this names the fault and never the bytes."""
        reason = _reason(exc) if exc is not None else visible(message or "")[:120]
        self.logger.warning("a request from %s could not be served (%d): %s", request.remote, status, reason)
        if request.writer.output_size > 0:  # the answer has begun: all that is left is to cut
            raise ConnectionError("the answer has begun; the connection is cut")
        if status < 500 and self.watch.on_unparsed is not None:
            # Refused before any handler (a handler's own fault records itself).
            self.watch.on_unparsed(request, status, reason)
        try:
            dialect = guess(request.path)
        except Exception:  # a request line too broken to have a path
            dialect = guess("")
        text = f"the gateway could not read this request: {reason}" if status < 500 else "the gateway failed"
        resp = web.Response(status=status, body=dialect.error_body(status, text), content_type="application/json")
        resp.force_close()
        return resp

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._messages:  # a whole head arrived (start() takes it on the next loop turn)
            self.body = body = self._messages[-1][1]
            self.body_since = 0.0 if body.is_eof() else self._loop.time()
            self.head_since = 0.0
        elif self._request_in_progress or (self.body is not None and not self.body.is_eof()):
            # A body under way (the sweep's body clock bounds it), or one aiohttp reads to
            # its end after an early answer (its "lingering", bounded by aiohttp).
            self.head_since = 0.0
        elif not self.head_since:
            self.head_since = self._loop.time()


def _reason(exc: BaseException) -> str:
    """The first line of aiohttp's message, which names the fault ("Invalid header value
    char"), without the quoted bytes that follow it."""
    text = str(getattr(exc, "message", "") or type(exc).__name__)
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)
    first = first.split(" b'", 1)[0].split(' b"', 1)[0].rstrip(":")
    return visible(first[:120])


class Watch:
    """The open connections, by address, and the sweep over them. Owned by the app:
    `start` at start-up, `stop` at shutdown."""

    def __init__(self, limits: ClientLimits) -> None:
        self.limits = limits
        self.open: set[Handler] = set()
        self.by_address: Counter[str | None] = Counter()
        self.refused = 0  # connections closed for the per-address cap
        self.timed_out = Counter[str]()  # connections let go, by reason
        # Records a request aiohttp answered itself (it could not parse it): Proxy.unparsed.
        self.on_unparsed: Callable[[Any, int, str], None] | None = None
        self._task: asyncio.Task[None] | None = None

    def admit(self, handler: Handler) -> bool:
        cap = self.limits.max_connections_per_address
        if cap and self.by_address[handler.address] >= cap:
            self.refused += 1
            return False
        self.open.add(handler)
        self.by_address[handler.address] += 1
        return True

    def release(self, handler: Handler) -> None:
        if handler in self.open:
            self.open.discard(handler)
            self.by_address[handler.address] -= 1
            if not self.by_address[handler.address]:
                del self.by_address[handler.address]

    def factory(self, server: web.Server):
        """The protocol factory for the listening socket: aiohttp's own, watched."""
        loop = asyncio.get_running_loop()
        kwargs = server._kwargs  # what AppRunner was given for its handlers (aiohttp pinned)

        def make() -> Handler:
            return Handler(server, loop=loop, watch=self, **kwargs)

        return make

    def start(self) -> None:
        limits = self.limits
        if self._task is None and (limits.header_timeout or limits.body_timeout or limits.write_timeout):
            self._task = asyncio.create_task(self._run(), name="aiogw-connection-sweep")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                self.sweep(loop.time())
            except Exception:  # the sweep must outlive any one connection's oddity
                log.exception("connection sweep failed; it runs again in %gs", SWEEP_SECONDS)

    def sweep(self, now: float) -> None:
        header, body, write = self.limits.header_timeout, self.limits.body_timeout, self.limits.write_timeout
        for h in list(self.open):
            transport = h.transport
            if transport is None or transport.is_closing():
                continue
            if header and h.head_since and now - h.head_since > header:
                self._let_go(h, HEADER_TIMEOUT)
                transport.write(_TIMEOUT_408)
                transport.close()
                continue
            if body and h.body_since and now - h.body_since > body:
                h.body_since = 0.0
                if not h.body.is_eof():
                    # The reader (aiogw.body) answers 408; a body aiohttp reads on after
                    # an early answer is dropped, the connection closed.
                    h.body.set_exception(BodyTimeout(f"no whole body in {body:g} s"))
            if not write:
                continue
            size = transport.get_write_buffer_size()
            if not size:
                h.stall_size = 0
            elif size != h.stall_size:
                h.stall_size, h.stall_since = size, now
            elif now - h.stall_since > write:
                self._let_go(h, WRITE_TIMEOUT)
                transport.abort()  # close() would wait for the buffer to drain: it never will

    def cut(self) -> None:
        """Abort every open connection (the end of a drain): their handlers are cancelled."""
        for h in list(self.open):
            if h.transport is not None:
                h.transport.abort()

    def _let_go(self, h: Handler, why: str) -> None:
        h.gone = why
        self.timed_out[why] += 1
        log.info("closing a connection from %s: %s", h.address, why)


class Site(web.TCPSite):
    """A TCP site whose connections are `Handler`s of one Watch."""

    __slots__ = ("_watch",)

    def __init__(self, runner: web.AppRunner, watch: Watch, host: str, port: int, **kwargs) -> None:
        super().__init__(runner, host, port, **kwargs)
        self._watch = watch

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            self._watch.factory(server),
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
