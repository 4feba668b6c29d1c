"""Leases: a share of a busy user's limits held by one process, so that its admissions
need no round trip to Redis.

Without a lease every admission of a user with counted limits is one script in Redis
(aiogw.limits.shared), and every end one more: exact, and under load about two thirds
of the limits' cost (`python -m bench.scale`). A user this process admits often (at
least `BUSY` times in an interval of `INTERVAL` seconds) is leased instead: one script
(redis_scripts.LEASE) takes from Redis a grant of requests, tokens, concurrency slots
and budget, sized to twice the demand of the last two intervals and never more than 1/`SHARE`
of what is left of each limit, and the process admits on it by itself. Every interval
the lease is flushed by the same script: its exchanges' spend and token corrections go
to Redis, what it did not use goes back, a new grant comes. A user who has not been
busy for two intervals gives everything back at the next flush.

What that changes, for K processes (workers or instances):

- requests per minute, tokens (of the estimates) and requests in flight are never
  admitted beyond the limit: a grant is taken out of Redis's counters before it is
  used. While other processes hold unused grants a process may refuse a request the
  limit would still allow: at most 1/32 of what was left, for each of the K-1 others,
  until their next flush;
- a budget is overshot by no more than without leases: what the requests in flight at
  the crossing spend beyond their estimates, over every process (a lease's allowance
  is held in Redis until its spend is added, at the next flush; a lease that runs out
  flushes at once, ahead of the admission it then asks Redis for);
- the token bucket learns what a leased request really used at the next flush (within
  `INTERVAL`), not within milliseconds;
- a process that dies holds its leases until they expire (`reservation_seconds`), as
  its reservations do.

Spend and tokens go to Redis as running totals, and Redis keeps the totals it has in
the lease's entry: a flush whose reply was lost (Redis stalled, the connection cut)
and the next one, which sends the totals again, add them once.

A grant is all or nothing: every counted limit gives its part or none does, so a
lease that could not admit one request holds nothing. Small limits are never leased
(a grant of less than two requests or slots is none): `requests_per_minute = 60` is
admitted exactly, request by request, whatever the load.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Coroutine
from typing import Any, NamedTuple

from aiogw.limits.redis_link import RedisLink, StoreUnavailable
from aiogw.limits.redis_scripts import LEASE
from aiogw.limits.settings import Limits, SharedStore

log = logging.getLogger("aiogw.limits")

INTERVAL = 0.1  # seconds between two flushes of a lease
SHARE = 32  # a grant takes at most 1/SHARE of what is left of each limit
BUSY = 4  # admissions of a user in one interval before it is leased
_IDLE = 20  # intervals a user's lease outlives its last admission


class _Sent(NamedTuple):
    """A flush on its way: its reply, and the limits and link epoch it was sent under."""

    reply: Coroutine[Any, Any, Any]
    limits: Limits
    epoch: int
    totals: tuple[float, int]  # the running totals sent: what Redis has once it answers


class Lease:
    """One user's lease in this process. `r`, `t`, `s`, `u`: the requests, tokens, free
    slots and cost it may still admit (inf: a limit the user does not have; all 0: no
    grant, or a flush on its way)."""

    __slots__ = ("before", "flushed", "flying_n", "flying_u", "granted", "id", "inflight", "known", "known_x",
                 "limits", "max_t", "max_u", "member", "n", "peak", "quiet", "r", "s", "sending", "t", "tokens",
                 "total", "total_x", "u", "usd", "user")

    def __init__(self, user: str, rid: str) -> None:
        self.user, self.id, self.member = user, rid, ""  # member: the lease's entry in Redis
        self.r = self.t = self.s = self.u = 0.0
        self.granted = False
        self.limits: Limits | None = None  # what the grant was taken under: a reload's new ones take none of it
        self.flying_n, self.flying_u = 0, 0.0  # leased requests in flight and their estimated cost
        # Running totals of what its exchanges spent and used beyond their token
        # estimates, and the totals Redis is known to have.
        self.total, self.total_x, self.known, self.known_x = 0.0, 0, 0.0, 0
        self.sending = False  # a flush on its way: one at a time
        self.flushed = 0.0  # the loop's time of its last flush
        # Demand in this interval, leased or not: admissions, their tokens and cost, the
        # largest one's, the most in flight at once.
        self.n, self.tokens, self.usd, self.max_t, self.max_u = 0, 0, 0.0, 0, 0.0
        self.inflight = self.peak = 0
        self.before = (0, 0, 0.0, 0)  # the interval before: n, tokens, usd, peak
        self.quiet = 0  # intervals in a row with no admission

    @property
    def pending(self) -> bool:
        """Spend or tokens Redis does not have yet."""
        return self.total != self.known or self.total_x != self.known_x

    def take(self, tokens: int, usd: float) -> bool:
        """Admit on the grant, or say it cannot (the caller then asks Redis)."""
        if self.r >= 1 and self.s >= 1 and self.t >= tokens and self.u >= usd:
            self.r -= 1
            self.s -= 1
            self.t -= tokens
            self.u -= usd
            self.flying_n += 1
            self.flying_u += usd
            return True
        return False


class LeaseHold:
    """What a request admitted on a lease holds: its part of the grant."""

    __slots__ = ("lease", "tokens", "usd")

    def __init__(self, lease: Lease, tokens: int, usd: float) -> None:
        self.lease, self.tokens, self.usd = lease, tokens, usd

    def settle(self, tokens: int, usd: float) -> None:
        """Its end: its slot and the allowance its estimate did not use return to the
        lease (Redis holds both for it); what it spent and its tokens beyond the
        estimate go with the next flush."""
        lease = self.lease
        lease.flying_n -= 1
        lease.flying_u = lease.flying_u - self.usd if lease.flying_n else 0.0  # no float dust left held
        if lease.inflight > 0:
            lease.inflight -= 1
        lease.s += 1
        lease.u += self.usd - usd
        lease.total += usd
        lease.total_x += tokens - self.tokens


class Leases:
    """This process's leases, one a busy user, and the task that flushes them."""

    def __init__(self, link: RedisLink, prefix: str, settings: Callable[[], SharedStore],
                 limits: Callable[[str], Limits], keys: Callable[[str, float], list[str]]) -> None:
        self.link = link
        self._prefix = prefix + "L"
        self._settings = settings  # a reload replaces them
        self._limits = limits
        self._keys = keys  # the user's keys on a day (shared._UserKeys)
        self.by_user: dict[str, Lease] = {}
        self.leased = 0  # admissions made on a lease, no round trip
        self._next = 0
        self._epoch = 0  # moved on by drop(): a grant that comes back after it is not used
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._now: set[asyncio.Task[None]] = set()  # flushes of leases that ran out

    def start(self) -> None:
        self._task = asyncio.create_task(self._flushing(), name="aiogw-limits-leases")

    def admit(self, user: str, limits: Limits, tokens: int, usd: float) -> LeaseHold | None:
        """Count the demand; admit on the user's lease if it has room (and was granted
        under these limits: a reload that changed them waits for the next grant)."""
        lease = self.by_user.get(user)
        if lease is None:
            self._next += 1
            lease = self.by_user[user] = Lease(user, f"{self._prefix}{self._next}")
        lease.n += 1
        lease.tokens += tokens
        lease.usd += usd
        if tokens > lease.max_t:
            lease.max_t = tokens
        if usd > lease.max_u:
            lease.max_u = usd
        lease.inflight += 1
        if lease.inflight > lease.peak:
            lease.peak = lease.inflight
        if lease.limits is limits and lease.take(tokens, usd):
            self.leased += 1
            return LeaseHold(lease, tokens, usd)
        if lease.pending and not lease.sending and self.link.up:
            # Redis admits this one: it must first have what the lease's exchanges spent
            # (beyond its allowance, if the lease ran out), or it would admit on budget
            # they already used. The flush's script is queued now, ahead of the ADMIT.
            sent = self._send(lease, self._busy(lease))
            if sent is not None:
                task = asyncio.ensure_future(self._receive(lease, sent))
                self._now.add(task)
                task.add_done_callback(self._now.discard)
        return None

    def ended(self, user: str) -> None:
        """A request of the user admitted through Redis ended (or was refused)."""
        lease = self.by_user.get(user)
        if lease is not None and lease.inflight > 0:
            lease.inflight -= 1

    @property
    def held(self) -> int:
        """Users this process holds a grant for."""
        return sum(1 for lease in self.by_user.values() if lease.granted)

    def drop(self) -> None:
        """Redis is away: no grant is used until a flush gets a new one (what Redis
        holds for these leases expires there on its own)."""
        self._epoch += 1
        for lease in self.by_user.values():
            lease.r = lease.t = lease.s = lease.u = 0.0
            lease.granted = False

    async def close(self) -> None:
        """Stop flushing, after the flushes on their way; give every grant back and
        send what is pending (what is in flight is held until it expires: its exchanges
        are being cut)."""
        self._closing = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._now)
        if self.link.up:
            with contextlib.suppress(Exception):
                await asyncio.gather(*(self._flush(lease, busy=False, last=not lease.flying_n)
                                       for lease in list(self.by_user.values()) if lease.member or lease.pending))

    def _busy(self, lease: Lease) -> bool:
        return max(lease.n, lease.before[0]) >= BUSY and self._settings().leases

    async def _flushing(self) -> None:
        while not self._closing:
            await asyncio.sleep(INTERVAL)
            if not self.link.up:
                continue
            flushes = []
            now, renew = asyncio.get_running_loop().time(), self._settings().reservation_seconds / 3
            for lease in list(self.by_user.values()):
                if lease.sending:
                    continue
                busy = self._busy(lease)
                # An entry in Redis is renewed every third of its life; slots or cost
                # nobody uses are given back.
                due = lease.member and (lease.s or lease.u or now - lease.flushed >= renew)
                if busy or due or lease.pending or lease.granted:
                    flushes.append(self._flush(lease, busy))
                elif lease.n == 0 and lease.inflight == 0:
                    lease.quiet += 1
                    if lease.quiet > _IDLE:  # quiet: its entry goes, and then the lease
                        flushes.append(self._flush(lease, False, last=True))
                if lease.n:
                    lease.quiet = 0
            if flushes:
                await asyncio.gather(*flushes)
            for lease in self.by_user.values():  # the next interval's demand
                lease.before = (lease.n, lease.tokens, lease.usd, lease.peak)
                lease.n, lease.tokens, lease.usd, lease.max_t, lease.max_u = 0, 0, 0.0, 0, 0.0
                lease.peak = lease.inflight

    async def _flush(self, lease: Lease, busy: bool, last: bool = False) -> None:
        sent = self._send(lease, busy, last)
        if sent is not None:
            await self._receive(lease, sent)

    def _send(self, lease: Lease, busy: bool, last: bool = False) -> _Sent | None:
        """Queue one LEASE script: the running totals, what is unused given back, a new
        grant asked for (none unless `busy`); `last`: no entry left after it."""
        limits = self._limits(lease.user)
        busy = busy and limits.counted and not last
        rpm, tpm, most = limits.requests_per_minute or 0, limits.tokens_per_minute or 0, limits.max_concurrent or 0
        daily, monthly = limits.daily_budget_usd, limits.monthly_budget_usd
        now = time.time()
        back_r = int(lease.r) if math.isfinite(lease.r) else 0
        back_t = int(lease.t) if math.isfinite(lease.t) else 0
        keep_s = lease.flying_n if most else 0
        keep_u = lease.flying_u if daily is not None or monthly is not None else 0.0
        want = 2 if busy else 0  # twice the demand of this interval or the one before
        this = (lease.n, lease.tokens, lease.usd, lease.peak)
        n, tokens, usd, peak = (max(a, b) for a, b in zip(this, lease.before, strict=True))
        args = [
            lease.id, repr(lease.total), lease.total_x, repr(lease.known), lease.known_x,
            back_r, back_t, keep_s, repr(keep_u),
            want * n, want * tokens, max(0, want * peak - lease.flying_n), repr(want * max(usd, 1e-9)),
            max(lease.max_t, 1), repr(max(lease.max_u, 1e-9)),  # a grant's least: one request
            rpm, tpm, most, "" if daily is None else repr(daily), "" if monthly is None else repr(monthly),
            self._settings().reservation_seconds, SHARE, "1" if last else "",
        ]
        try:
            reply = self.link.run(LEASE, self._keys(lease.user, now), args)
        except StoreUnavailable:
            return None
        lease.sending = True
        lease.flushed = asyncio.get_running_loop().time()
        lease.r = lease.t = lease.s = lease.u = 0.0  # until the grant: admissions ask Redis
        lease.granted = False
        return _Sent(reply, limits, self._epoch, (lease.total, lease.total_x))

    async def _receive(self, lease: Lease, sent: _Sent) -> None:
        limits = sent.limits
        try:
            reply = await sent.reply
        except Exception as exc:
            # Its totals go again with the next flush (Redis adds them once); its grant
            # is gone; its entry, old or new, expires in Redis if no flush comes.
            if not isinstance(exc, StoreUnavailable):
                log.error("limits: Redis refused to flush the lease of %r: %s", lease.user, exc)
            return
        finally:
            lease.sending = False
        g_r, g_t, g_s, g_u, member = reply
        lease.known, lease.known_x = sent.totals
        lease.member = member.decode()
        if not lease.member:
            quiet = lease.quiet and not (lease.n or lease.inflight or lease.flying_n or lease.pending)
            if quiet and self.by_user.get(lease.user) is lease:
                del self.by_user[lease.user]  # its last flush: gone here as in Redis
            return
        rpm, tpm, most = limits.requests_per_minute, limits.tokens_per_minute, limits.max_concurrent
        if (g_r or g_t or g_s or g_u != b"0") and sent.epoch == self._epoch:
            lease.r = g_r if rpm else math.inf
            lease.t = g_t if tpm else math.inf
            lease.s = lease.s + g_s if most else math.inf
            budget = limits.daily_budget_usd is not None or limits.monthly_budget_usd is not None
            lease.u = lease.u + float(g_u) if budget else math.inf
            lease.limits, lease.granted = limits, True
        else:
            lease.s = lease.u = 0.0  # freed meanwhile: held in Redis until the next flush gives them back
