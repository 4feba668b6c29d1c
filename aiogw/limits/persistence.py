"""Spend and rate windows kept in the state store, behind the hot path.

The counters live in memory (`Ledger`); a task writes the users that changed once a
second, and once more at shutdown, so a restart neither resets a budget nor forgets a
window. Spend is stored per user and UTC day; a month is the sum of its days. What a
flush writes is what this gateway charged since its last flush, added to the day's
row: gateways sharing one store each add their own, and none overwrites another's.
The store (`aiogw.store`) is opened and closed by its owner (app.lifecycle).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Protocol

from aiogw import untrusted
from aiogw.limits.buckets import Bucket
from aiogw.limits.ledger import Ledger, day_of
from aiogw.store.base import SpendRow, WindowRow

log = logging.getLogger("aiogw.limits")

FLUSH_INTERVAL = 1.0


class CounterStore(Protocol):
    """What the limits need of the state store (`aiogw.store.base.Store`)."""

    async def load_limits(self, month: str) -> tuple[list[SpendRow], list[WindowRow]]: ...
    async def save_limits(self, spend: list[SpendRow], windows: list[WindowRow]) -> None: ...
    async def claim_limits(self, shared: bool) -> bool: ...


class LimitStore:
    def __init__(self, store: CounterStore, ledger: Ledger) -> None:
        self.store = store
        self.ledger = ledger
        self._open = False
        self._away = False  # the last save failed for the database's own trouble: said once
        # (user, day) -> the day's total as this gateway last read or wrote it: a flush
        # writes the difference.
        self._written: dict[tuple[str, str], float] = {}
        self._task: asyncio.Task[None] | None = None
        self.flushes = 0
        self.errors = 0

    async def start(self) -> None:
        await self._load(time.time())
        self._open = True
        self._task = asyncio.create_task(self._run(), name="aiogw-limits-store")

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _load(self, now: float) -> None:
        today = day_of(now)
        spend, windows = await self.store.load_limits(today[:7])
        for row in spend:
            state = self.ledger.state(row.user, now)
            state.month_usd += row.usd
            if row.day == today:
                state.day_usd += row.usd
                self._written[(row.user, row.day)] = self._written.get((row.user, row.day), 0.0) + row.usd
        for w in windows:
            state = self.ledger.state(w.user, now)
            if state.rpm is not None and w.rpm_at is not None:
                state.rpm = Bucket(int(state.rpm.capacity), now, w.rpm_level, w.rpm_at)
            if state.tpm is not None and w.tpm_at is not None:
                state.tpm = Bucket(int(state.tpm.capacity), now, w.tpm_level, w.tpm_at)
        for state in self.ledger.states.values():
            state.dirty = False
            state.closed = []

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            await self.flush()

    async def flush(self) -> None:
        """Write every user whose counters changed since the last flush."""
        if not self._open:
            return
        spend: list[SpendRow] = []
        windows: list[WindowRow] = []
        totals: dict[tuple[str, str], float] = {}  # what _written becomes once the write is done
        taken: dict[str, list] = {}  # the closed days taken, given back if the write fails
        for user, state in self.ledger.states.items():
            if not state.dirty:
                continue
            state.dirty = False
            days = [*state.closed, (state.day, state.day_usd)] if state.day else list(state.closed)
            taken[user], state.closed = state.closed, []
            for day, usd in days:
                added = usd - self._written.get((user, day), 0.0)
                if added:
                    spend.append(SpendRow(user, day, added))
                totals[(user, day)] = usd
            rpm, tpm = state.rpm, state.tpm
            windows.append(WindowRow(
                user,
                rpm.level if rpm is not None else None, rpm.at if rpm is not None else None,
                tpm.level if tpm is not None else None, tpm.at if tpm is not None else None,
            ))
        if not windows:
            return
        try:
            await self.store.save_limits(spend, windows)
            self.flushes += 1
        except Exception as exc:
            self.errors += 1
            for w in windows:  # written next time, the closed days' spend too
                state = self.ledger.states[w.user]
                state.dirty = True
                state.closed = taken[w.user] + state.closed
            transient = getattr(self.store, "transient", ())
            if transient and isinstance(exc, transient):  # the database away: said once, not each second
                if not self._away:
                    self._away = True
                    log.error("limits: the state database is away (%s); spend and windows are kept in memory "
                              "and stored when it returns", untrusted.text(f"{type(exc).__name__}: {exc}", 300))
            else:
                log.exception("limits: could not store spend and windows; retrying in %.0f s", FLUSH_INTERVAL)
            return
        if self._away:
            self._away = False
            log.warning("limits: the state database is back; spend and windows stored")
        self._written.update(totals)
        for user, closed in taken.items():  # a closed day is final: nothing more is added to it here
            for day, _ in closed:
                self._written.pop((user, day), None)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()
        self._open = False
