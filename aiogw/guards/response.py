"""The model's answer, scanned as it passes.

A stream is scanned chunk by chunk after each chunk was written to the client, so no
chunk waits for the guard: the chunk's events are parsed (SSE, or Gemini's JSON array),
the text the model produced is taken from them and fed to a Hyperscan stream scanner,
which finds a secret even when it arrives split across chunks. Under a `block` policy
the stream ends at the first finding with the dialect's own error event, so the SDK
raises its usual error. A whole (non-streamed) answer is scanned once before it is
returned, and a blocked one is replaced by the error.
"""

from __future__ import annotations

import logging
import zlib
from typing import TYPE_CHECKING, Any

import orjson

from aiogw.dialects import DIALECTS, Dialect
from aiogw.jsonstream import JSONArraySplitter
from aiogw.sse import SSEParser

log = logging.getLogger("aiogw.guards")

if TYPE_CHECKING:
    from aiogw.guards.engine import Engine
    from aiogw.guards.policy import Policy


def finding(match: Any, action: str) -> dict[str, Any]:
    p = match.pattern
    return {
        "id": p.id,
        "category": p.category,
        "subcategory": p.subcategory,
        "place": "response",
        "action": action,
        "start": match.start,
        "end": match.end,
    }


def block_message(f: dict[str, Any]) -> str:
    return (
        f"aiogw stopped the model's answer: {f['category']} '{f['subcategory']}' (pattern {f['id']}) in the response."
    )


def scan_whole(engine: Engine, dialect: Dialect, body: bytes, action: str) -> list[dict[str, Any]]:
    """Findings in a whole JSON answer (already decoded)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return []
    return scan_message(engine, dialect, data, action)


def scan_message(engine: Engine, dialect: Dialect, message: Any, action: str) -> list[dict[str, Any]]:
    """Findings in a whole answer, parsed."""
    return [finding(m, action) for text in dialect.answer_texts(message) for m in engine.scan("response", text)]


class StreamWatch:
    """One stream's scanner. `feed` each relayed chunk; `blocked` is the first finding
    under a `block` policy, after which the proxy ends the stream."""

    __slots__ = ("_array", "_inflate", "_json_array", "_scanner", "_sse", "action", "blocked", "dialect", "findings")

    def __init__(self, engine: Engine, dialect: Dialect, json_array: bool, content_encoding: str | None, action: str):
        self.action = action
        self.dialect = dialect
        self.findings: list[dict[str, Any]] = []
        self.blocked: dict[str, Any] | None = None
        self._scanner = engine.stream("response")
        self._json_array = json_array  # the stream's format, for its error event (`_array` goes on a fault)
        self._sse = None if json_array else SSEParser()
        self._array = JSONArraySplitter() if json_array else None
        coding = (content_encoding or "").strip().lower()
        # 47 = 32 + 15: zlib or gzip header, whichever the stream has.
        self._inflate = zlib.decompressobj(47) if coding in ("gzip", "x-gzip", "deflate") else None

    def feed(self, chunk: bytes) -> None:
        try:
            self._feed(chunk)
        except Exception:
            # The chunk is already with the client: a guard fault must not break the
            # stream. Say so loudly and stop scanning this one.
            log.exception("answer guard failed on a %s stream; the rest of it is not scanned", self.dialect.name)
            self._sse = self._array = None

    def _feed(self, chunk: bytes) -> None:
        if self._inflate is not None:
            try:
                chunk = self._inflate.decompress(chunk)
            except zlib.error:
                self._inflate = None  # undecodable: stop scanning rather than fail the stream
                self._sse = self._array = None
                return
        if self._sse is not None:
            datas = [e.data for e in self._sse.feed(chunk)]
        elif self._array is not None:
            datas = self._array.feed(chunk)
        else:
            return
        for data in datas:
            if data == "[DONE]" or not data:
                continue
            try:
                event = orjson.loads(data)
            except orjson.JSONDecodeError:
                continue
            for text in self.dialect.answer_texts(event):
                for m in self._scanner.feed(text):
                    f = finding(m, self.action)
                    self.findings.append(f)
                    if self.action == "block" and self.blocked is None:
                        self.blocked = f

    def finish(self) -> None:
        """The stream ended: matches only its end completes (a secret that is the very
        last word), and the scanner's state freed."""
        try:
            found = self._scanner.close()
        except Exception:
            log.exception("answer guard failed closing a %s stream", self.dialect.name)
            return
        for m in found:
            f = finding(m, self.action)
            self.findings.append(f)
            if self.action == "block" and self.blocked is None:
                self.blocked = f

    def error_event(self, message: str) -> bytes:
        """The dialect's in-stream error, written before the stream is closed."""
        return self.dialect.stream_error(message, json_array=self._json_array)


class AnswerGuard:
    """What the proxy holds: the engine and, per user, the action for answers."""

    __slots__ = ("engine", "policy")

    def __init__(self, engine: Engine, policy: Policy) -> None:
        self.engine = engine
        self.policy = policy

    def action(self, user: str | None) -> str:
        return self.policy.for_user(user).response

    def watch(self, dialect: str, json_array: bool, content_encoding: str | None, action: str) -> StreamWatch:
        """A scanner for one stream of the dialect named `dialect`."""
        return StreamWatch(self.engine, DIALECTS[dialect], json_array, content_encoding, action)

    def scan(self, dialect: str, body: bytes, action: str) -> list[dict[str, Any]]:
        """Findings in a whole answer's decoded body."""
        return scan_whole(self.engine, DIALECTS[dialect], body, action)

    def scan_message(self, dialect: str, message: Any, action: str) -> list[dict[str, Any]]:
        """Findings in an answer already parsed (a stream's, reassembled)."""
        return scan_message(self.engine, DIALECTS[dialect], message, action)
