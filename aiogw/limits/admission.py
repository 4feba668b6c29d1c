"""The limits' stage on the request: admit it, or refuse it before it leaves.

It estimates the request's input tokens and asks the `Ledger` to admit it: a slot of
the user's concurrency, the estimate in the token windows, its cost against the
budgets. What the exchange really used is charged at its end (`limits.accounting`).

The input estimate is the body's bytes over four. JSON punctuation, keys and escapes
make it run high: 2.1-2.6 times the fake upstream's count (`python -m bench.limits`).
High is the safe side: it only holds a minute's token window until the exchange ends
and the provider's own count corrects it.
"""

from __future__ import annotations

import time

from aiogw.errors import GatewayError, NotAllowed
from aiogw.exchange import Exchange
from aiogw.limits.accounting import FREE, Accountant
from aiogw.limits.ledger import check_allowed
from aiogw.limits.settings import Limits
from aiogw.limits.shared import SharedLedger
from aiogw.stage import CONTINUE, Refuse, Verdict


def estimate_tokens(ex: Exchange) -> int:
    """Input tokens a request will be billed, before the provider says: bytes / 4."""
    if ex.body is None or ex.endpoint in FREE:
        return 0
    return len(ex.body) // 4


class LimitAdmission:
    __slots__ = ("accountant",)

    def __init__(self, accountant: Accountant) -> None:
        self.accountant = accountant  # its ledger and prices: a reload replaces them there

    def check(self, ex: Exchange) -> Verdict:
        ledger = self.accountant.ledger
        if ex.user is None or not ledger.limited(ex.user):
            return CONTINUE
        if ex.endpoint == "other" and (refused := unmetered(ex, ledger.limits(ex.user))) is not None:
            return refused
        tokens = estimate_tokens(ex)
        prices = self.accountant.prices
        price = prices.lookup(ex.model) or prices.default
        try:
            ex.held = ledger.admit(ex.user, ex.route, ex.model, tokens, tokens * price.input / 1e6, time.time())
        except GatewayError as err:
            return Refuse(err)
        ex.estimate = tokens
        return CONTINUE


class SharedAdmission:
    """The limits' stage with the counters in Redis: what needs no counter is checked
    here (allowed routes and models), the rest by one script in `reserve`."""

    __slots__ = ("accountant", "shared")

    def __init__(self, accountant: Accountant, shared: SharedLedger) -> None:
        self.accountant = accountant
        self.shared = shared

    def check(self, ex: Exchange) -> Verdict:
        ledger = self.accountant.ledger
        if ex.user is None or not ledger.limited(ex.user):
            return CONTINUE
        limits = ledger.limits(ex.user)
        if (refused := unmetered(ex, limits)) is not None:
            return refused
        try:
            check_allowed(ex.user, limits, ex.route, ex.model)
        except GatewayError as err:
            return Refuse(err)
        ex.estimate = estimate_tokens(ex)
        return CONTINUE

    async def reserve(self, ex: Exchange) -> Verdict:
        user = ex.user
        if user is None or not self.accountant.ledger.limited(user):
            return CONTINUE
        limits = self.accountant.ledger.limits(user)
        if not limits.counted:  # allowed models and routes only: checked already
            return CONTINUE
        tokens = ex.estimate
        prices = self.accountant.prices
        price = prices.lookup(ex.model) or prices.default
        try:
            ex.held = await self.shared.admit(user, limits, ex.route, ex.model, tokens, tokens * price.input / 1e6)
        except GatewayError as err:
            return Refuse(err)
        return CONTINUE


def unmetered(ex: Exchange, limits: Limits) -> Refuse | None:
    """Fail closed: an endpoint the gateway does not read (batches, audio, files ...)
    could use any model and would never be charged."""
    if ex.endpoint != "other" or ex.method in ("GET", "HEAD"):
        return None
    if limits.models is None and limits.daily_budget_usd is None and limits.monthly_budget_usd is None:
        return None
    return Refuse(NotAllowed(
        f"aiogw: user {ex.user!r} has model or budget limits, and the gateway cannot tell the model "
        f"or meter the cost of {ex.method} {ex.path}; ask the gateway operator for a user without "
        "them for this endpoint.",
        kind="limit:unmetered_endpoint",
    ))
