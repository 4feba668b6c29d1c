"""The audit writer: records committed in batches, behind the hot path.

It only persists records (the finisher builds them, in batches it gathers for
`flush_interval`: `aiogw.finish`). Records are added without awaiting, and committed
when the finisher says its batch is built (`flush`) or a full batch waits
(`batch_size` records or `_BATCH_BYTES` of them), one transaction at a time, in order
(a blob a record refers to is stored by its own transaction or an earlier one). A
commit per record, as they came, cost 1 KB exchanges ~10% of the gateway's
throughput (bench.commits).

Records waiting are bounded (`has_room`): when the database does not keep up, the
finisher stops building records, exchanges stay queued there, and its back-pressure
refuses new requests. A batch the database cannot take for its own reasons (the
store's `transient` errors: away, restarting, locked, stalled) goes to the spool
(`audit.spool`) and is replayed, in order, when it takes writes again. When neither
the database nor the spool takes a batch at shutdown, it goes to the spill file
(`audit.spill`); nothing is dropped without being counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from aiogw import untrusted
from aiogw.audit import record as rec
from aiogw.audit import spill
from aiogw.audit import spool as spool_mod
from aiogw.audit.spool import Spool
from aiogw.config import AuditSettings

log = logging.getLogger("aiogw.audit")

# Hashes of blobs already stored, with the day their last_seen was last raised: a part
# seen again the same day costs no write at all. Bounded: 200k entries is ~40 MB.
_KNOWN_MAX = 200_000
# A batch is due at this many bytes of records, whatever its count.
_BATCH_BYTES = 8 * 1024 * 1024
# Built records waiting for the database, in batches (by count, and by bytes against
# _BATCH_BYTES): beyond this the finisher builds no more, and the exchanges it leaves
# queued count for the back-pressure. A record is far smaller than its exchange (an
# agent's turn: its new messages, not the resent history or the parsed tree).
_MAX_BATCHES = 2
_DAY = 86_400.0
# The database's own trouble (the store's `transient`) sends the batch to the spool.
# Any other error is about what the batch holds (a constraint a record breaks, a value
# the database cannot bind): retried, it would fail forever, and the writer would stall
# and then, once the queue is full, the gateway. The batch is stored one record at a
# time instead, and a record refused on its own goes to the spill file.


class BatchStore(Protocol):
    """What the writer needs of the state store (`aiogw.store.base.Store`)."""

    transient: tuple[type[BaseException], ...]

    async def write_batch(self, records: list[rec.Record], known: Mapping[bytes, int]) -> dict[bytes, tuple]: ...


class AuditWriter:
    def __init__(self, store: BatchStore, state_path: Path, settings: AuditSettings,
                 orphans: Sequence[Path] = ()) -> None:
        self.store = store  # opened and closed by its owner (app.lifecycle)
        self.spool = Spool(spool_mod.path_for(state_path), settings.spool_bytes)
        self.orphans = orphans  # spools of workers that no longer run: taken over at start
        self.database_up = True  # False from a batch the database could not take until the spool is replayed
        self._next_replay = 0.0  # loop time of the spool's next replay attempt
        self._replay_failures = 0
        self.settings = settings  # batch_size and queue_bytes; a reload replaces them
        self._waiting: list[rec.Record] = []
        self._waiting_bytes = 0  # what they hold (Record.size)
        self._wake = asyncio.Event()  # a record arrived, or close()
        self._roomy = asyncio.Event()  # set while there is room for more records
        self._roomy.set()
        self._committing = False  # a batch is being stored
        self._flushed = False  # the finisher's batch is complete: what waits is committed
        self._refused = False  # the database refused a batch at shutdown: the rest is spilled
        self._closing = False
        self._stop = asyncio.Event()  # set by close(): a back-off under way is cut short
        self._task: asyncio.Task[None] | None = None
        self._known: OrderedDict[bytes, int] = OrderedDict()
        self._spill_path = spill.path_for(state_path)
        # Counters, for metrics and tests.
        self.written = 0
        self.batches = 0
        self.write_errors = 0
        self.spilled = 0  # records written to the spill file (the database refused them)
        self.unstorable = 0  # records the database refused on their own, taken out of their batch
        self.lost = 0  # records neither stored nor spilled (the spill file could not be written)
        self.spooled = 0  # records written to the spool (the database was away)
        self.replayed = 0  # records of the spool written to the database
        self.last_batch_seconds = 0.0
        self.on_batch: Callable[[float], None] | None = None  # a batch's seconds, for metrics

    @property
    def depth(self) -> int:
        return len(self._waiting)

    @property
    def _batch_bytes(self) -> int:
        return min(_BATCH_BYTES, self.settings.queue_bytes // 2)

    @property
    def _full(self) -> bool:
        return (len(self._waiting) >= self.settings.batch_size * _MAX_BATCHES
                or self._waiting_bytes >= self._batch_bytes * _MAX_BATCHES)

    @property
    def has_room(self) -> bool:
        return self._roomy.is_set()

    async def room(self) -> None:
        """Wait until there is room for more records."""
        await self._roomy.wait()

    def add(self, record: rec.Record) -> None:
        """Queue a record for the next batch. No await, no I/O."""
        if self._refused:  # the database refused at shutdown: straight to the spill file
            self._spill_rows([record])
            return
        self._waiting.append(record)
        self._waiting_bytes += record.size
        if self._full:
            self._roomy.clear()
        if self._due:
            self._wake.set()

    def flush(self) -> None:
        """Commit what waits as soon as the database is free: the batch is complete."""
        if self._waiting:
            self._flushed = True
            self._wake.set()

    @property
    def _due(self) -> bool:
        return (self._flushed or len(self._waiting) >= self.settings.batch_size
                or self._waiting_bytes >= self._batch_bytes)

    async def start(self) -> None:
        """Find what a spool an earlier run left holds (it is replayed first), then run."""
        await asyncio.to_thread(self.spool.open)
        for path in self.orphans:
            taken = await asyncio.to_thread(self.spool.adopt, Spool(path, self.spool.limit))
            if taken:
                log.warning("audit spool %s of a worker that no longer runs held %d bytes of records: taken over "
                            "by %s and replayed", path, taken, self.spool.path)
        if self.spool.cut:
            log.error("audit spool %s ended in a torn batch (%d bytes, never acknowledged): cut off",
                      self.spool.path, self.spool.cut)
        if self.spool.pending:
            self.database_up = False
            log.warning("audit spool %s holds %d bytes of records an earlier run could not store: replaying them",
                        self.spool.path, self.spool.pending)
        self._task = asyncio.create_task(self._run(), name="aiogw-audit-writer")

    async def close(self) -> None:
        """Write everything added, then close. Called after the finisher is done."""
        self._closing = True
        self._stop.set()
        self._wake.set()
        if self._task is not None:
            await self._task

    @property
    def settled(self) -> bool:
        """Every record added so far is stored (or spooled, or spilled)."""
        return not self._waiting and not self._committing

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        """Commit what waits once it is flushed or a batch is full, one transaction at a
        time, in order: records that arrive during a commit make the next batch. What
        the spool holds is replayed a batch at a time between them."""
        loop = asyncio.get_running_loop()
        at_exit = 0  # replay attempts once the gateway stops
        while True:
            busy = False
            if self._waiting and (self._closing or self._due):
                busy = True
                batch = self._take()
                self._committing = True
                try:
                    left_over = await self._commit(batch, loop.time())
                finally:
                    self._committing = False
                if left_over:
                    self._refused = True
                    self._spill(left_over)
            # A replay step after each batch: under a steady load batches are always
            # due, and the spool must still drain.
            if self.spool.pending and loop.time() >= self._next_replay:
                busy = True
                await self._replay_one()
            if busy:
                continue
            if self._closing and not self._waiting:
                # What the spool still holds stays on disk for the next start.
                if not self.spool.pending or at_exit >= 5:
                    return
                at_exit += 1
                await self._backoff(at_exit)
                self._next_replay = 0.0
                continue
            self._wake.clear()
            wait = max(0.0, self._next_replay - loop.time()) if self.spool.pending else None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    def _take(self) -> list[rec.Record]:
        """The next batch: `batch_size` records or `_batch_bytes` of them, in order."""
        n, size = 0, 0
        limit, most = self._batch_bytes, self.settings.batch_size
        for record in self._waiting:
            if n >= most or (n and size >= limit):
                break
            n += 1
            size += record.size
        batch, self._waiting = self._waiting[:n], self._waiting[n:]
        self._waiting_bytes -= size
        if not self._waiting:
            self._flushed = False
        if not self._full:
            self._roomy.set()
        return batch

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

    async def _commit(self, records: list[rec.Record], t0: float) -> list[rec.Record]:
        """Store the records, or spool them; what is left when neither can be done at
        shutdown. Never raises: a fault of ours past every fallback is said, with what it
        leaves unaccounted for."""
        try:
            return await self._deliver(records, t0)
        except Exception:
            log.exception("audit: %d records may not be stored (%s)", len(records), spill.ids(records))
            self.lost += len(records)
            return []

    async def _deliver(self, records: list[rec.Record], t0: float) -> list[rec.Record]:
        failures = 0
        while True:
            if not self.spool.pending:  # else the batch joins the spool's end: records stay in order
                try:
                    await self._write(records)
                except self.store.transient as exc:
                    self.write_errors += 1
                    self._away(exc)
                else:
                    if not self.database_up:  # back, with nothing in the spool to replay (it could not be written)
                        self.database_up = True
                        log.warning("audit: the state database %s is back", getattr(self.store, "where", "?"))
                    self.last_batch_seconds = asyncio.get_running_loop().time() - t0
                    if self.on_batch is not None:
                        self.on_batch(self.last_batch_seconds)
                    return []
            if await self._to_spool(records):
                return []
            # The spool is full or cannot be written: the batch waits (and the records
            # behind it, until the back-pressure refuses requests), while the spool drains.
            failures += 1
            if self._closing and failures >= 5:
                return records
            if self.spool.pending:
                await self._replay_one()
            await self._backoff(failures)

    async def _write(self, records: list[rec.Record]) -> None:
        """One transaction, or, when the database refuses something in it that is not its
        own trouble (a constraint a record breaks, a value it cannot bind), one record at a
        time: a record refused on its own goes to the spill file. The store's transient
        errors are raised."""
        try:
            await self._store(records)
        except self.store.transient:
            raise
        except Exception as exc:
            self.write_errors += 1
            if len(records) > 1:  # one at a time: the others go in, the one that cannot is found
                for record in records:
                    await self._write([record])
                return
            self.unstorable += 1
            why = untrusted.text(f"{type(exc).__name__}: {exc}", 300)
            log.error("audit record %s does not fit the database (%s); to the spill file", records[0].id, why)
            self._spill_rows(records)
            await self._keep_parts(records[0])

    def _away(self, exc: BaseException) -> None:
        """The database could not take a batch: the spool's next replay after a back-off
        (0.2 s doubling up to 5 s), and said once until it is back."""
        self._replay_failures += 1
        self._next_replay = asyncio.get_running_loop().time() + min(5.0, 0.1 * 2**self._replay_failures)
        if self.database_up:
            self.database_up = False
            log.error("audit: the state database %s is away (%s); records go to the spool %s until it returns",
                      getattr(self.store, "where", "?"), untrusted.text(f"{type(exc).__name__}: {exc}", 300),
                      self.spool.path)

    async def _to_spool(self, records: list[rec.Record]) -> bool:
        """The batch on disk in the spool (synced); False when it is full or unwritable."""
        frame = spool_mod.encode(records)
        self.spool.limit = self.settings.spool_bytes  # a reload may have changed it
        if not self.spool.has_room(len(frame)):
            return False
        try:
            await asyncio.to_thread(self.spool.append, frame)
        except OSError as exc:  # a full disk: said, not a traceback; the batch is retried
            log.error("audit: the spool %s cannot be written (%s); %d records wait in memory", self.spool.path,
                      exc.strerror or exc, len(records))
            return False
        self.spooled += len(records)
        return True

    async def _replay_one(self) -> None:
        """The spool's oldest batch into the database, then past it for good. The database
        still away: the next attempt after a back-off (`_away`)."""
        head = await asyncio.to_thread(self.spool.head)
        if head is None:
            return
        records, frame = head
        try:
            await self._write(records)
        except self.store.transient as exc:
            self.write_errors += 1
            self._away(exc)
            return
        await asyncio.to_thread(self.spool.mark, frame)
        self.replayed += sum(r.row is not None for r in records)
        self._replay_failures = 0
        if not self.spool.pending:
            self.database_up = True
            log.warning("audit: the state database %s is back; the spool is replayed (%d records so far)",
                        getattr(self.store, "where", "?"), self.replayed)

    async def _keep_parts(self, record: rec.Record) -> None:
        """The contents a record refused by the database carries: a later turn of its
        conversation may refer to them without carrying them (see audit.conversation.split_request)."""
        if record.parts:
            try:
                await self._store([rec.Record(record.id, None, None, record.parts, record.started)])
            except Exception:
                log.exception("audit: the contents of record %s could not be stored either", record.id)

    async def _store(self, records: list[rec.Record]) -> None:
        """One transaction. A retry stores the same records again: they carry their parts."""
        new = await self.store.write_batch(records, self._known)
        for h, (_, seen) in new.items():
            self._known[h] = int(seen // _DAY)
            self._known.move_to_end(h)
        while len(self._known) > _KNOWN_MAX:
            self._known.popitem(last=False)
        self.written += sum(r.row is not None for r in records)
        self.batches += 1

    def _spill(self, records: list[rec.Record]) -> None:
        """Last resort at shutdown when the database refuses writes: the batch that failed
        and everything still waiting, their rows as JSON lines."""
        records = records + self._waiting
        self._waiting, self._waiting_bytes = [], 0
        self._roomy.set()
        if self._spill_rows(records):
            log.error("audit database unwritable at shutdown: %d records spilled to %s", len(records), self._spill_path)

    def _spill_rows(self, records: list[rec.Record]) -> bool:
        """Append the records to the spill file; counted as spilled or lost (a full disk),
        never raised. True when all are in it."""
        done = spill.write(self._spill_path, records)
        self.spilled += done
        self.lost += len(records) - done
        return done == len(records)
