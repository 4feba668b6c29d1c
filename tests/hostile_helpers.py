"""A real `aiogw serve` under attack, for tests/test_hostile.py (issue 16).

`Served` runs the gateway as systemd does (a subprocess, audit on, guards on, a key
made by `aiogw keys create`); `Reflector` is a hostile-enough upstream that speaks raw
HTTP/1.1 (it never sends `100 Continue`, echoes a request's head on TRACE or when
asked, streams without end on request, returns any usage figure it is told to);
`send` is a client on a raw socket that can say anything, slowly, and reads back every
response on the connection. Everything listens on and connects to 127.0.0.1, every
socket has a timeout, and only the processes started here are ever signalled.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from tests import served
from tests.builders import nested_json
from tests.conftest import FAKE_ROUTES, LoopThread, audit_rows, poll

HOST = "127.0.0.1"
MOUNT = "/llm-gateway"
AIOGW = str(Path(sys.executable).with_name("aiogw"))  # the venv's console script
HEALTHZ_MS = 50.0  # the liveness bound on /healthz, on a fresh connection
RSS_CEILING_MB = 400.0
DRAIN_SECONDS = 2.0
# The bound: SIGTERM exits within the drain period. What the drain leaves open is
# cut at its end at once (aiogw.app.serve), so the stop is the drain, the handlers'
# records, the audit's last batch and the exit; 1.5 s covers those on a loaded machine.
# (Before the cut, aiohttp's own shutdown waited twice more: 6.1 s with a stream open.)
STOP_BOUND = DRAIN_SECONDS + 1.5
AUDIT_WAIT = 5.0  # how long a fresh record may take to reach the database
UA_PROBE = "hostile-probe"


# --------------------------------------------------------------------------------------
# Raw HTTP on a socket
# --------------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    reason: str
    headers: dict[str, str]  # lower-cased names; repeated headers joined with ", "
    body: bytes
    complete: bool = True

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def __repr__(self) -> str:
        return f"<{self.status} {self.content_type or '-'} {self.body[:160]!r}>"


@dataclass
class Reply:
    """What came back on one connection: every response, and how it ended."""

    responses: list[Response] = field(default_factory=list)
    raw: bytes = b""
    eof: bool = False  # the gateway closed the connection
    reset: bool = False  # ... abruptly
    timed_out: bool = False  # the reader gave up waiting
    seconds: float = 0.0

    @property
    def status(self) -> int | None:
        finals = [r for r in self.responses if r.status >= 200]
        return finals[0].status if finals else None

    @property
    def first(self) -> Response | None:
        finals = [r for r in self.responses if r.status >= 200]
        return finals[0] if finals else None


_STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3})(?: ([^\r\n]*))?\r\n")


def parse_responses(data: bytes, eof: bool, head: bool = False) -> tuple[list[Response], int]:
    """Complete responses at the start of `data`; and how many bytes they took.
    A body delimited by the close counts only at `eof`; after a HEAD, the first
    response has no body."""
    out: list[Response] = []
    pos = 0
    while pos < len(data):
        m = _STATUS_LINE.match(data, pos)
        if m is None:
            break
        end = data.find(b"\r\n\r\n", m.end() - 2)
        if end < 0:
            break
        headers: dict[str, str] = {}
        for line in data[m.end() : end].split(b"\r\n"):
            if b":" in line:
                name, _, value = line.partition(b":")
                key = name.strip().lower().decode("latin-1")
                val = value.strip().decode("latin-1")
                headers[key] = f"{headers[key]}, {val}" if key in headers else val
        status = int(m.group(1))
        reason = (m.group(2) or b"").decode("latin-1")
        start = end + 4
        if status < 200 or status in (204, 304) or (head and not out):
            out.append(Response(status, reason, headers, b""))
            pos = start
            continue
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body, used = _dechunk(data, start)
            if used < 0:
                if eof:
                    out.append(Response(status, reason, headers, body, complete=False))
                    pos = len(data)
                break
            out.append(Response(status, reason, headers, body))
            pos = used
        elif "content-length" in headers:
            n = int(headers["content-length"].split(",")[0])
            if len(data) - start < n:
                if eof:
                    out.append(Response(status, reason, headers, data[start:], complete=False))
                    pos = len(data)
                break
            out.append(Response(status, reason, headers, data[start : start + n]))
            pos = start + n
        else:
            if not eof:
                break
            out.append(Response(status, reason, headers, data[start:]))
            pos = len(data)
    return out, pos


def _dechunk(data: bytes, pos: int) -> tuple[bytes, int]:
    body = bytearray()
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return bytes(body), -1
        try:
            size = int(data[pos:eol].split(b";")[0], 16)
        except ValueError:
            return bytes(body), -1
        if size == 0:
            trailer = data.find(b"\r\n\r\n", eol)
            if trailer < 0:
                return bytes(body), -1
            return bytes(body), trailer + 4
        if len(data) < eol + 2 + size + 2:
            body += data[eol + 2 : eol + 2 + size]
            return bytes(body), -1
        body += data[eol + 2 : eol + 2 + size]
        pos = eol + 2 + size + 2


def connect(port: int, timeout: float = 2.0, source: str | None = None, rcvbuf: int | None = None) -> socket.socket:
    """A TCP connection to the gateway; `source` picks another loopback address."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if source is not None:
            sock.bind((source, 0))
        sock.connect((HOST, port))
    except BaseException:
        sock.close()
        raise
    return sock


def send(
    port: int,
    parts: bytes | list[bytes],
    *,
    pause: float = 0.0,
    timeout: float = 3.0,
    quiet: float = 0.3,
    shut_write: bool = False,
    head: bool = False,
    source: str | None = None,
    leave: bool = False,
) -> Reply:
    """Send `parts` (with `pause` seconds between them), optionally half-close, then read
    until the gateway closes, `quiet` seconds pass with no new byte after a complete
    response, or `timeout` in all; with `leave`, hang up as soon as the head of an
    answer is in (an agent that goes away mid-stream)."""
    if isinstance(parts, bytes):
        parts = [parts]
    reply = Reply()
    t0 = time.monotonic()
    deadline = t0 + timeout
    buf = bytearray()
    with connect(port, timeout=min(timeout, 2.0), source=source) as sock:
        try:
            for i, part in enumerate(parts):
                if i and pause:
                    time.sleep(pause)
                sock.sendall(part)
            if shut_write:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            reply.reset = True
        except TimeoutError:
            reply.timed_out = True
        while not reply.reset:
            now = time.monotonic()
            if now >= deadline:
                reply.timed_out = True
                break
            done, _ = parse_responses(bytes(buf), False, head)
            finished = any(r.status >= 200 for r in done)
            sock.settimeout(max(0.01, min(deadline - now, quiet if finished else deadline - now)))
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                if finished:
                    break
                reply.timed_out = True
                break
            except ConnectionResetError:
                reply.reset = True
                break
            if not chunk:
                reply.eof = True
                break
            buf += chunk
            if leave and b"\r\n\r\n" in buf:
                break
    reply.raw = bytes(buf)
    reply.responses, _ = parse_responses(reply.raw, True, head)
    reply.seconds = time.monotonic() - t0
    return reply


def request(
    method: str,
    path: str,
    headers: dict[str, str | bytes] | list[tuple[str, str | bytes]] | None = None,
    body: bytes = b"",
    *,
    length: bool = True,
    close: bool = True,
) -> bytes:
    """One HTTP/1.1 request as bytes; header values may be bytes (sent as they are)."""
    items = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    names = {k.lower() for k, _ in items}
    if "host" not in names:
        items.insert(0, ("Host", "127.0.0.1"))
    if length and body and "content-length" not in names and "transfer-encoding" not in names:
        items.append(("Content-Length", str(len(body))))
    if close and "connection" not in names:
        items.append(("Connection", "close"))
    head = f"{method} {path} HTTP/1.1\r\n".encode("latin-1")
    for name, value in items:
        head += name.encode("latin-1") + b": " + (value if isinstance(value, bytes) else value.encode("latin-1")) + b"\r\n"
    return head + b"\r\n" + body


# --------------------------------------------------------------------------------------
# Request bodies agents send
# --------------------------------------------------------------------------------------


def anthropic_body(content: object = "hello", model: str = "claude-haiku-4-5", stream: bool = False, **extra) -> bytes:
    return orjson.dumps(
        {"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": content}], "stream": stream, **extra}
    )


def openai_body(content: object = "hello", model: str = "gpt-4.1", stream: bool = False) -> bytes:
    return orjson.dumps({"model": model, "messages": [{"role": "user", "content": content}], "stream": stream})


def gemini_body(text: str = "hello") -> bytes:
    return orjson.dumps({"contents": [{"role": "user", "parts": [{"text": text}]}]})


NEST = b'"@nest@"'  # put `nested_json(...)` where a body built with this placeholder has it


def gzip_bomb(inflated: int = 2 << 30, segment: int = 16 << 20) -> bytes:
    """A gzip member of `inflated` zero bytes (~1/1000 of that compressed), built in a
    fraction of a second: a segment deflated once and ended by a full flush is
    byte-aligned and independent of what precedes it, so it repeats verbatim."""
    import zlib

    assert inflated % segment == 0
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(segment)
    piece = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    tail = deflate.flush(zlib.Z_FINISH)
    count = inflated // segment
    crc = 0
    for _ in range(count):
        crc = zlib.crc32(zeros, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"
    trailer = crc.to_bytes(4, "little") + (inflated & 0xFFFFFFFF).to_bytes(4, "little")
    return header + piece * count + tail + trailer


# --------------------------------------------------------------------------------------
# A raw upstream
# --------------------------------------------------------------------------------------


@dataclass
class Seen:
    """One request as the reflector read it: the head's bytes as they came, the body."""

    head: bytes
    body: bytes

    @property
    def method(self) -> bytes:
        return self.head.split(b" ", 1)[0]

    def header(self, name: str) -> bytes | None:
        for line in self.head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == name.encode().lower():
                return v.strip()
        return None


class Reflector:
    """An upstream speaking raw HTTP/1.1 on the test's server loop.

    It reads a body by Content-Length (or chunks) and never sends `100 Continue`, as
    many servers do not. It answers:
      TRACE                  200 message/http: the request as it came (RFC 9110 §9.3.8)
      `x-reflect: 1`         200 JSON {"echo": the request's head}
      `x-usage: N`           an Anthropic message whose usage says input_tokens N (as
                             written: any JSON number)
      `x-endless: 1`         an SSE stream of 16 KB events without end, until the
                             gateway closes the connection (`stream_closed` counts it)
      anything else          a small Anthropic message
    `seen` holds every request; `stream_closed` the monotonic times endless streams ended.
    """

    def __init__(self, loop: LoopThread) -> None:
        self.loop = loop
        self.seen: list[Seen] = []
        self.stream_closed: list[float] = []
        self.streaming = 0
        self.writers: set[asyncio.StreamWriter] = set()  # open connections, closed at stop
        self.server: asyncio.AbstractServer | None = None
        self.port = 0

    def start(self) -> str:
        async def up():
            self.server = await asyncio.start_server(self._serve, HOST, 0, limit=1 << 20)
            return self.server.sockets[0].getsockname()[1]

        self.port = self.loop.run(up())
        return f"http://{HOST}:{self.port}"

    def stop(self) -> None:
        async def down():
            if self.server is not None:
                self.server.close()
                for writer in list(self.writers):
                    writer.transport.abort()
                await self.server.wait_closed()

        with contextlib.suppress(Exception):
            self.loop.run(down(), timeout=10)

    def clear(self) -> None:
        self.seen.clear()

    def all_bytes(self) -> bytes:
        return b"\n".join(s.head + b"\r\n\r\n" + s.body for s in list(self.seen))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        try:
            while True:
                try:
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 60)
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
                    return
                seen = Seen(head[:-4], b"")
                length = seen.header("content-length")
                if length is not None:
                    seen.body = await asyncio.wait_for(reader.readexactly(int(length)), 60)
                elif b"chunked" in (seen.header("transfer-encoding") or b"").lower():
                    seen.body = await self._chunks(reader)
                self.seen.append(seen)
                if not await self._answer(seen, writer):
                    return
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError, ValueError):
            return
        finally:
            self.writers.discard(writer)
            writer.close()

    @staticmethod
    async def _chunks(reader: asyncio.StreamReader) -> bytes:
        body = bytearray()
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return bytes(body)
            body += await reader.readexactly(size)
            await reader.readexactly(2)

    async def _answer(self, seen: Seen, writer: asyncio.StreamWriter) -> bool:
        if seen.method == b"TRACE":
            data = seen.head + b"\r\n\r\n" + seen.body
            writer.write(_head(200, "message/http", len(data)) + data)
        elif seen.header("x-endless") is not None:
            await self._endless(writer)
            return False
        elif seen.header("x-reflect") is not None:
            data = orjson.dumps({"echo": seen.head.decode("latin-1")})
            writer.write(_head(200, "application/json", len(data)) + data)
        else:
            tokens = (seen.header("x-usage") or b"3").decode("latin-1")
            data = (
                b'{"id":"msg_reflect","type":"message","role":"assistant","model":"claude-haiku-4-5",'
                b'"content":[{"type":"text","text":"reflected"}],"stop_reason":"end_turn","stop_sequence":null,'
                b'"usage":{"input_tokens":' + tokens.encode() + b',"output_tokens":2}}'
            )
            writer.write(_head(200, "application/json", len(data), {"request-id": "req_reflect"}) + data)
        await writer.drain()
        return True

    async def _endless(self, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        event = b"event: ping\ndata: " + orjson.dumps({"type": "ping", "pad": "p" * 16000}) + b"\n\n"
        frame = f"{len(event):x}\r\n".encode() + event + b"\r\n"
        self.streaming += 1
        try:
            while True:
                writer.write(frame)
                # A gateway that never lets go of its upstream fails its test; this
                # bound only keeps the fake from outliving it.
                await asyncio.wait_for(writer.drain(), 30)
                await asyncio.sleep(0.002)
        except (ConnectionError, RuntimeError, TimeoutError):
            pass
        finally:
            self.streaming -= 1
            self.stream_closed.append(time.monotonic())


def _head(status: int, content_type: str, length: int, extra: dict[str, str] | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status} OK", f"Content-Type: {content_type}", f"Content-Length: {length}"]
    lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# --------------------------------------------------------------------------------------
# The gateway, as systemd runs it
# --------------------------------------------------------------------------------------

ROUTES = FAKE_ROUTES + """[[routes]]
name = "reflect"
dialect = "anthropic"
upstream = "{reflect}"
credential = {{ env = "FAKE_ANTHROPIC" }}
[[routes]]
name = "reflect-gemini"
dialect = "gemini"
upstream = "{reflect}"
credential = {{ env = "FAKE_GEMINI" }}
[[routes]]
name = "reflect-openai"
dialect = "openai"
upstream = "{reflect}"
credential = {{ env = "FAKE_OPENAI" }}
[[users]]
name = "alice"
"""


class Served(served.Served):
    """`aiogw serve --config` as systemd runs it: the venv's console script, its output
    through pipes, guards on, a key made by `aiogw keys create`, routes to the fake and
    the reflector (ROUTES), its state in `tmp`.

    `server` adds keys to [server] (name -> TOML value), `audit` to [audit]; `extra` is
    more TOML (tables of its own).
    """

    def __init__(
        self, tmp: Path, fake: str, reflect: str, server: dict[str, object] | None = None,
        audit: dict[str, object] | None = None, extra: str = "",
    ) -> None:
        self.reflect = reflect
        self.server_keys, self.audit_keys = server or {}, audit or {}
        self.stderr_mark = 0
        self.probes = 0
        self.stopped_in: float | None = None
        super().__init__(tmp, fake, extra, DRAIN_SECONDS, env={"HOME": str(tmp)}, command=[AIOGW], pipes=True)

    def write(self, extra: str = "", drain: float = DRAIN_SECONDS, port: int | None = None,
              upstream: str | None = None) -> None:
        server_keys = {"host": HOST, "port": self.port if port is None else port, "drain_seconds": drain,
                       **self.server_keys}
        audit_keys = {"flush_interval": 0.02, **self.audit_keys}
        self.path.write_text(
            "[server]\n" + _toml(server_keys) + f'[state]\npath = "{self.state}"\n'
            + "[audit]\n" + _toml(audit_keys) + "[guards]\nenabled = true\n"
            + textwrap.dedent(ROUTES).format(fake=upstream or self.fake_url, reflect=self.reflect) + extra
        )

    def make_key(self) -> str:
        made = subprocess.run(
            [AIOGW, "keys", "create", "--config", str(self.path), "alice"],
            capture_output=True, text=True, timeout=60, env=self.env,
        )
        assert made.returncode == 0, f"aiogw keys create failed: {made.stderr}"
        return made.stdout.strip()

    # --- what it printed, what it holds ---------------------------------------------------

    def new_stderr(self) -> str:
        """What it printed on stderr since the last call."""
        data = self.err.read_bytes()
        new, self.stderr_mark = data[self.stderr_mark :], len(data)
        return new.decode(errors="replace")

    def status_field(self, name: str) -> int:
        """A kB field of /proc/PID/status (VmRSS, VmHWM), in bytes; 0 once it is gone."""
        try:
            text = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return 0
        m = re.search(rf"^{name}:\s+(\d+) kB", text, re.M)
        return int(m.group(1)) * 1024 if m else 0

    def rss_peak_mb(self) -> float:
        return self.status_field("VmHWM") / (1 << 20)

    def records(self, where: str = "1=1", *args) -> int:
        rows = self.audit(f"SELECT count(*) AS n FROM exchanges WHERE {where}", *args)
        return rows[0]["n"] if rows else 0

    def audit(self, sql: str, *args) -> list[dict]:
        """Rows of the audit tables, read-only beside the running writer; text that is not
        UTF-8 (what a hostile client sent) with backslash escapes."""
        return audit_rows(self.state, sql, *args, missing_ok=True,
                          text_factory=lambda b: b.decode("utf-8", "backslashreplace"))

    def metrics(self) -> dict[tuple[str, frozenset], float]:
        """/metrics as {(name, labels): value}."""
        reply = send(self.port, request("GET", "/metrics"), timeout=5.0)
        assert reply.status == 200, f"/metrics answered {reply.first}"
        out = {}
        for line in reply.first.body.decode(errors="replace").splitlines():
            if not line or line.startswith("#"):
                continue
            m = re.match(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$", line)
            if m:
                labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
                out[(m.group(1), labels)] = float(m.group(3))
        return out

    def metric_sum(self, name: str, **labels: str) -> float:
        want = set(labels.items())
        return sum(v for (n, ls), v in self.metrics().items() if n == name and want <= set(ls))

    def inflight(self) -> float:
        return self.metric_sum("aiogw_requests_in_flight")

    def settle(self, timeout: float = 5.0) -> bool:
        """Wait until no exchange is open (a hostile client's handler may end late)."""

        def idle() -> bool:
            if self.proc.poll() is not None:
                return True  # gone: the caller's liveness check says how
            try:
                return self.inflight() == 0
            except OSError:
                return False  # not answering: the caller's liveness check says how

        return bool(poll(idle, timeout)) and self.proc.poll() is None

    # --- the request an agent would send, with the key -------------------------------------

    def valid(self, user_agent: str, route: str = "anthropic", stream: bool = False) -> Reply:
        body = anthropic_body("probe", stream=stream)
        return send(self.port, request("POST", f"{MOUNT}/{route}/v1/messages", {
            "x-api-key": self.key, "anthropic-version": "2023-06-01", "Content-Type": "application/json",
            "User-Agent": user_agent,
        }, body), timeout=10.0)

    # --- stopping ------------------------------------------------------------------------------

    def stop(self, bound: float = STOP_BOUND) -> int | None:
        """SIGTERM; the exit status, or None when it did not exit within `bound` (it is
        then killed). The time it took is kept in `stopped_in`."""
        if self.proc.poll() is not None:
            self.kill()
            return self.proc.returncode
        t0 = time.monotonic()
        self.send(signal.SIGTERM)
        try:
            code = self.proc.wait(bound)
        except subprocess.TimeoutExpired:
            self.kill()
            return None
        self.stopped_in = time.monotonic() - t0
        self.kill()  # gone already: its output is all in the files, its pipes closed
        return code


def _toml(values: dict[str, object]) -> str:
    out = ""
    for k, v in values.items():
        if isinstance(v, bool):
            text = "true" if v else "false"
        elif isinstance(v, str):
            text = f'"{v}"'
        else:
            text = str(v)
        out += f"{k} = {text}\n"
    return out


# --------------------------------------------------------------------------------------
# Liveness: what the issue asserts after every hostile case
# --------------------------------------------------------------------------------------


def healthz_ms(port: int) -> tuple[float, int | None]:
    """GET /healthz on a fresh connection: (milliseconds from connect to the last byte,
    status). Only the connection setup is retried (twice), never a slow answer."""
    last: Exception | None = None
    for _ in range(3):
        t0 = time.perf_counter()
        try:
            sock = connect(port, timeout=1.0)
        except OSError as exc:
            last = exc
            time.sleep(0.02)
            continue
        with sock:
            sock.settimeout(2.0)
            buf = b""
            try:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                while True:
                    done, _ = parse_responses(buf, False)
                    if done:
                        break
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    buf += chunk
            except (TimeoutError, ConnectionError):
                pass
            ms = (time.perf_counter() - t0) * 1000
            done, _ = parse_responses(buf, True)
            return ms, done[0].status if done else None
    raise AssertionError(f"cannot connect to the gateway for /healthz: {last}")


def assert_live(gw: Served, case: str, seed_note: str = "") -> None:
    """/healthz within the bound, the process alive, memory under the ceiling."""
    assert gw.proc.poll() is None, f"[{case}] the gateway exited ({gw.proc.returncode}){seed_note}: {gw.stderr()[-2000:]}"
    ms, status = healthz_ms(gw.port)
    assert status == 200 and ms <= HEALTHZ_MS, (
        f"[{case}] /healthz answered {status} in {ms:.1f} ms (bound {HEALTHZ_MS:.0f} ms){seed_note}"
    )
    peak = gw.rss_peak_mb()
    assert peak <= RSS_CEILING_MB, f"[{case}] the gateway's peak RSS is {peak:.0f} MB (ceiling {RSS_CEILING_MB:.0f}){seed_note}"


def assert_draining(gw: Served, case: str, seed_note: str = "") -> None:
    """A fresh, valid, authenticated request is answered and its record reaches the
    database within AUDIT_WAIT: the audit writer still drains."""
    gw.probes += 1
    marker = f"{UA_PROBE}-{gw.probes}"
    reply = gw.valid(marker)
    assert reply.status == 200, f"[{case}] a valid request after the case got {reply.first}{seed_note}"
    assert poll(lambda: gw.records("user_agent = ?", marker), AUDIT_WAIT), (
        f"[{case}] the audit stopped draining: a valid request's record is not in the database after "
        f"{AUDIT_WAIT:.0f} s{seed_note}"
    )


def wait_records(gw: Served, predicate, timeout: float = AUDIT_WAIT):
    """Poll the audit database until `predicate()` is truthy; its last value."""
    return poll(predicate, timeout)


def audit_cli(gw: Served, *args: str) -> subprocess.CompletedProcess:
    """`aiogw audit ...` against the gateway's database, as an operator at a terminal."""
    return subprocess.run(
        [AIOGW, "audit", *args, "--config", str(gw.path)], capture_output=True, timeout=60, env=gw.env,
    )


def seed_from_env() -> tuple[int, str]:
    """The generated mix's seed: HOSTILE_SEED if set; fixed in CI (HYPOTHESIS_PROFILE=ci
    or CI set), so a red run there is about the change; otherwise new each run."""
    if os.environ.get("HOSTILE_SEED"):
        return int(os.environ["HOSTILE_SEED"]), "HOSTILE_SEED"
    if os.environ.get("HYPOTHESIS_PROFILE") == "ci" or os.environ.get("CI"):
        return 16_2026, "fixed (CI)"
    return random.SystemRandom().randrange(1 << 32), "random"


# --------------------------------------------------------------------------------------
# One case's account: what was answered, what the audit holds
# --------------------------------------------------------------------------------------

# Counters a gateway may keep for what it refuses without recording (issue 16, finding
# 10: unauthenticated floods may be bounded and counted instead of recorded).
_UNRECORDED = re.compile(r"aiogw_\w*(unrecorded|not_recorded|unauthenticated)\w*_total")


def unrecorded_count(gw: Served) -> float:
    return sum(v for (name, _), v in gw.metrics().items() if _UNRECORDED.fullmatch(name))


class Ledger:
    """What one case (or a small group of them) sent and had answered, held against the
    audit afterwards by `check`: the issue's assertions after each hostile case.

    A response counts as answered by the gateway when it has a final status line and is
    not one of aiohttp's own plain-text pages (a request it could not parse, a method its
    router does not take): the gateway's answers are JSON in the provider's envelope, or
    the upstream's own. Each answered request must have its record; only requests
    without a valid gateway key may instead be counted (see `_UNRECORDED`).
    """

    def __init__(self, gw: Served, case: str, note: str = "") -> None:
        self.gw, self.case, self.note = gw, case, note
        assert gw.settle(), f"[{case}] exchanges still open before the case began{note}"
        gw.new_stderr()
        self.records0 = gw.records()
        self.unrecorded0 = unrecorded_count(gw)
        self.sent = 0
        self.answered = 0
        self.keyless = 0  # answered requests that carried no valid gateway key
        self.log: list[str] = []

    def add(self, reply: Reply, keyless: bool = False, what: str = "") -> Reply:
        self.sent += 1
        got = [r for r in reply.responses if r.status >= 200 and r.content_type != "text/plain"]
        self.answered += len(got)
        self.keyless += sum(1 for r in got if keyless or r.status == 401)
        statuses = ",".join(str(r.status) for r in reply.responses) or ("timeout" if reply.timed_out else "closed")
        self.log.append(f"{what or 'request'} -> {statuses}")
        return reply

    def check(self, open_ok: bool = False) -> None:
        gw, case, note = self.gw, self.case, self.note
        settled = gw.settle()
        assert_live(gw, case, note)
        assert settled or open_ok, f"[{case}] the gateway still holds exchanges open 5 s after the case{note}"
        errors = unexpected_errors(gw.new_stderr())
        assert not errors, (
            f"[{case}] the gateway logged an unexpected error{note}:\n{_tail(chr(10).join(errors))}\n"
            f"requests: {self.log}"
        )
        assert_draining(gw, case, note)
        want = self.records0 + self.answered + 1  # and the probe's
        wait_records(gw, lambda: gw.records() >= want)
        recorded = gw.records() - self.records0 - 1
        if recorded < self.answered:
            short = self.answered - recorded
            counted = unrecorded_count(gw) - self.unrecorded0
            assert short <= self.keyless and counted >= short, (
                f"[{case}] {self.answered} requests answered, {recorded} recorded: {short} records missing "
                f"({self.keyless} of the answered had no valid key; {counted:.0f} counted as unrecorded){note}\n"
                f"requests: {self.log}"
            )


def unexpected_errors(printed: str) -> list[str]:
    """Log lines with a traceback: the gateway failed on its input. aiohttp's own line for
    a request it could not parse (`BadHttpMessage` and kin, logged with a traceback at
    error level for every such request) is left out: no gateway code ran."""
    out = []
    for line in printed.splitlines():
        if "Traceback" not in line:
            continue
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            out.append(line)
            continue
        if entry.get("logger") == "aiohttp.server" and "aiohttp.http_exceptions." in entry.get("error", ""):
            continue
        out.append(line)
    return out


def _tail(text: str, lines: int = 6) -> str:
    return "\n".join(line[:1500] for line in text.strip().splitlines()[-lines:])


# --------------------------------------------------------------------------------------
# The generated mix
# --------------------------------------------------------------------------------------

# (route, method, path, body kind)
ENDPOINTS = (
    ("anthropic", "POST", "/v1/messages", "anthropic"),
    ("anthropic", "POST", "/v1/messages?beta=true", "anthropic"),
    ("anthropic", "POST", "/v1/messages/count_tokens", "anthropic"),
    ("anthropic", "GET", "/v1/models", None),
    ("openai", "POST", "/v1/chat/completions", "openai"),
    ("openai", "POST", "/v1/responses", "responses"),
    ("openai", "POST", "/v1/embeddings", "embeddings"),
    ("openai", "GET", "/v1/models", None),
    ("google", "POST", "/v1beta/models/gemini-2.5-flash:generateContent", "gemini"),
    ("google", "POST", "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", "gemini"),
    ("google", "GET", "/v1beta/models", None),
)
HEADER_NAMES = (
    "User-Agent", "X-Claude-Code-Session-Id", "session-id", "anthropic-beta", "anthropic-version", "Accept",
    "Accept-Encoding", "Content-Type", "X-Stainless-Lang", "Cookie", "Referer", "X-Forwarded-For", "Via",
    "Connection", "TE", "Upgrade", "Expect", "Range", "If-None-Match", "Origin", "Forwarded",
)
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "PROPFIND", "FOO")
ENCODINGS = ("gzip", "deflate", "br", "zstd", "x-gzip", "identity", "gzip, gzip", "GZIP", "compress", "a\x01b", "")


@dataclass
class Item:
    """One generated request: what to send and how, and whether it carries a valid key."""

    name: str
    parts: list[bytes]
    pause: float = 0.0
    shut_write: bool = False
    head: bool = False
    keyless: bool = False
    leave: bool = False


class Mix:
    """Malformed requests drawn from `rng`, with valid agent requests among them."""

    KINDS = (
        ("valid", 16), ("header_bytes", 12), ("body_bytes", 8), ("json", 12), ("framing", 12),
        ("encoding", 10), ("method_path", 10), ("slow", 5), ("query_key", 5), ("pipelined", 4), ("leave", 4),
        ("many_headers", 2),
    )

    def __init__(self, rng: random.Random, key: str) -> None:
        self.rng = rng
        self.key = key
        self.kinds = [k for k, _ in self.KINDS]
        self.weights = [w for _, w in self.KINDS]

    def items(self, count: int) -> list[Item]:
        return [self.item(i) for i in range(count)]

    def item(self, i: int) -> Item:
        kind = self.rng.choices(self.kinds, self.weights)[0]
        item = getattr(self, f"_{kind}")()
        item.name = f"#{i} {kind}: {item.name}"
        return item

    # --- parts --------------------------------------------------------------------------

    def _endpoint(self) -> tuple[str, str, str, str | None]:
        return self.rng.choice(ENDPOINTS)

    def _auth(self, route: str, keyed: bool = True) -> list[tuple[str, str]]:
        key = self.key if keyed else "aiogw-" + "".join(self.rng.choices("abcdefXYZ0123_-", k=43))
        if route == "anthropic":
            return [("x-api-key", key), ("anthropic-version", "2023-06-01")]
        if route == "openai":
            return [("Authorization", f"Bearer {key}")]
        return [("x-goog-api-key", key)]

    def _body(self, kind: str | None) -> bytes:
        rng = self.rng
        text = rng.choice(["hello", "list the files", "é" * rng.randint(1, 50), "x" * rng.randint(0, 3000)])
        stream = rng.random() < 0.4
        if kind == "anthropic":
            return anthropic_body(text, stream=stream)
        if kind == "openai":
            return openai_body(text, stream=stream)
        if kind == "responses":
            return orjson.dumps({"model": "gpt-5-codex", "input": text, "stream": stream})
        if kind == "embeddings":
            return orjson.dumps({"model": "text-embedding-3-small", "input": text})
        if kind == "gemini":
            return gemini_body(text)
        return b""

    def _random_bytes(self, n: int, line_safe: bool = True) -> bytes:
        rng = self.rng
        out = bytes(rng.randrange(256) for _ in range(n))
        if line_safe:
            out = out.replace(b"\r", b"").replace(b"\n", b"")
        return out

    def _request(
        self, route: str, method: str, path: str, headers: list[tuple[str, str | bytes]], body: bytes,
        close: bool = True,
    ) -> bytes:
        return request(method, f"{MOUNT}/{route}{path}", headers, body, close=close)

    def _valid_request(self) -> tuple[str, str, str, list[tuple[str, str | bytes]], bytes]:
        route, method, path, kind = self._endpoint()
        headers: list[tuple[str, str | bytes]] = [*self._auth(route), ("User-Agent", "hostile-mix/1.0")]
        body = self._body(kind) if method == "POST" else b""
        if body:
            headers.append(("Content-Type", "application/json"))
        return route, method, path, headers, body

    # --- kinds --------------------------------------------------------------------------

    def _valid(self) -> Item:
        route, method, path, headers, body = self._valid_request()
        return Item(f"{method} {route}{path}", [self._request(route, method, path, headers, body)])

    def _header_bytes(self) -> Item:
        route, method, path, headers, body = self._valid_request()
        rng = self.rng
        names = []
        for _ in range(rng.randint(1, 3)):
            name = rng.choice(HEADER_NAMES) if rng.random() < 0.7 else f"X-Fuzz-{rng.randrange(1000)}"
            value = self._random_bytes(rng.choice([1, 8, 64, 512, 4000]))
            if rng.random() < 0.3:  # mostly text, a few bad bytes
                value = b"agent/1.0 " + value[:8] + b" (linux)"
            headers = [h for h in headers if h[0].lower() != name.lower() or name.lower() in ("x-api-key",)]
            headers.append((name, value.lstrip(b" \t")))
            names.append(name)
        keyless = any(n.lower() in ("connection",) for n in names)  # may drop the key's header: not sure
        return Item(f"{method} {route}{path} with bytes in {names}", [self._request(route, method, path, headers, body)],
                    keyless=keyless)

    def _body_bytes(self) -> Item:
        route, _, path, _ = self.rng.choice([e for e in ENDPOINTS if e[3]])
        body = self._random_bytes(self.rng.choice([1, 17, 300, 4096, 65536]), line_safe=False)
        headers = [*self._auth(route), ("Content-Type", self.rng.choice(["application/json", "text/plain", "x/y"]))]
        return Item(f"POST {route}{path} random body {len(body)} B", [self._request(route, "POST", path, headers, body)])

    def _json(self) -> Item:
        rng = self.rng
        route, _, path, kind = rng.choice([e for e in ENDPOINTS if e[3]])
        body = self._body(kind)
        how = rng.choice(["truncate", "flip", "number", "surrogate", "bad-utf8", "nan", "types", "nest", "nest-deep",
                          "dup-keys", "huge-string"])
        if how == "truncate":
            body = body[: rng.randrange(1, len(body))]
        elif how == "flip":
            i = rng.randrange(len(body))
            body = body[:i] + bytes([rng.randrange(256)]) + body[i + 1 :]
        elif how == "number":
            body = body.replace(b"{", b'{"max_tokens":' + rng.choice([b"1e999", b"-0", b"18446744073709551616",
                                                                       b"99999999999999999999999999"]) + b",", 1)
        elif how == "surrogate":
            body = body.replace(b'"hello"', b'"\\ud800\\udfff\\udc00x"').replace(b'"list', b'"\\udbff list')
        elif how == "bad-utf8":
            body = body.replace(b"hello", b"hel\xff\xfelo").replace(b"list", b"l\xc3\x28st")
        elif how == "nan":
            body = body.replace(b"{", b'{"temperature":NaN,', 1)
        elif how == "types":
            body = rng.choice([b"[]", b"null", b'"x"', b"1", b'{"model":1,"messages":{"a":[]}}',
                               b'{"model":null,"messages":[null,1,"x",[]],"stream":"yes"}',
                               b'{"contents":"x","model":["a"]}', b'{"messages":[{"role":"user","content":[{"type":1}]}]}'])
        elif how in ("nest", "nest-deep"):
            depth = rng.randint(20, 255) if how == "nest" else rng.randint(256, 1100)
            body = body.replace(b"{", b'{"metadata":' + nested_json(depth, rng=rng) + b",", 1)
        elif how == "dup-keys":
            body = body.replace(b"{", b'{"model":"a","model":"b","stream":true,', 1)
        else:
            body = body.replace(b"{", b'{"pad":"' + b"A" * rng.choice([70_000, 1_000_000]) + b'",', 1)
        headers = [*self._auth(route), ("Content-Type", "application/json")]
        return Item(f"POST {route}{path} json {how}", [self._request(route, "POST", path, headers, body)])

    def _framing(self) -> Item:
        rng = self.rng
        route, _, path, headers, body = self._valid_request()
        if not body:
            route, path, body = "anthropic", "/v1/messages", anthropic_body("framed")
            headers = [*self._auth(route), ("Content-Type", "application/json")]
        target = f"{MOUNT}/{route}{path}"
        how = rng.choice(["cl-larger", "cl-smaller", "chunked", "chunked-cut", "chunked-bad", "cl-and-te", "cl-bad",
                          "cl-twice", "te-odd", "http10", "bare-lf"])
        name = f"POST {route}{path} {how}"
        if how == "cl-larger":
            raw = request("POST", target, [*headers, ("Content-Length", str(len(body) + rng.randint(1, 5000)))], body)
            return Item(name, [raw], shut_write=True)
        if how == "cl-smaller":
            cut = rng.randint(1, max(1, len(body) - 1))
            raw = request("POST", target, [*headers, ("Content-Length", str(cut))], body, close=False)
            return Item(name, [raw])
        if how in ("chunked", "chunked-cut", "chunked-bad"):
            pieces, i = [], 0
            while i < len(body):
                piece = body[i : i + rng.randint(1, 4000)]
                size = len(piece) + (7 if how == "chunked-bad" else 0)
                pieces.append(f"{size:x}\r\n".encode() + piece + b"\r\n")
                i += len(piece)
            framed = b"".join(pieces) + b"0\r\n\r\n"
            if how == "chunked-cut":
                framed = framed[: rng.randrange(1, len(framed) - 3)]
            raw = request("POST", target, [*headers, ("Transfer-Encoding", "chunked")], framed, length=False)
            return Item(name, [raw], shut_write=how != "chunked")
        if how == "cl-and-te":
            raw = request("POST", target, [*headers, ("Content-Length", "4"), ("Transfer-Encoding", "chunked")],
                          f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n", length=False)
            return Item(name, [raw])
        if how == "cl-bad":
            raw = request("POST", target, [*headers, ("Content-Length", rng.choice(["12abc", "-1", "+5", " ", "0x10",
                                                                                      "99999999999999999999"]))], body)
            return Item(name, [raw], shut_write=True)
        if how == "cl-twice":
            raw = request("POST", target, [*headers, ("Content-Length", str(len(body))),
                                           ("Content-Length", str(len(body) + 1))], body)
            return Item(name, [raw], shut_write=True)
        if how == "te-odd":
            raw = request("POST", target, [*headers, ("Transfer-Encoding", rng.choice(["gzip, chunked", "chunked, gzip",
                                                                                         "xchunked", "chunked\x0b"]))],
                          f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n", length=False)
            return Item(name, [raw], shut_write=True)
        if how == "http10":
            raw = request("POST", target, headers, body).replace(b"HTTP/1.1\r\n", b"HTTP/1.0\r\n", 1)
            return Item(name, [raw], shut_write=True)
        raw = request("POST", target, headers, body).replace(b"\r\n", b"\n")
        return Item(name, [raw], shut_write=True)

    def _encoding(self) -> Item:
        import gzip
        import zlib

        rng = self.rng
        route, _, path, kind = rng.choice([e for e in ENDPOINTS if e[3]])
        plain = self._body(kind)
        coding = rng.choice(ENCODINGS)
        how = rng.choice(["right", "random", "truncated", "bomb"])
        if how == "right" and coding.lower() in ("gzip", "x-gzip"):
            body = gzip.compress(plain)
        elif how == "right" and coding == "deflate":
            body = zlib.compress(plain)
        elif how == "truncated":
            body = gzip.compress(plain)[: rng.randint(5, 30)]
        elif how == "bomb":
            body = gzip_bomb(rng.choice([16, 48]) << 20, 16 << 20)
        elif how == "random":
            body = self._random_bytes(rng.randint(1, 2000), line_safe=False)
        else:
            body = plain
        headers = [*self._auth(route), ("Content-Type", "application/json"), ("Content-Encoding", coding)]
        return Item(f"POST {route}{path} Content-Encoding {coding!r} {how} ({len(body)} B)",
                    [self._request(route, "POST", path, headers, body)])

    def _method_path(self) -> Item:
        rng = self.rng
        route, method, path, kind = self._endpoint()
        method = rng.choice(METHODS) if rng.random() < 0.6 else method
        how = rng.choice(["percent", "double-slash", "dots", "encoded-dots", "long", "unknown-route", "outside",
                          "query", "as-is", "fragment"])
        p, _, query = path.partition("?")
        if how == "percent":
            p = "".join(f"%{ord(c):02X}" if c.isalnum() and rng.random() < 0.3 else c for c in p)
        elif how == "double-slash":
            p = p.replace("/", "//", rng.randint(1, 3))
        elif how == "dots":
            p = rng.choice(["/../", "/./", "/v1/../../", "/.."]) + p.lstrip("/")
        elif how == "encoded-dots":
            p = rng.choice(["/%2e%2e/", "/%2E/", "/.%2e/", "/%2e%2e%2f"]) + p.lstrip("/")
        elif how == "long":
            p = p + "/" + "a" * rng.choice([2000, 7000])
        elif how == "query":
            query = "&".join(rng.choice(["alt=sse", "beta=true", "a=%ff", "x=" + "y" * 500, "=", "&&", "key",
                                         "%zz", "limit=-1"]) for _ in range(rng.randint(1, 4)))
        elif how == "fragment":
            p += "#frag"
        full = f"{MOUNT}/{route}{p}" if how not in ("unknown-route", "outside") else (
            f"{MOUNT}/nope{p}" if how == "unknown-route" else p)
        if query:
            full += "?" + query
        body = self._body(kind) if method in ("POST", "PUT", "PATCH") else b""
        headers: list[tuple[str, str | bytes]] = [*self._auth(route), ("Content-Type", "application/json")]
        return Item(f"{method} {full[:80]} ({how})", [request(method, full, headers, body)], head=method == "HEAD")

    def _slow(self) -> Item:
        rng = self.rng
        inner = self._valid() if rng.random() < 0.5 else self._json()
        raw = b"".join(inner.parts)
        cuts = sorted(rng.sample(range(1, len(raw)), min(len(raw) - 1, rng.randint(2, 5))))
        parts = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
        return Item(f"slow {inner.name}", parts, pause=rng.uniform(0.02, 0.06))

    def _query_key(self) -> Item:
        rng = self.rng
        route = rng.choice(["anthropic", "openai", "google"])
        where = rng.choice(["key", "KEY", "%6bey", "Key", "api_key", "key%00"])
        path = {"anthropic": "/v1/messages", "openai": "/v1/chat/completions",
                "google": "/v1beta/models/gemini-2.5-flash:generateContent"}[route]
        kind = {"anthropic": "anthropic", "openai": "openai", "google": "gemini"}[route]
        headers = [("Content-Type", "application/json")]
        keyed = rng.random() < 0.5
        if keyed:
            headers += self._auth(route)
        raw = request("POST", f"{MOUNT}/{route}{path}?{where}={self.key}", headers, self._body(kind))
        return Item(f"POST {route}{path}?{where}=KEY (header key: {keyed})", [raw],
                    keyless=not keyed and not (route == "google" and where == "key"))

    def _pipelined(self) -> Item:
        """Two to four requests in one write on a keep-alive connection, the last closing it."""
        raws = []
        count = self.rng.randint(2, 4)
        for i in range(count):
            route, method, path, headers, body = self._valid_request()
            raws.append(self._request(route, method, path, headers, body, close=i == count - 1))
        return Item(f"{count} pipelined", [b"".join(raws)])

    def _leave(self) -> Item:
        """A stream the client hangs up on once its head is in."""
        route, path, body = self.rng.choice([
            ("anthropic", "/v1/messages", anthropic_body("go", stream=True)),
            ("openai", "/v1/chat/completions", openai_body("go", stream=True)),
            ("google", "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", gemini_body("go")),
        ])
        headers = [*self._auth(route), ("Content-Type", "application/json"), ("x-fake-chunks", "40"),
                   ("x-fake-delay", "0.01")]
        return Item(f"POST {route}{path} stream, left", [self._request(route, "POST", path, headers, body)], leave=True)

    def _many_headers(self) -> Item:
        route, method, path, headers, body = self._valid_request()
        n = self.rng.choice([50, 200, 1000])
        headers += [(f"X-H{i}", "v" * self.rng.randint(1, 100)) for i in range(n)]
        return Item(f"{method} {route}{path} with {n} more headers", [self._request(route, method, path, headers, body)])
