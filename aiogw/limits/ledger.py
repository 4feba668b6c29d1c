"""Per-user counters and the admission rules: plain data, no I/O.

Each user has a request bucket, a token bucket, a count of requests in flight, and
their spend today and this month (UTC). Admission refuses when a limit is reached:

- a model or route not in the user's allowed globs, or a budget spent: 403, which no
  SDK retries, with the reset time in the message;
- requests or tokens per minute, or requests in flight: 429 with Retry-After.

Nothing reserves `max_tokens`: a request is admitted against its input estimate and
charged what it really used when it ends (`settle`). While it runs, its estimated
input cost counts against the budgets (`pending_usd`), so a budget can be overshot by
no more than what the requests in flight at the crossing spend on output (and on input
beyond their estimate).
"""

from __future__ import annotations

import math
import time
from fnmatch import fnmatchcase

from aiogw.errors import NotAllowed, RateLimited
from aiogw.limits.buckets import Bucket
from aiogw.limits.settings import Limits


def day_of(now: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(now))


def _next_day(now: float) -> str:
    return time.strftime("%Y-%m-%d 00:00 UTC", time.gmtime((now // 86400 + 1) * 86400))


def _next_month(now: float) -> str:
    t = time.gmtime(now)
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    return f"{year:04d}-{month:02d}-01 00:00 UTC"


class UserState:
    __slots__ = ("closed", "day", "day_end", "day_usd", "dirty", "in_flight", "month", "month_usd", "pending_usd", "rpm",
                 "tpm")

    def __init__(self) -> None:
        self.rpm: Bucket | None = None
        self.tpm: Bucket | None = None
        self.in_flight = 0
        self.day = ""
        self.day_end = 0.0  # when `day` ends, so the clock is read as a date once a day
        self.day_usd = 0.0
        self.month = ""
        self.month_usd = 0.0
        self.pending_usd = 0.0  # estimated input cost of the requests in flight
        self.dirty = False
        self.closed: list[tuple[str, float]] = []  # days ended since the last store flush

    def roll(self, now: float) -> None:
        """Start a new day or month when the clock passed into one."""
        if now < self.day_end:
            return
        self.day_end = (now // 86400 + 1) * 86400
        day = day_of(now)
        if day != self.day:
            if self.day:
                self.closed.append((self.day, self.day_usd))
            if day[:7] != self.month:
                self.month, self.month_usd = day[:7], 0.0
            self.day, self.day_usd = day, 0.0


class Admission:
    """What an admitted request holds until it ends."""

    __slots__ = ("state", "tokens", "usd")

    def __init__(self, state: UserState, tokens: int, usd: float) -> None:
        self.state, self.tokens, self.usd = state, tokens, usd


class Ledger:
    def __init__(self, defaults: Limits, users: dict[str, Limits]) -> None:
        self.defaults = defaults
        self.users = users
        self._limited = {name: limits.any for name, limits in users.items()}
        self._default_limited = defaults.any
        self.states: dict[str, UserState] = {}

    def limited(self, user: str) -> bool:
        """Whether any limit applies to the user (else admission is skipped)."""
        found = self._limited.get(user)
        return self._default_limited if found is None else found

    def reconfigure(self, defaults: Limits, users: dict[str, Limits]) -> None:
        """New limits (a reloaded config): counters and spend are kept."""
        self.defaults, self.users = defaults, users
        self._limited = {name: limits.any for name, limits in users.items()}
        self._default_limited = defaults.any
        now = time.time()
        for name, state in self.states.items():
            self._fit(state, self.limits(name), now)

    def limits(self, user: str | None) -> Limits:
        return self.users.get(user, self.defaults) if user is not None else self.defaults

    def state(self, user: str, now: float) -> UserState:
        state = self.states.get(user)
        if state is None:
            state = self.states[user] = UserState()
            self._fit(state, self.limits(user), now)
        state.roll(now)
        return state

    @staticmethod
    def _fit(state: UserState, limits: Limits, now: float) -> None:
        for slot, per_minute in (("rpm", limits.requests_per_minute), ("tpm", limits.tokens_per_minute)):
            bucket = getattr(state, slot)
            if per_minute is None:
                setattr(state, slot, None)
            elif bucket is None:
                setattr(state, slot, Bucket(per_minute, now))
            elif bucket.capacity != per_minute:
                bucket.resize(per_minute)

    def admit(self, user: str, route: str, model: str | None, tokens: int, usd: float, now: float) -> Admission:
        """Admit a request or raise the refusal. `tokens` and `usd`: its input estimate.

        Straight-line on purpose: it runs for every request of a limited user, and each
        call or tuple here was a measurable share of limits' cost in the gateway."""
        limits = self.users.get(user, self.defaults)
        state = self.states.get(user)
        if state is None:
            state = self.state(user, now)
        elif now >= state.day_end:
            state.roll(now)
        if limits.routes is not None or limits.models is not None:
            check_allowed(user, limits, route, model)
        committed = state.pending_usd
        budget = limits.daily_budget_usd
        if budget is not None and state.day_usd + committed >= budget:
            raise over_budget(user, "daily", budget, state.day_usd, committed, now)
        budget = limits.monthly_budget_usd
        if budget is not None and state.month_usd + committed >= budget:
            raise over_budget(user, "monthly", budget, state.month_usd, committed, now)
        if limits.max_concurrent is not None and state.in_flight >= limits.max_concurrent:
            raise too_many_in_flight(user, state.in_flight)
        rpm, tpm = state.rpm, state.tpm
        if rpm is not None:
            wait = rpm.wait(1, now)
            if wait > 0:
                raise over_requests(user, int(rpm.capacity), wait)
        if tpm is not None:
            wait = tpm.wait(tokens, now)
            if wait > 0:
                raise over_tokens(user, int(tpm.capacity), tokens, wait)
            tpm.take(tokens)
        if rpm is not None:
            rpm.level -= 1  # wait() refilled it and found the request there
        state.in_flight += 1
        state.pending_usd += usd
        state.dirty = True
        return Admission(state, tokens, usd)

    def settle(self, user: str, admission: Admission | None, tokens: int, usd: float, now: float) -> None:
        """An exchange ended: release its slot, correct the token window by what it
        really used, add its cost to the spend."""
        state = admission.state if admission is not None else self.state(user, now)
        tpm = state.tpm
        if admission is not None:
            state.in_flight -= 1
            pending = state.pending_usd - admission.usd
            state.pending_usd = pending if pending > 0.0 else 0.0
            if tpm is not None and tokens != admission.tokens:
                tpm.take(tokens - admission.tokens)
        elif tpm is not None and tokens:
            tpm.take(tokens)
        if usd:
            if now >= state.day_end:
                state.roll(now)
            state.day_usd += usd
            state.month_usd += usd
        state.dirty = True


# The refusals, one function each: the in-memory ledger and the shared one (Redis,
# aiogw.limits.shared) say the same thing for the same limit.


def check_allowed(user: str, limits: Limits, route: str, model: str | None) -> None:
    """The user's allowed routes and models (globs): a NotAllowed when not."""
    if limits.routes is not None and not any(fnmatchcase(route, g) for g in limits.routes):
        raise NotAllowed(
            f"aiogw: user {user!r} may not use route {route!r}; allowed: {', '.join(limits.routes)}. "
            "Ask the gateway operator to change this user's limits.routes.",
            kind="limit:routes",
        )
    if limits.models is not None and model is not None and not any(fnmatchcase(model, g) for g in limits.models):
        raise NotAllowed(
            f"aiogw: user {user!r} may not use model {model!r}; allowed: {', '.join(limits.models)}. "
            "Pick an allowed model, or ask the gateway operator to change this user's limits.models.",
            kind="limit:models",
        )


def over_budget(user: str, period: str, budget: float, spent: float, committed: float, now: float) -> NotAllowed:
    resets = _next_day(now) if period == "daily" else _next_month(now)
    return NotAllowed(
        f"aiogw: user {user!r} has spent {_usd(spent)}{_in_flight(committed)} of the {period} budget "
        f"of {_usd(budget)}; it resets at {resets}.",
        kind=f"budget:{period}_budget_usd",
    )


def too_many_in_flight(user: str, n: int) -> RateLimited:
    return RateLimited(
        f"aiogw: user {user!r} has {n} requests in flight, its limit; retry when one of them has finished.",
        retry_after=1,
        kind="rate_limit:max_concurrent",
    )


def over_requests(user: str, per_minute: int, wait: float) -> RateLimited:
    return RateLimited(
        f"aiogw: user {user!r} is over its limit of {_count(per_minute, 'request')} a minute; "
        f"retry in {_seconds(wait)} s.",
        retry_after=_seconds(wait),
        kind="rate_limit:requests_per_minute",
    )


def over_tokens(user: str, per_minute: int, tokens: int, wait: float) -> RateLimited:
    return RateLimited(
        f"aiogw: user {user!r} is over its limit of {_count(per_minute, 'token')} a minute "
        f"(this request is about {tokens} input tokens); retry in {_seconds(wait)} s.",
        retry_after=_seconds(wait),
        kind="rate_limit:tokens_per_minute",
    )


def _usd(amount: float) -> str:
    return f"${amount:.2f}" if amount >= 1 or amount == 0 else f"${amount:.6f}".rstrip("0").rstrip(".")


def _in_flight(committed: float) -> str:
    return f" (and {_usd(committed)} is held by requests in flight)" if committed > 0 else ""


def _seconds(wait: float) -> int:
    return max(1, math.ceil(wait))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
