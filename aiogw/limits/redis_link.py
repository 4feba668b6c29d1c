"""One connection to Redis, pipelined by the event loop: the limits' way to the store.

Every command issued in one loop turn goes out in one write, and the replies come
back in order on the same connection (Redis answers a connection's commands in the
order they came). Under load a turn admits and settles many requests, so their
scripts share one write and one read: the round trip's cost is paid once a turn, not
once a request. redis-py sends each command on its own and took 60-77 µs of client
CPU an EVALSHA here (a loop of calls on uvloop, hiredis installed), more than the
limits' whole budget a request; this client is the few lines of the protocol it
needs, hiredis encoding the commands and parsing the replies.

URLs: `redis://[USER@]HOST[:PORT][/DB]`, `rediss://` (TLS: `?ssl_ca_certs=PATH`,
`?ssl_cert_reqs=none`), `unix:///PATH[?db=N]`, and Sentinel:
`redis+sentinel://HOST:PORT[,HOST:PORT...]/SERVICE[/DB]` (`rediss+sentinel` for TLS
to the master), which asks the sentinels for the master at each (re)connect. Redis
Cluster is not spoken; the limits' keys carry one hash tag a user, so one user's
script touches one slot.

The link is either up or away. Away, a call fails at once (`StoreUnavailable`): the
caller decides (`[limits] on_store_failure`), and a task reconnects with a backoff.
A call whose reply takes longer than `timeout` takes the connection down with it: a
stalled Redis is away, not a hang of every request.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import hiredis

from aiogw.limits.redis_url import parse

log = logging.getLogger("aiogw.limits")


# What a command no one waits for (a settle) may wait for the next write: uvloop's
# timers tick in milliseconds, and a slot freed a few milliseconds late costs nothing.
LATER = 0.002


class StoreUnavailable(Exception):
    """Redis cannot answer now (away, stalled, read-only, loading)."""


class ReplyError(Exception):
    """Redis answered with an error that is not its being away (a script's bug)."""


class StoreRefused(StoreUnavailable):
    """Redis refused the gateway's credentials: a mistake in the config, not an outage."""


# Errors that mean "this server cannot take writes now": a replica after a failover,
# a server still loading its data, one out of memory. The connection is dropped and
# made again (Sentinel then names the new master).
_AWAY_ERRORS = ("READONLY", "LOADING", "MASTERDOWN", "OOM", "BUSY", "CLUSTERDOWN", "TRYAGAIN")
# Its credentials refused (a wrong password or user, a password Redis does not want,
# none where it needs one).
_REFUSED = ("WRONGPASS", "NOAUTH", "NOPERM", "ERR invalid password", "ERR AUTH", "ERR Client sent AUTH")


class Script:
    """A Lua script, called by its SHA-1 (the link loads it on every connection)."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()


class _Protocol(asyncio.Protocol):
    """The wire: writes what the link queued, hands each reply to the oldest waiter."""

    def __init__(self, link: RedisLink) -> None:
        self.link = link
        self.reader = hiredis.Reader(replyError=ReplyError)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        reader.feed(data)
        waiting = self.link._waiting
        while True:
            reply = reader.gets()
            if reply is False:
                return
            if not waiting:  # a reply nobody asked for: the stream is out of step
                self.link._lost("an unexpected reply")
                return
            future = waiting.popleft()[0]
            if future.done():  # its caller was cancelled; the reply is dropped in order
                continue
            if reply.__class__ is ReplyError:
                text = str(reply)
                if text.startswith(_AWAY_ERRORS) or text.startswith(_REFUSED):
                    future.set_exception(StoreUnavailable(text))
                    self.link._lost(text)
                    return
                future.set_exception(reply)
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.link._lost(str(exc) if exc else "closed by the server")


class RedisLink:
    """A pipelined connection that reconnects by itself; `call` and `run`."""

    def __init__(self, url: str, password: str | None, *, timeout: float = 1.0,
                 on_change: Callable[[bool, str], None] | None = None) -> None:
        self.address = parse(url)
        self.password = password
        self.timeout = timeout  # a reply later than this: Redis is stalled, the link goes down
        self.on_change = on_change  # (up, why): said once per change, by the owner
        self.scripts: list[Script] = []
        self.up = False
        self._protocol: _Protocol | None = None
        self._out = bytearray()  # commands of this loop turn, written at its end
        self._soon = False  # a write at the end of this loop turn is due
        self._later: asyncio.TimerHandle | None = None  # a write LATER seconds on is due
        self._waiting: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self._connecting: asyncio.Task[None] | None = None
        self._watch: asyncio.TimerHandle | None = None
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None  # the one it connected on
        self.failures = 0  # times the link went down

    def register(self, script: Script) -> Script:
        self.scripts.append(script)
        return script

    async def connect(self) -> None:
        """Connect now (start-up). Redis away: the link says so and reconnects itself.
        Its credentials refused: StoreRefused, for the gateway not to start."""
        try:
            await self._open()
        except StoreRefused:
            raise
        except (TimeoutError, OSError, StoreUnavailable, ReplyError) as exc:
            self._set(False, _why(exc))
            self._reconnect_later()

    def call(self, *args: bytes | str | int | float) -> asyncio.Future[Any]:
        """Queue one command; the future has its reply. Fails at once while away (and
        while a connection is being made: requests never wait behind its hello)."""
        if not self.up or self._protocol is None:
            raise StoreUnavailable("Redis is away")
        return self._send(args)

    def _send(self, args: tuple[bytes | str | int | float, ...]) -> asyncio.Future[Any]:
        return self._queue(hiredis.pack_command(args))

    def script(self, script: Script, keys: list[str], *args: bytes | str | int | float,
               urgent: bool = True) -> asyncio.Future[Any]:
        """EVALSHA, encoded in C (hiredis): what the limits send on every request, with
        the least work. NOSCRIPT is the caller's (`load`, then call again). Not
        `urgent`: it may wait up to LATER seconds for the next write (a settle: nobody
        waits for its reply, and its write syscall was a fifth of the gateway's CPU under
        load when every loop turn that ended an exchange wrote on its own)."""
        if not self.up or self._protocol is None:
            raise StoreUnavailable("Redis is away")
        return self._queue(hiredis.pack_command(("EVALSHA", script.sha, len(keys), *keys, *args)), urgent)

    async def load(self, script: Script) -> None:
        await self.call("SCRIPT", "LOAD", script.source)

    def run(self, script: Script, keys: list[str], args: list[Any]) -> Coroutine[Any, Any, Any]:
        """EVALSHA, queued now (so it reaches Redis ahead of whatever is queued after it;
        away: StoreUnavailable now); await the result for its reply, the script loaded
        again first if the server lost it (SCRIPT FLUSH)."""
        return self._reply(self.script(script, keys, *args), script, keys, args)

    async def _reply(self, sent: asyncio.Future[Any], script: Script, keys: list[str], args: list[Any]) -> Any:
        try:
            return await sent
        except ReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        await self.load(script)
        return await self.script(script, keys, *args)

    def _queue(self, command: bytes, urgent: bool = True) -> asyncio.Future[Any]:
        loop = self._loop  # kept: asyncio.get_running_loop() costs a getpid() a call on 3.11
        assert loop is not None
        if urgent:
            if not self._soon:
                self._soon = True
                loop.call_soon(self._flush)
        elif not self._soon and self._later is None:
            self._later = loop.call_later(LATER, self._flush)
        self._out += command
        future = loop.create_future()
        self._waiting.append((future, loop.time()))
        return future

    def _flush(self) -> None:
        """Everything queued, in one write (the urgent and the later alike)."""
        self._soon = False
        if self._later is not None:
            self._later.cancel()
            self._later = None
        protocol = self._protocol
        if protocol is not None and protocol.transport is not None and self._out:
            protocol.transport.write(bytes(self._out))
        self._out.clear()

    async def _open(self) -> None:
        host, port = await self._master()
        loop = self._loop = asyncio.get_running_loop()
        a = self.address
        connecting = (loop.create_unix_connection(lambda: _Protocol(self), a.path, ssl=a.tls) if a.path else
                      loop.create_connection(lambda: _Protocol(self), host, port, ssl=a.tls,
                                             server_hostname=host if a.tls else None))
        _, protocol = await asyncio.wait_for(connecting, self.timeout * 2)
        self._protocol = protocol
        try:
            hello: list[asyncio.Future[Any]] = []
            if self.password is not None:
                hello.append(self._send(("AUTH", *([a.username] if a.username else []), self.password)))
            if a.db:
                hello.append(self._send(("SELECT", a.db)))
            hello += [self._send(("SCRIPT", "LOAD", s.source)) for s in self.scripts]
            if a.sentinels:
                hello.append(self._send(("ROLE",)))
            replies = await asyncio.wait_for(asyncio.gather(*hello, return_exceptions=True), self.timeout * 2)
            for reply in replies:
                if isinstance(reply, BaseException):
                    text = str(reply)
                    if text.startswith(_REFUSED):
                        raise StoreRefused(f"Redis at {a.shown} refused the gateway's credentials ({text}): "
                                           "check [limits] password (and the user name in [limits] store)")
                    raise reply
            if a.sentinels and replies[-1][0] != b"master":
                raise StoreUnavailable(f"{host}:{port} is not the master (a failover under way)")
        except BaseException:
            self._drop()
            raise
        self.up = True
        self._watch_replies()
        self._set(True, f"connected to {a.shown}")

    async def _master(self) -> tuple[str | None, int]:
        """The host to connect to; with Sentinel, the master the first sentinel that
        answers names."""
        a = self.address
        if not a.sentinels:
            return a.host, a.port
        trouble = "no sentinel answered"
        for host, port in a.sentinels:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), self.timeout)
            except (TimeoutError, OSError) as exc:
                trouble = f"sentinel {host}:{port}: {_why(exc)}"
                continue
            try:
                service = a.service.encode()
                writer.write(b"*3\r\n$8\r\nSENTINEL\r\n$23\r\nget-master-addr-by-name\r\n$%d\r\n%b\r\n"
                             % (len(service), service))
                parser = hiredis.Reader()
                reply: Any = False
                while reply is False:
                    data = await asyncio.wait_for(reader.read(4096), self.timeout)
                    if not data:
                        break
                    parser.feed(data)
                    reply = parser.gets()
                if isinstance(reply, list) and len(reply) == 2:
                    return reply[0].decode(), int(reply[1])
                trouble = f"sentinel {host}:{port} knows no master named {a.service!r}"
            except (TimeoutError, OSError) as exc:
                trouble = f"sentinel {host}:{port}: {_why(exc)}"
            finally:
                writer.close()
        raise StoreUnavailable(trouble)

    def _watch_replies(self) -> None:
        """Every quarter second: is the oldest reply overdue? One timer for all calls,
        not one a call (a timer a request would cost more than the call)."""
        loop = asyncio.get_running_loop()
        if self._waiting and loop.time() - self._waiting[0][1] > self.timeout:
            self._lost(f"no reply in {self.timeout:g} s")
            return
        self._watch = loop.call_later(0.25, self._watch_replies)

    def _lost(self, why: str) -> None:
        if self._protocol is None:
            return
        was_up, self.up = self.up, False
        self._drop()  # a hello that fails here fails its _open, whose caller says so
        if was_up:
            self.failures += 1
            self._set(False, why)
            self._reconnect_later()

    def _drop(self) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.abort()
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        self._out.clear()
        waiting, self._waiting = self._waiting, collections.deque()
        for future, _ in waiting:
            if not future.done():
                future.set_exception(StoreUnavailable("the connection to Redis was lost"))

    def _reconnect_later(self) -> None:
        if self._closed or (self._connecting is not None and not self._connecting.done()):
            return
        self._connecting = asyncio.get_running_loop().create_task(self._reconnect(), name="aiogw-redis-reconnect")

    async def _reconnect(self) -> None:
        delay, said = 0.1, False
        while not self._closed and not self.up:
            await asyncio.sleep(delay)
            try:
                await self._open()
            except StoreRefused as exc:  # a password changed on one side only: said, once
                if not said:
                    said = True
                    log.error("limits: %s", exc)
                delay = 2.0
            except (TimeoutError, OSError, StoreUnavailable, ReplyError) as exc:
                log.debug("limits: Redis still away: %s", _why(exc))
                delay = min(delay * 2, 2.0)  # back within two seconds of its return

    def _set(self, up: bool, why: str) -> None:
        if self.on_change is not None:
            self.on_change(up, why)

    async def answered(self) -> None:
        """Until every command sent so far has its reply (or the link gave up on it)."""
        waiting = [future for future, _ in self._waiting]
        if waiting:
            await asyncio.wait(waiting, timeout=self.timeout * 2)

    async def close(self) -> None:
        self._closed = True
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connecting
        self.up = False
        self._drop()


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
