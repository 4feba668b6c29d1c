"""The end of an exchange, with one owner: the finisher.

Once an exchange is over, its `end` hook queues it (no await, no I/O), and one task
takes each in turn, off the request path, in short time slices between which requests
get the loop. With the audit on it gathers a batch first (`flush_interval` after the
first exchange, or `batch_size` of them, or 8 MiB): one batch's exchanges are finished
one after another with the code and data warm, and their records go to the database in
one transaction. For each exchange, in this order:

1. read the answer back, once (`aiogw.answer.Reading`: whole when it is recorded);
2. the taps' last word on it (the answer guard's deferred scan of a logged stream);
3. charge its usage (`limits.accounting.Accountant.settle`; a user with limits was
   charged on the loop already, by `ChargeNow`, and is not charged twice);
4. report it: metrics and the log line;
5. build its audit record and hand it to the writer, which only persists records;
6. the sinks (tests and embedders watching finished exchanges).

Back-pressure is fail-closed and is this stage's `admit`: when `queue_size` exchanges
(or `queue_bytes` of bodies and answers) wait, new requests get a 503 in the dialect's
envelope until the finisher catches up. Exchanges already in flight still queue (the
deque passes `queue_size` by at most the number of open exchanges): no record is
dropped. Those refusals, and requests without a key past their record budget
(`quiet`), are reported at once and not queued: queued, they would feed the very
backlog that caused them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

from aiogw import answer
from aiogw.errors import Unavailable
from aiogw.exchange import Exchange
from aiogw.stage import CONTINUE, Refuse, Verdict

log = logging.getLogger("aiogw.finish")

# Seconds of work between two yields to the loop (an exchange is not split: the record
# of a 500-event stream takes ~1.5 ms). A relayed chunk waits for the slice under way:
# with 2 ms slices, everything on added ~1.5 ms to the inter-chunk gap p99 of 50-event
# streams over the pass-through, with 0.2 ms ~0.35-0.55, at the same throughput
# (bench.full, bench.audit_alone). When the finisher is behind it takes longer turns:
# under overload, keeping up (no refusals, a bounded heap) is worth a few milliseconds
# of loop latency.
_SLICE = 0.0002
_SLICE_BEHIND = 0.008
# The finisher counts as behind from this many bytes of bodies and answers waiting (or
# half the queue's byte bound). Every queued byte is memory (a body parsed is about
# three times its size): 200 KB bodies under full load kept ~100 MiB waiting and the
# gateway's RSS at ~325 MiB when only the count decided; at 8 MiB it peaked at ~136.
_BEHIND_BYTES = 8 * 1024 * 1024


class Bounds(Protocol):
    queue_size: int
    queue_bytes: int
    batch_size: int
    flush_interval: float


class Recorder(Protocol):
    def build(self, ex: Exchange) -> object | None: ...


class Writer(Protocol):
    @property
    def has_room(self) -> bool: ...
    async def room(self) -> None: ...
    def add(self, record: object) -> None: ...
    def flush(self) -> None: ...


def size(ex: Exchange) -> int:
    """The memory a queued exchange holds: its body, parsed (the tree orjson builds of an
    agent's body is about twice its bytes: tracemalloc, 1.9x at 200 KB, 2.1x at 2 MB),
    and its answer."""
    n = len(ex.body) if ex.body else 0
    if ex.json is not None:
        n *= 3
    if ex.response_body is not None:
        n += len(ex.response_body)
    if ex.chunks:
        n += sum(map(len, ex.chunks))
    return n


class Finisher:
    """A stage (`admit`, `end`) and the task behind it. `configure` sets what it does;
    a reload calls it again, and exchanges already queued are finished the new way."""

    def __init__(self, bounds: Bounds) -> None:
        self.bounds = bounds
        self.settle: Callable[[Exchange], None] | None = None  # the accounting
        self.report: Callable[[Exchange], None] | None = None  # metrics and the log line
        self.recorder: Recorder | None = None  # the audit record
        self.writer: Writer | None = None
        self.sinks: tuple[Callable[[Exchange], None], ...] = ()
        self._pending: deque[tuple[Exchange, int]] = deque()  # with the memory each holds (size)
        self._pending_bytes = 0
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self.refused = 0  # requests refused for back-pressure: counted, not recorded
        self.lost = 0  # records lost to a fault of ours past every step's own guard
        self.queued = 0  # exchanges queued, and of them finished: equal when it is idle
        self.finished = 0

    def configure(
        self, bounds: Bounds, *, settle: Callable[[Exchange], None] | None, report: Callable[[Exchange], None] | None,
        recorder: Recorder | None, writer: Writer | None, sinks: Sequence[Callable[[Exchange], None]] = (),
    ) -> None:
        self.bounds, self.settle, self.report = bounds, settle, report
        self.recorder, self.writer, self.sinks = recorder, writer, tuple(sinks)

    @property
    def needed(self) -> bool:
        """Whether anything reads a finished exchange: else the stage stays out of the list."""
        return bool(self.report or self.recorder or self.sinks)

    @property
    def idle(self) -> bool:
        """Every exchange queued so far is finished, its sinks called."""
        return self.queued == self.finished

    @property
    def depth(self) -> int:
        return len(self._pending)

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    @property
    def saturated(self) -> bool:
        return len(self._pending) >= self.bounds.queue_size or self._pending_bytes >= self.bounds.queue_bytes

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def _batch_due(self) -> bool:
        return len(self._pending) >= self.bounds.batch_size or self._behind

    @property
    def _behind(self) -> bool:
        return (len(self._pending) * 2 >= self.bounds.queue_size
                or self._pending_bytes >= min(_BEHIND_BYTES, self.bounds.queue_bytes // 2))

    def admit(self, ex: Exchange) -> Verdict:
        if self.saturated:
            return Refuse(Unavailable("the gateway's audit log is catching up; retry in a moment", retry_after=1))
        return CONTINUE

    def end(self, ex: Exchange) -> None:
        """Queue a finished exchange. On the request path: no await, no I/O."""
        if ex.quiet:
            self._report(ex)  # metrics only: it never reached the upstream
            return
        if ex.reason == Unavailable.kind:
            self.refused += 1
            self._report(ex)
            self._sink(ex)
            return
        self.queued += 1
        n = size(ex)
        self._pending.append((ex, n))
        self._pending_bytes += n
        if len(self._pending) == 1 or self._batch_due:
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="aiogw-finisher")

    async def close(self) -> None:
        """Finish everything queued, then stop. Called after the server stopped."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        slice_start = time.perf_counter()
        while True:
            if not self._pending:
                if self.writer is not None:
                    self.writer.flush()  # the batch is built: the writer commits it in one transaction
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                if self.recorder is not None:
                    await self._gather()
                slice_start = time.perf_counter()
                continue
            writer = self.writer
            if writer is not None and self.recorder is not None and not writer.has_room:
                await writer.room()  # the database is behind: exchanges wait here, counted
                slice_start = time.perf_counter()
                continue
            ex, n = self._pending.popleft()
            self._pending_bytes -= n
            try:
                self._finish(ex)
            except Exception:  # a fault of ours past every step's own guard: the next one still goes
                self.lost += self.recorder is not None  # its record, if it was to have one
                log.exception("could not finish a %s %s exchange (%s); its record is lost", ex.dialect, ex.endpoint,
                              ex.id or "no id")
                self._sink(ex)
                self.finished += 1
            # The clock is perf_counter: uvloop's loop.time() moves by whole milliseconds.
            if time.perf_counter() - slice_start > (_SLICE_BEHIND if self._behind else _SLICE):
                await asyncio.sleep(0)
                slice_start = time.perf_counter()

    async def _gather(self) -> None:
        """Wait for a batch: `flush_interval` after its first exchange, or until it is
        full, or the gateway stops."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.bounds.flush_interval):
                while not (self._closing or self._batch_due):
                    self._wake.clear()
                    await self._wake.wait()

    def _finish(self, ex: Exchange) -> None:
        recorder = self.recorder
        reading = answer.reading(ex)
        if recorder is not None:
            try:
                reading.answer(ex)  # the record needs it whole: the usage comes from it too
            except Exception:
                log.exception("could not read the answer of a %s %s exchange", ex.dialect, ex.endpoint)
        for tap in ex.taps:
            tap.finish(ex, reading)
        if self.settle is not None:
            self.settle(ex)
        self._report(ex)
        if recorder is not None and self.writer is not None:
            record = recorder.build(ex)
            if record is not None:
                self.writer.add(record)
        self._sink(ex)
        self.finished += 1

    def _sink(self, ex: Exchange) -> None:
        for sink in self.sinks:
            try:
                sink(ex)
            except Exception:  # one sink's trouble must not cost the others the exchange
                log.exception("a sink failed on a %s %s exchange", ex.dialect, ex.endpoint)

    def _report(self, ex: Exchange) -> None:
        if self.report is not None:
            try:
                self.report(ex)
            except Exception:  # a metric or log line must not cost the exchange its record
                log.exception("could not report a %s %s exchange", ex.dialect, ex.endpoint)
