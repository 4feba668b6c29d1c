"""The audit queue and its writer task: batches committed behind the hot path.

The request path only appends the finished exchange to a deque (`submit`), which never
blocks and never awaits the database. One task takes batches — `batch_size` records,
8 MiB of bodies and answers, or whatever arrived within `flush_interval` — and builds
their records; what is built is committed in one transaction whenever the previous
one is done, so the next batch is built while the database writes.

Back-pressure is fail-closed: when `queue_size` records (or `queue_bytes` of bodies and
answers) wait, `saturated` turns true
and the proxy refuses new requests with a 503 in the dialect's envelope until the
writer catches up. Exchanges already in flight still append (so the deque can pass
`queue_size` by at most the number of open exchanges): no record is ever dropped.
The refusals are counted (`refused`), not audited: their records would feed the very
backlog that caused them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from pathlib import Path

import aiosqlite

from aiogw.audit import record as rec
from aiogw.audit import spill, storable, store
from aiogw.config import AuditSettings
from aiogw.errors import Unavailable
from aiogw.exchange import Exchange

log = logging.getLogger("aiogw.audit")

# Hashes of blobs already stored, with the day their last_seen was last raised: a part
# seen again the same day costs no write at all. Bounded: 200k entries is ~40 MB.
_KNOWN_MAX = 200_000
# Seconds of record building between two yields to the loop (a record is not split: one
# of a 500-event stream takes ~1.5 ms). A relayed chunk waits for the slice under way:
# with 2 ms slices, everything on added ~1.5 ms to the inter-chunk gap p99 of 50-event
# streams over the pass-through, with 0.2 ms ~0.35-0.55, at the same throughput (bench.full,
# bench.audit_alone). When the writer is behind it takes longer turns: under overload,
# keeping up (no refusals, a bounded heap) is worth a few milliseconds of loop latency.
_SLICE = 0.0002
_SLICE_BEHIND = 0.008
# A batch is due at this many bytes of bodies and answers waiting (or half the queue's
# byte bound), whatever its count, and the writer counts as behind from there. Every
# queued byte is memory (a body parsed is about three times its size): with batches made
# by count and time alone, 200 KB bodies under full load kept ~100 MiB waiting and the
# gateway's RSS at ~325 MiB; at 16 MiB it peaked at ~152, at 8 MiB ~136, with the same
# throughput (200 KB, audit on against off: 78% and 80%).
_BATCH_BYTES = 8 * 1024 * 1024
# Built records waiting for the database, in batches (by count, and by the bytes they
# hold against _BATCH_BYTES): beyond this the writer builds no more, and the exchanges it
# leaves queued count for the back-pressure. A record is far smaller than its exchange
# (an agent's turn: its new messages, not the resent history or the parsed tree).
_MAX_BUILT = 2
# The database's own trouble (locked, disk full, I/O): the batch is retried, with back-off,
# until it goes in. Any other error is about what the batch holds (a constraint a record
# breaks, a value SQLite cannot bind): retried, it would fail forever, and the writer
# would stall and then, once the queue is full, the gateway. The batch is stored one
# record at a time instead, and a record refused on its own goes to the spill file.
_DATABASE = (sqlite3.OperationalError,)


def _size(ex: Exchange) -> int:
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


class AuditWriter:
    def __init__(self, path: Path, settings: AuditSettings, settle: Callable[[Exchange], None] | None = None) -> None:
        self.path = path
        self.settings = settings
        # Charges an exchange the accountant left to the writer (read its answer once).
        self.settle = settle
        self._pending: deque[Exchange] = deque()
        self._pending_bytes = 0
        self._wake = asyncio.Event()
        self._idle = False  # the writer waits for exchanges or for its commit to end
        # Records built and not yet handed to the database, and the commit under way.
        self._built: list[rec.Record] = []
        self._built_bytes = 0  # what they hold (Record.size)
        self._built_since = 0.0  # when the oldest of them began to be built
        self._committing: asyncio.Task[bool] | None = None
        self._refused = False  # the database refused a batch at shutdown: it was spilled
        self._closing = False
        self._stop = asyncio.Event()  # set by close(): a back-off under way is cut short
        self._task: asyncio.Task[None] | None = None
        self._db: aiosqlite.Connection | None = None
        self._known: OrderedDict[bytes, int] = OrderedDict()
        self._memo = rec.PartsMemo()
        self._spill_path = spill.path_for(path)
        # Counters, for metrics and tests.
        self.written = 0
        self.batches = 0
        self.refused = 0
        self.write_errors = 0
        self.spilled = 0  # records written to the spill file (the database refused them)
        self.sanitized = 0  # records with a value made storable (text escaped or cut, a number clamped)
        self.unstorable = 0  # records the database refused on their own, taken out of their batch
        self.lost = 0  # records neither stored nor spilled (the spill file could not be written)
        self.last_batch_seconds = 0.0
        self.on_batch: Callable[[float], None] | None = None  # a batch's seconds, for metrics

    @property
    def depth(self) -> int:
        return len(self._pending)

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    @property
    def _behind(self) -> bool:
        return len(self._pending) * 2 >= self.settings.queue_size or self._pending_bytes >= self._batch_bytes

    @property
    def _batch_bytes(self) -> int:
        return min(_BATCH_BYTES, self.settings.queue_bytes // 2)

    @property
    def saturated(self) -> bool:
        return len(self._pending) >= self.settings.queue_size or self._pending_bytes >= self.settings.queue_bytes

    def submit(self, ex: Exchange) -> None:
        """Queue a finished exchange. Called from the request path: no await, no I/O."""
        if ex.reason == Unavailable.kind:
            self.refused += 1  # refused for back-pressure: counted, not queued
            if ex.settle_later and self.settle is not None:
                self.settle(ex)  # still reported: its metrics and log line
            return
        self._pending.append(ex)
        self._pending_bytes += _size(ex)
        n = len(self._pending)
        # Wake the writer for the first record (its flush timer starts) and for a full
        # batch, by count or by bytes: large bodies must not wait for a count.
        if n == 1 or n >= self.settings.batch_size or self._pending_bytes >= self._batch_bytes:
            self._wake.set()

    async def start(self) -> None:
        self._db = await store.connect(self.path)
        self._task = asyncio.create_task(self._run(), name="aiogw-audit-writer")

    async def close(self) -> None:
        """Write everything still queued, then close. Called after the server stopped."""
        self._closing = True
        self._stop.set()
        self._wake.set()
        if self._task is not None:
            await self._task
        if self._db is not None:
            await self._db.close()

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        """Build records as exchanges arrive; commit what is built whenever the database
        is free, one transaction at a time, in order (a blob a record refers to is stored
        by its own transaction or an earlier one).

        Exchanges are turned into records while a commit is under way, so what waits on
        the database is records, not bodies and parsed trees: a commit waits ~20 ms for
        aiosqlite's thread and for the busy loop to take its result, and with one batch
        at a time 16 agents sending 1 MB bodies kept up to 16 exchanges (~45 MB) queued
        behind it. Built records are bounded (`_MAX_BUILT`): when the database does not
        keep up, exchanges stay queued and the back-pressure sees them."""
        failures = 0  # batches in a row that could not be built
        loop = asyncio.get_running_loop()
        while True:
            if self._refused:  # the database refused at shutdown: the rest is spilled too
                if self._built or self._pending:
                    self._spill(self._built)
                return
            room = (
                len(self._built) < self.settings.batch_size * _MAX_BUILT
                and self._built_bytes < self._batch_bytes * _MAX_BUILT
            )
            if not self._pending or not room:
                if self._closing and not self._pending and self._committing is None:
                    return
                self._wake.clear()
                self._idle = True  # a commit's end wakes this wait too, not a batch's gathering
                try:
                    await self._wake.wait()
                finally:
                    self._idle = False
                continue
            if (
                len(self._pending) < self.settings.batch_size
                and self._pending_bytes < self._batch_bytes
                and not self._closing
            ):
                # Gather a batch: up to flush_interval after the first record arrived.
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.settings.flush_interval):
                        await self._wake.wait()
            batch, size = self._take()
            t0 = loop.time()
            try:
                records = await self._build_all(batch)
            except Exception:  # a bug of ours (each record has its own fallback): keep the batch, retry
                failures += 1
                self.write_errors += 1
                self._memo.drop_fresh()
                self._pending.extendleft(reversed(batch))
                log.exception("audit batch of %d records not built (attempt %d); retrying", len(batch), failures)
                if self._closing and failures >= 5:  # the gateway must still exit: say what is lost
                    log.error("audit: %d exchanges could not be recorded at shutdown", len(self._pending))
                    self.lost += len(self._pending)
                    self._pending.clear()
                    self._pending_bytes = 0
                    continue  # what was built is still committed
                await self._backoff(failures)
                continue
            failures = 0
            # From here the records are all that is kept: the exchanges' bodies, parsed
            # requests and answers are freed now, not after the commit.
            del batch
            self._pending_bytes -= size
            if not self._built:
                self._built_since = t0
            self._built += records
            self._built_bytes += sum(r.size for r in records)
            self._start_commit()

    async def _backoff(self, failures: int) -> None:
        """Wait before another attempt: 0.2 s doubling up to 5 s while the gateway runs.
        Once it stops, at most 0.5 s: the five attempts close() allows must fit in the
        seconds left after the drain (systemd's TimeoutStopSec is the drain's 30 + 15)."""
        if self._closing:
            await asyncio.sleep(min(0.5, 0.1 * 2**failures))
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(5.0, 0.1 * 2**failures)):
                await self._stop.wait()

    def _take(self) -> tuple[list[Exchange], int]:
        """The next batch: `batch_size` exchanges or `_batch_bytes` of them, in order."""
        batch, size = [], 0
        while self._pending and len(batch) < self.settings.batch_size and size < self._batch_bytes:
            ex = self._pending.popleft()
            batch.append(ex)
            size += _size(ex)
        return batch, size

    def _start_commit(self) -> None:
        """Commit what is built, unless a commit is under way: its end starts the next."""
        if self._built and self._committing is None and not self._refused:
            records, self._built, self._built_bytes = self._built, [], 0
            self._committing = asyncio.create_task(
                self._commit(records, self._built_since), name="aiogw-audit-commit"
            )
            self._committing.add_done_callback(self._committed)

    def _committed(self, task: asyncio.Task[bool]) -> None:
        self._committing = None
        if task.cancelled() or task.exception() is not None or not task.result():
            self._refused = True  # spilled at shutdown (or the loop is closing)
        else:
            self._start_commit()
        if self._idle or self._refused:
            self._wake.set()

    async def _build_all(self, batch: list[Exchange]) -> list[rec.Record]:
        self._memo.mark()
        records = []
        slice_start = time.perf_counter()
        for ex in batch:
            record = self._build(ex)
            if record is not None:
                records.append(record)
            # Work in short slices, then let requests through: a relayed chunk waits for
            # the slice under way, and under full load the writer still gets a share of
            # each loop turn that keeps up with what the turn's requests produce. The
            # clock is perf_counter: uvloop's loop.time() moves by whole milliseconds.
            if time.perf_counter() - slice_start > (_SLICE_BEHIND if self._behind else _SLICE):
                await asyncio.sleep(0)
                slice_start = time.perf_counter()
        return records

    async def _commit(self, records: list[rec.Record], t0: float) -> bool:
        """Store the records; False when the database still refused them at shutdown and
        they went to the spill file. Never raises: a commit's end is a done-callback's,
        where an exception would leave the writer waiting for a wake-up that never comes."""
        try:
            left = await self._store_all(records, t0)
        except Exception:  # a fault of ours past every fallback: say what is unaccounted for
            log.exception("audit: %d records may not be stored (%s)", len(records), spill.ids(records))
            self.lost += len(records)
            return True
        if left:
            self._spill(left)
            return False
        return True

    async def _store_all(self, records: list[rec.Record], t0: float) -> list[rec.Record]:
        """Store the records, retrying while the database fails and taking out any it
        refuses on their own; what is left unstored when it still fails at shutdown."""
        failures = 0
        while True:
            try:
                await self._store(records)
            except _DATABASE:
                failures += 1
                self.write_errors += 1
                log.exception("audit batch of %d records not written (attempt %d); retrying", len(records), failures)
                if self._closing and failures >= 5:
                    return records
                await self._backoff(failures)
                continue
            except Exception as exc:
                self.write_errors += 1
                if len(records) > 1:  # one at a time: the others go in, the one that cannot is found
                    for i, record in enumerate(records):
                        if await self._store_all([record], t0):
                            return records[i:]
                    return []
                self.unstorable += 1
                why = storable.text(f"{type(exc).__name__}: {exc}", 300)
                log.error("audit record %s does not fit the database (%s); to the spill file", records[0].id, why)
                self._spill_rows(records)
                await self._keep_parts(records[0])
                return []
            self.last_batch_seconds = asyncio.get_running_loop().time() - t0
            if self.on_batch is not None:
                self.on_batch(self.last_batch_seconds)
            return []

    async def _keep_parts(self, record: rec.Record) -> None:
        """The contents a record refused by the database carries: a later turn of its
        conversation may refer to them without carrying them (see record._split)."""
        if record.parts:
            try:
                await self._store([rec.Record(record.id, None, None, record.parts, record.started)])
            except Exception:
                log.exception("audit: the contents of record %s could not be stored either", record.id)

    async def _store(self, records: list[rec.Record]) -> None:
        """One transaction. A retry stores the same records again: they carry their parts."""
        assert self._db is not None
        statements, new = store.batch(records, self._known)
        db = self._db
        # The whole transaction is one call into aiosqlite's thread (its `_execute`, the
        # one way it runs a function there; setup.cfg keeps aiosqlite below 0.23 for it).
        # Each of its awaitable calls hands a result back to the loop, and the thread
        # waits for the GIL each time, up to a switch interval while the loop is busy:
        # with five calls a batch, 1 MB agent bodies kept ~17 exchanges (~50 MB) waiting
        # behind the writer; with one, 0-1 (peak RSS of the audit-on gateway 211 -> 154
        # MB, 1 MB throughput 155 -> 197 req/s).
        await db._execute(_transaction, db._conn, statements)
        for h, (_, seen) in new.items():
            self._known[h] = int(seen // store.DAY)
            self._known.move_to_end(h)
        while len(self._known) > _KNOWN_MAX:
            self._known.popitem(last=False)
        self.written += sum(r.row is not None for r in records)
        self.batches += 1

    def _build(self, ex: Exchange) -> rec.Record | None:
        """The exchange's record; if a part of it cannot be read or kept, the record
        without it, saying so. None only for a fault of ours (logged and counted)."""
        if ex.settle_later and self.settle is not None:
            self.settle(ex)  # never raises: accounting logs its own trouble
        try:
            return self._counted(rec.build(ex, self.settings.policy, self._memo))
        except Exception:
            # A provider answer the tap could not read must not cost the record: keep
            # the row and the request, note why the answer is missing.
            log.exception("audit: could not read the answer of a %s %s exchange", ex.dialect, ex.endpoint)
            self._memo.drop_fresh()  # an entry this build may have put was never handed
        ex.chunks = None
        ex.response_body = None
        ex.answer_read, ex.answer, ex.raw_response = False, None, None
        ex.json = None
        ex.reason = (ex.reason + "; " if ex.reason else "") + "audit: answer unreadable"
        try:
            return self._counted(rec.build(ex, self.settings.policy))
        except Exception:  # nor the request: the row alone, which every exchange has
            log.exception("audit: could not keep the request of a %s %s exchange", ex.dialect, ex.endpoint)
        ex.body, ex.findings = None, None
        ex.reason += "; request unreadable"
        try:
            return self._counted(rec.build(ex, rec.METADATA))
        except Exception:
            log.exception("audit: an exchange could not be recorded at all")
            self.lost += 1
            return None

    def _counted(self, record: rec.Record) -> rec.Record:
        if record.mended:
            self.sanitized += 1
        return record

    def _spill(self, records: list[rec.Record]) -> None:
        """Last resort at shutdown when the database refuses writes: the batch that failed
        and everything still queued, their rows as JSON lines."""
        while self._pending:
            record = self._build(self._pending.popleft())
            if record is not None:
                records.append(record)
        self._pending_bytes = 0
        if self._spill_rows(records):
            log.error("audit database unwritable at shutdown: %d records spilled to %s", len(records), self._spill_path)

    def _spill_rows(self, records: list[rec.Record]) -> bool:
        """Append the records to the spill file; counted as spilled or lost (a full disk),
        never raised. True when all are in it."""
        done = spill.write(self._spill_path, records)
        self.spilled += done
        self.lost += len(records) - done
        return done == len(records)


def _transaction(conn: sqlite3.Connection, statements: list[tuple[str, list]]) -> None:
    """A batch's statements and commit, in the database thread; all or nothing."""
    try:
        for sql, params in statements:
            conn.execute(sql, params)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
