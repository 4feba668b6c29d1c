"""Limits shared by every worker and instance: the counters in Redis, checked and taken
by one script each (aiogw.limits.redis_scripts), so no two processes admit on the same
allowance.

A request is admitted by one round trip (ADMIT): rate buckets, concurrency, budgets.
It holds a reservation in Redis: its concurrency slot and its estimated input cost,
which counts against the budgets while it runs. At its end SETTLE frees both, corrects
the token bucket by what it really used and adds the real cost to the day and month.
A reservation lives `reservation_seconds` unless its process renews it (every third of
that); a process that dies renews nothing, so what its requests held comes back on its
own within that time. A budget is thus overshot by no more than what the requests in
flight at the crossing spend beyond their reserved estimate, on every instance
together: the same bound as in one process (aiogw.limits.ledger), over all of them.

A busy user is admitted on a lease instead (aiogw.limits.lease): a share of its limits
this process holds, taken and given back by one script an interval, with the bounds
stated there. Small limits are never leased: `requests_per_minute = 60` admits 60
across every instance, exactly.

Spend also goes to the local ledger, whose LimitStore adds it to the state store as
before: that is the record a seed reads when Redis has not seen a user's month (a new
month, a Redis that lost its data), and what `aiogw usage` and a restart agree on.

While Redis is away (`[limits] on_store_failure`): "open" admits on this process's own
counters (the local ledger: each process then holds each limit by itself), "closed"
refuses users with limits (503). Spend charged meanwhile is added to Redis when it
returns; reservations made before it left expire there on their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import secrets
import time
from typing import Protocol

from aiogw.config_reader import ConfigError
from aiogw.errors import Unavailable
from aiogw.limits.lease import LeaseHold, Leases
from aiogw.limits.ledger import (
    Admission,
    Ledger,
    day_of,
    over_budget,
    over_requests,
    over_tokens,
    too_many_in_flight,
)
from aiogw.limits.redis_link import RedisLink, ReplyError, StoreRefused, StoreUnavailable
from aiogw.limits.redis_scripts import ADMIT, RENEW, SCRIPTS, SEED, SETTLE
from aiogw.limits.settings import Limits, SharedStore
from aiogw.store.base import SpendRow, WindowRow

log = logging.getLogger("aiogw.limits")

# A seed reads the month's spend of every user once; users seeded within this many
# seconds (the first requests of a month) share that one read.
_SEED_FRESH = 2.0


class SpendSource(Protocol):
    """What a seed needs of the state store (`aiogw.store.base.Store`)."""

    async def load_limits(self, month: str | None) -> tuple[list[SpendRow], list[WindowRow]]: ...


class Reservation:
    """What a request admitted through Redis holds there until it ends: its entry in
    the user's flight set is `ID|HOLDS` (the estimated cost it holds, as sent)."""

    __slots__ = ("holds", "id", "tokens", "user")

    def __init__(self, rid: str, user: str, tokens: int, holds: str) -> None:
        self.id, self.user, self.tokens, self.holds = rid, user, tokens, holds

    @property
    def member(self) -> str:
        return f"{self.id}|{self.holds}"


class _UserKeys:
    """A user's keys on one UTC day."""

    __slots__ = ("day", "keys", "month", "until")

    def __init__(self, user: str, day: str, until: float = 0.0) -> None:
        tag = f"{{aiogw:{user}}}"
        self.day, self.month, self.until = day, day[:7], until
        self.keys = [f"{tag}:st", f"{tag}:flight", f"{tag}:d:{day}", f"{tag}:m:{day[:7]}", f"{tag}:lease"]


class SharedLedger:
    """Admission and settling through Redis, the local ledger beside it."""

    def __init__(self, settings: SharedStore, local: Ledger, spend: SpendSource) -> None:
        self.settings = settings
        self.local = local  # spend for the state store; the counters while Redis is away ("open")
        self.spend = spend
        self.link = RedisLink(settings.url, settings.password, on_change=self._changed)
        for script in SCRIPTS:
            self.link.register(script)
        self._ids = itertools.count()
        self._prefix = f"{os.getpid():x}.{secrets.token_hex(3)}."
        self.open: dict[str, Reservation] = {}  # reservations this process holds, renewed
        self._keys: dict[str, _UserKeys] = {}
        self._unsent: dict[tuple[str, str], float] = {}  # (user, day) -> spend Redis has not had
        self._seeds: dict[str, tuple[float, asyncio.Future[dict[tuple[str, str], float]]]] = {}
        self._renewing: asyncio.Task[None] | None = None
        self.unshared = 0  # admissions made on local counters while Redis was away
        self.leases = Leases(self.link, self._prefix, lambda: self.settings, self.local.limits,
                             lambda user, now: self._user_keys(user, now).keys)
        self.refused_away = 0  # requests refused because Redis was away ("closed")

    @property
    def up(self) -> bool:
        return self.link.up

    async def start(self) -> None:
        """Connect (away at start: the gateway starts, and says so); its credentials
        refused: a ConfigError, and the gateway does not start."""
        try:
            await self.link.connect()
        except StoreRefused as exc:
            raise ConfigError(f"[limits] store: {exc}") from None
        self._renewing = asyncio.create_task(self._renew(), name="aiogw-limits-renew")
        self.leases.start()

    async def close(self) -> None:
        await self.leases.close()
        if self._renewing is not None:
            self._renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewing
        await self.link.answered()  # the settles of the last exchanges
        await self.link.close()

    async def admit(self, user: str, limits: Limits, route: str, model: str | None, tokens: int,
                    usd: float) -> Reservation | LeaseHold | Admission:
        """Admit a request or raise its refusal (routes and models were checked)."""
        leased = self.leases.admit(user, limits, tokens, usd)
        if leased is not None:
            return leased
        try:
            return await self._admit(user, limits, route, model, tokens, usd)
        except BaseException:
            self.leases.ended(user)
            raise

    async def _admit(self, user: str, limits: Limits, route: str, model: str | None, tokens: int,
                     usd: float) -> Reservation | Admission:
        """One ADMIT script in Redis."""
        now = time.time()
        keys = self._user_keys(user, now)
        rid = self._prefix + str(next(self._ids))
        args = [
            rid, tokens, repr(usd), limits.requests_per_minute or 0, limits.tokens_per_minute or 0,
            limits.max_concurrent or 0,
            "" if limits.daily_budget_usd is None else repr(limits.daily_budget_usd),
            "" if limits.monthly_budget_usd is None else repr(limits.monthly_budget_usd),
            self.settings.reservation_seconds,
        ]
        try:
            reply = await self.link.run(ADMIT, keys.keys, args)
            if reply[0] == b"seed":
                await self._seed(user, keys)
                reply = await self.link.run(ADMIT, keys.keys, args)
        except StoreUnavailable:
            return self._away(user, route, model, tokens, usd, now)
        except ReplyError as exc:  # a script Redis refused to run: a bug, not the agent's
            log.error("limits: Redis refused the admission script for %r: %s", user, exc)
            return self._away(user, route, model, tokens, usd, now)
        except asyncio.CancelledError:
            # The client left while Redis answered: whatever the script took, give the
            # slot and the hold back now rather than when the reservation expires.
            with contextlib.suppress(StoreUnavailable):
                self.link.script(SETTLE, keys.keys, rid, args[2], 0, "0", 0).add_done_callback(_retrieved)
            raise
        verdict = reply[0]
        if verdict == b"ok":
            held = self.open[rid] = Reservation(rid, user, tokens, args[2])
            return held
        if verdict == b"daily" or verdict == b"monthly":
            period = verdict.decode()
            budget = limits.daily_budget_usd if period == "daily" else limits.monthly_budget_usd
            raise over_budget(user, period, budget or 0.0, float(reply[1]), float(reply[2]), now)
        if verdict == b"concurrent":
            raise too_many_in_flight(user, int(reply[1]))
        if verdict == b"rpm":
            raise over_requests(user, limits.requests_per_minute or 0, float(reply[1]))
        if verdict == b"tpm":
            raise over_tokens(user, limits.tokens_per_minute or 0, tokens, float(reply[1]))
        raise RuntimeError(f"the ADMIT script answered {reply!r}")

    def settle(self, user: str, held: Reservation | LeaseHold | Admission | None, tokens: int, usd: float,
               now: float) -> None:
        """An exchange ended: free what it held, charge what it used (`_charge`; on a
        lease: at its next flush)."""
        local = held if isinstance(held, Admission) else None
        self.local.settle(user, local, tokens, usd, now)  # the state store's record of the spend
        if held.__class__ is LeaseHold:
            held.settle(tokens, usd)  # Redis hears of it at the lease's next flush
            return
        if held is not None:
            self.leases.ended(user)
        if held is not None and held.__class__ is Reservation:
            self.open.pop(held.id, None)
            self._charge(user, held.id, held.holds, tokens - held.tokens, usd, now)
        elif usd or tokens:
            self._charge(user, "", "0", tokens, usd, now)

    def _charge(self, user: str, rid: str, holds: str, extra: int, usd: float, now: float) -> None:
        """SETTLE: free the reservation `rid` (none: "") holding `holds`, correct the
        token bucket by `extra`, add `usd` to the day and month. Never waits: the script
        goes out with this loop turn's others, its reply is not awaited here."""
        keys = self._user_keys(user, now)
        tpm = self.local.limits(user).tokens_per_minute or 0
        if not self.link.up:
            self._keep(user, keys.day, usd)
            return
        try:
            # The call's own future, not a task: a settle is on every exchange's end.
            future = self.link.script(SETTLE, keys.keys, rid, holds, extra, repr(usd), tpm, urgent=False)
        except StoreUnavailable:
            self._keep(user, keys.day, usd)
            return
        future.add_done_callback(lambda f, day=keys.day: self._settled(f, user, day, usd))

    def _settled(self, future: asyncio.Future, user: str, day: str, usd: float) -> None:
        if future.cancelled():
            self._keep(user, day, usd)
            return
        exc = future.exception()
        if exc is not None:
            self._keep(user, day, usd)
            if not isinstance(exc, StoreUnavailable):
                log.error("limits: Redis refused to settle an exchange of %r: %s", user, exc)

    def _keep(self, user: str, day: str, usd: float) -> None:
        if usd:
            self._unsent[(user, day)] = self._unsent.get((user, day), 0.0) + usd

    def _away(self, user: str, route: str, model: str | None, tokens: int, usd: float, now: float) -> Admission:
        if self.settings.on_failure == "closed":
            self.refused_away += 1
            raise Unavailable(
                "aiogw: the gateway cannot reach its limits store, and it refuses requests of users with "
                "limits until it returns; retry in a moment.",
                retry_after=1, kind="limits_store_away",
            )
        held = self.local.admit(user, route, model, tokens, usd, now)
        self.unshared += 1
        return held

    def _user_keys(self, user: str, now: float) -> _UserKeys:
        keys = self._keys.get(user)
        if keys is None or now >= keys.until:
            if len(self._keys) > 100_000:  # users come and go: a day's worth at most
                self._keys.clear()
            keys = self._keys[user] = _UserKeys(user, day_of(now), (now // 86400 + 1) * 86400)
        return keys

    async def _seed(self, user: str, keys: _UserKeys) -> None:
        """Redis has not seen the user's month: put the state store's day and month in."""
        totals = await self._month_spend(keys.month)
        month = sum(usd for (u, _), usd in totals.items() if u == user)
        day = totals.get((user, keys.day), 0.0)
        await self.link.run(SEED, keys.keys[2:4], [repr(day), repr(month)])

    async def _month_spend(self, month: str) -> dict[tuple[str, str], float]:
        loop = asyncio.get_running_loop()
        found = self._seeds.get(month)
        if found is not None and loop.time() - found[0] < _SEED_FRESH:
            return await asyncio.shield(found[1])
        future: asyncio.Future[dict[tuple[str, str], float]] = loop.create_future()
        self._seeds[month] = (loop.time(), future)
        try:
            rows, _ = await self.spend.load_limits(month)
        except Exception as exc:
            self._seeds.pop(month, None)
            failed = StoreUnavailable(f"the state store could not give the month's spend: {exc}")
            future.set_exception(failed)
            future.exception()  # retrieved here: the waiters above get it too
            raise failed from None
        totals: dict[tuple[str, str], float] = {}
        for row in rows:
            totals[(row.user, row.day)] = totals.get((row.user, row.day), 0.0) + row.usd
        future.set_result(totals)
        return totals

    async def _renew(self) -> None:
        """Renew this process's reservations, every third of their life."""
        while True:
            ttl = self.settings.reservation_seconds  # a reload may change it
            await asyncio.sleep(ttl / 3)
            if not self.link.up or not self.open:
                continue
            by_user: dict[str, list[str]] = {}
            for held in self.open.values():
                by_user.setdefault(held.user, []).append(held.member)
            now = time.time()
            try:
                await asyncio.gather(*(
                    self.link.run(RENEW, self._user_keys(user, now).keys[:2], [ttl, *members])
                    for user, members in by_user.items()
                ))
            except Exception as exc:
                log.warning("limits: could not renew this process's reservations in Redis: %s", exc)

    def _changed(self, up: bool, why: str) -> None:
        where = self.link.address.shown
        if not up:
            self.leases.drop()
        if up:
            if self.link.failures:
                log.warning("limits: Redis at %s is up (%s); limits are shared again", where, why)
            else:
                log.info("limits: shared in Redis at %s", where)
            if self._unsent:
                asyncio.get_running_loop().create_task(self._push_unsent(), name="aiogw-limits-unsent")
        else:
            then = ("this process admits on its own counters" if self.settings.on_failure == "open"
                    else "requests of users with limits are refused (503)")
            log.error("limits: Redis at %s is away (%s); until it returns %s ([limits] on_store_failure = %r)",
                      where, why, then, self.settings.on_failure)

    async def _push_unsent(self) -> None:
        """The spend charged while Redis was away, added now."""
        unsent, self._unsent = list(self._unsent.items()), {}
        for i, ((user, day), usd) in enumerate(unsent):
            try:
                await self.link.run(SETTLE, _UserKeys(user, day).keys, ["", "0", 0, repr(usd), 0])
            except Exception:  # away again: this one and the rest wait for the next return
                for (left_user, left_day), left in unsent[i:]:
                    self._keep(left_user, left_day, left)
                return


def _retrieved(future: asyncio.Future) -> None:
    """A reply nobody awaits: its error is taken, so asyncio does not log it as lost."""
    if not future.cancelled():
        future.exception()
