"""The answer guard's stage: which answers are scanned, when, and what a block does.

Its check gives an exchange of a user whose answers are guarded an `AnswerTap`, which
decides at the answer's head:

- a whole (not streamed) answer is scanned before it is returned; a blocked one is
  replaced by the refusal;
- a stream under `block` or `redact` is watched chunk by chunk after each chunk was
  written (`guards.response.StreamWatch`); a block ends it with the dialect's error
  event;
- a stream whose findings are only logged is not watched: the finisher hands the tap
  the answer, reassembled, and it is scanned once (a scan of every chunk on the loop
  cost streams ~10 ms of time to first byte at 50 open).

Error answers (status 400 and up) are the provider's, not the model's: not scanned.
"""

from __future__ import annotations

import logging

from aiogw import encoding
from aiogw.answer import Reading
from aiogw.errors import Blocked
from aiogw.exchange import Exchange
from aiogw.guards.response import AnswerGuard, StreamWatch, block_message
from aiogw.stage import CONTINUE, Refuse, Tap, Verdict

log = logging.getLogger("aiogw.guards")


class AnswerStage:
    __slots__ = ("deferrable", "guard")

    def __init__(self, guard: AnswerGuard, deferrable: bool) -> None:
        self.guard = guard
        # The finisher reads every answer back: a logged stream can wait for it.
        self.deferrable = deferrable

    def check(self, ex: Exchange) -> Verdict:
        action = self.guard.action(ex.user)
        if action != "off":
            ex.taps = (*ex.taps, AnswerTap(self.guard, action, self.deferrable))
        return CONTINUE


class AnswerTap(Tap):
    __slots__ = ("action", "deferrable", "deferred", "guard", "watching")

    def __init__(self, guard: AnswerGuard, action: str, deferrable: bool) -> None:
        self.guard = guard
        self.action = action
        self.deferrable = deferrable
        self.deferred = False  # a logged stream, left to the finisher
        self.watching: StreamWatch | None = None  # a stream watched as it is relayed

    def watch(self, ex: Exchange) -> StreamWatch | None:
        if ex.status >= 400:
            return None
        if self.action == "log" and self.deferrable:
            self.deferred = True
            return None
        headers = ex.response_headers
        json_array = not _is_event_stream(headers.get("Content-Type"))
        self.watching = self.guard.watch(ex.dialect, json_array, headers.get("Content-Encoding"), self.action)
        return self.watching

    def stopped(self, ex: Exchange) -> bytes:
        """The dialect's error event (readable only without a content-encoding)."""
        ex.reason = "guard_response"
        watch = self.watching
        if watch is None or ex.response_headers.get("Content-Encoding"):
            return b""
        return watch.error_event(block_message(watch.blocked))

    def closed(self, ex: Exchange) -> None:
        watch = self.watching
        if watch is None:
            return
        watch.finish()
        if watch.findings:
            ex.findings = (ex.findings or []) + watch.findings

    def whole(self, ex: Exchange, data: bytes) -> Verdict:
        if ex.status >= 400:
            return CONTINUE
        coding = ex.response_headers.get("Content-Encoding")
        try:
            plain = encoding.decode(data, coding) if coding else data
        except ValueError:
            return CONTINUE  # a coding the gateway cannot read: not scanned (it never asks for one)
        found = self.guard.scan(ex.dialect, plain, self.action)
        if found:
            ex.findings = (ex.findings or []) + found
            if self.action == "block":
                return Refuse(Blocked(block_message(found[0])))
        return CONTINUE

    def finish(self, ex: Exchange, reading: Reading) -> None:
        if not self.deferred:
            return
        try:
            message = reading.answer(ex)
            found = self.guard.scan_message(ex.dialect, message.message, "log") if message is not None else None
        except Exception:  # a guard fault must not cost the exchange its usage or record
            log.exception("answer guard failed on a %s answer; it is not scanned", ex.dialect)
            return
        if found:
            ex.findings = (ex.findings or []) + found


def _is_event_stream(content_type: str | None) -> bool:
    return content_type is not None and content_type.partition(";")[0].strip().lower() == "text/event-stream"
