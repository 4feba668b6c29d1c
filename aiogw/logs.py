"""Logs: one line per exchange on stdout, the gateway's own messages on stderr.

Under systemd both reach journald. The exchange line holds what an operator filters and
counts by — who, which route and model, the status and outcome, how long, how many
tokens, what it cost, how many guard findings — and never a payload or a key: those
are in the audit, behind `aiogw audit show <id>`.

Lines are gathered and written once per turn of the event loop: under load that is one
write for many exchanges; when idle, each line is out at once.
"""

from __future__ import annotations

import asyncio
import logging
import select
import sys
import time
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any

import orjson

from aiogw.dialects import DIALECTS
from aiogw.ops_settings import LogSettings
from aiogw.untrusted import json_visible, text, visible

if TYPE_CHECKING:
    from aiogw.exchange import Exchange


_MAX_MODEL = 256


def setup(settings: LogSettings, stream: IO[str] | None = None) -> None:
    """The root logger: the level and format of the config, on stderr."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if settings.format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.level_number)
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, ClientErrors) for f in server.filters):
        server.addFilter(CLIENT_ERRORS)


class ClientErrors(logging.Filter):
    """aiohttp logs every request it cannot parse (or answer) at error level, with a
    traceback and the request's own bytes: anyone who can reach the port can write 8 MB
    of journal in a third of a second. Here each is one line, its bytes cut, and at most
    `per_minute` a minute; the rest are counted (`dropped`)."""

    def __init__(self, per_minute: int = 60) -> None:
        super().__init__()
        self.per_minute = per_minute
        self.minute = -1
        self.seen = 0
        self.dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        minute = int(time.monotonic() // 60)
        if minute != self.minute:
            self.minute, self.seen = minute, 0
        self.seen += 1
        if self.seen > self.per_minute:
            self.dropped += 1
            return False
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            text = f"{record.getMessage()}: {type(error).__name__}: {error}"
            record.msg, record.args = visible(text[:_MAX_CLIENT_ERROR]), ()
            record.exc_info = record.exc_text = None
        return True


_MAX_CLIENT_ERROR = 300
CLIENT_ERRORS = ClientErrors()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json_visible(orjson.dumps(_record_fields(self, record))).decode()


class TextFormatter(logging.Formatter):
    """The text format: key=value pairs, as the exchange lines in that format."""

    def format(self, record: logging.LogRecord) -> str:
        return _logfmt(_record_fields(self, record)).decode().rstrip("\n")


def _record_fields(formatter: logging.Formatter, record: logging.LogRecord) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "time": _iso(record.created),
        "level": record.levelname.lower(),
        "logger": record.name,
        "message": record.getMessage(),
    }
    if record.exc_info:
        entry["error"] = formatter.formatException(record.exc_info)
    return entry


def exchange_fields(ex: Exchange) -> dict[str, Any]:
    """The log line's fields: no payloads, no keys."""
    total, first_byte, overhead = ex.durations()
    fields: dict[str, Any] = {
        "time": _iso(ex.started),
        "event": "exchange",
        "id": ex.id,
        "user": ex.user,
        "key_id": ex.key_id,
        "route": ex.route,
        "dialect": ex.dialect,
        "endpoint": ex.endpoint,
        "model": ex.model[:_MAX_MODEL] if ex.model else ex.model,  # the client's own text
        "stream": ex.stream,
        "status": ex.status,
        "outcome": ex.outcome,
        "duration_ms": round(total * 1000, 3),
    }
    if ex.reason:
        fields["reason"] = ex.reason
    if first_byte is not None:
        fields["upstream_first_byte_ms"] = round(first_byte * 1000, 3)
    fields["overhead_ms"] = round(overhead * 1000, 3)
    u = ex.usage
    if u is not None:
        fields["tokens"] = {
            "input": u.input, "output": u.output, "cache_read": u.cache_read, "cache_write": u.cache_write,
            "reasoning": u.reasoning,
        }
    if ex.cost is not None:
        fields["cost_usd"] = round(ex.cost, 8)
        if not ex.priced:
            fields["unpriced"] = True  # charged [prices] default: the model is not in the table
    if ex.response_headers is not None and (dialect := DIALECTS.get(ex.dialect)) is not None:
        # The provider's, for its support; a header, so it may hold bytes that are not UTF-8.
        fields["request_id"] = text(dialect.request_id(ex.response_headers), 256)
    fields["findings"] = len(ex.findings) if ex.findings else 0
    fields["client"] = ex.client
    return fields


class ExchangeLog:
    """Writes exchange lines to `out` (stdout's bytes), batched per loop turn."""

    def __init__(self, settings: LogSettings, out: IO[bytes] | None = None) -> None:
        self.settings = settings
        self._out = out if out is not None else sys.stdout.buffer
        self._lines: list[bytes] = []
        self._format: Callable[[dict[str, Any]], bytes] = _json if settings.format == "json" else _logfmt
        # Under workers (aiogw.workers): this process's number, in every line; and its
        # lines written a pipe's atomic size at most at a time, so the workers' lines on
        # the one stdout never cut into each other.
        self.worker: int | None = None

    @property
    def on(self) -> bool:
        return self.settings.exchanges and self.settings.level_number <= logging.INFO

    def configure(self, settings: LogSettings) -> None:
        self.settings = settings
        self._format = _json if settings.format == "json" else _logfmt

    def __call__(self, ex: Exchange) -> None:
        if not self.on:
            return
        fields = exchange_fields(ex)
        if self.worker is not None:
            fields["worker"] = self.worker
        if not self._lines:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no loop (a tool, a test): write at once
                self._lines.append(self._format(fields))
                self.flush()
                return
        self._lines.append(self._format(fields))

    def flush(self) -> None:
        if not self._lines:
            return
        lines, self._lines = self._lines, []
        try:
            if self.worker is None:
                self._out.write(b"".join(lines))
                self._out.flush()
            else:
                for chunk in _chunks(lines, select.PIPE_BUF):
                    self._out.write(chunk)
                    self._out.flush()
        except (OSError, ValueError):  # stdout closed: the audit still has every exchange
            pass


def _chunks(lines: list[bytes], most: int) -> Iterator[bytes]:
    """Whole lines joined up to `most` bytes a chunk (a longer line alone)."""
    chunk = b""
    for line in lines:
        if chunk and len(chunk) + len(line) > most:
            yield chunk
            chunk = b""
        chunk += line
    if chunk:
        yield chunk


def _json(fields: dict[str, Any]) -> bytes:
    # A client's model name or user agent may hold what a terminal acts on (journalctl
    # and `tail` print these lines): escaped, as the audit CLI's JSON is.
    return json_visible(orjson.dumps(fields)) + b"\n"


def _logfmt(fields: dict[str, Any]) -> bytes:
    parts = []
    for k, v in fields.items():
        if isinstance(v, dict):
            parts.extend(f"{k}_{sub}={val}" for sub, val in v.items())
            continue
        text = "" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
        if not text or any(c in text for c in ' "=\\') or not text.isprintable():
            # Quoted, with JSON's escapes: a client's model name can never start a line.
            text = json_visible(orjson.dumps(text)).decode()
        parts.append(f"{k}={text}")
    return (" ".join(parts) + "\n").encode()


_second: list = [-1, ""]  # the last whole second formatted: lines of one second share it


def _iso(ts: float) -> str:
    whole = int(ts)
    if whole != _second[0]:
        _second[0], _second[1] = whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{_second[1]}.{int((ts - whole) * 1000):03d}Z"
