"""What an exchange cost, into the ledger: usage read from the provider's own fields
(streams included), priced, charged to the user, the request's slot released.

`Accountant.settle` is the one way an exchange is charged, and charges it once (an
exchange with `usage` set is settled). The finisher settles every exchange in its
order, off the request path; `ChargeNow` is the one stage that settles on the loop: a
user with limits needs the real usage in the windows and budgets before the next
request is admitted.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiogw import answer
from aiogw.dialects import Usage
from aiogw.exchange import Exchange
from aiogw.limits.ledger import Ledger
from aiogw.limits.prices import PriceTable
from aiogw.limits.shared import SharedLedger

log = logging.getLogger("aiogw.limits")

# Endpoints whose requests produce no billed tokens.
FREE = frozenset(("count_tokens", "input_tokens", "models", "probe"))


class Accountant:
    """The ledger and the price table, both replaced in place by a reload; `shared`: the
    counters in Redis ([limits] store), which the ledger then only stands beside."""

    __slots__ = ("ledger", "prices", "shared")

    def __init__(self, ledger: Ledger, prices: PriceTable, shared: SharedLedger | None = None) -> None:
        self.ledger = ledger
        self.prices = prices
        self.shared = shared

    def settle(self, ex: Exchange) -> None:
        """Read the usage, price it, charge the user, release the request's slot. Once:
        an exchange already settled is left as it is. Never raises: accounting must not
        cost the exchange its slot or its record."""
        if ex.usage is not None:
            return
        try:
            usage = _usage(ex)
        except Exception:
            log.exception("limits: could not read the usage of a %s %s exchange", ex.dialect, ex.endpoint)
            usage = Usage()
        tokens = usage.input + usage.output + usage.cache_read + usage.cache_write
        if tokens:
            # An unknown model is charged the default price; ex.priced = False says so
            # (the audit record, aiogw_unpriced_exchanges_total, the log line).
            try:
                ex.cost, ex.priced = self.prices.cost(ex.model or _answer_model(ex), usage)
            except Exception:  # still counted in the token window, and the slot released
                log.exception("limits: could not price a %s exchange of %r", ex.dialect, ex.model)
        if ex.user is not None and (ex.held is not None or tokens):
            try:
                (self.shared or self.ledger).settle(ex.user, ex.held, tokens, ex.cost or 0.0, time.time())
            except Exception:
                log.exception("limits: could not charge user %r for a %s exchange", ex.user, ex.dialect)
        ex.held = None
        ex.usage = usage


class ChargeNow:
    """The stage that charges a user with limits on the loop, not in the finisher.

    Settled in a batch at the end of the loop turn the exchange ended in, before the
    next turn reads new requests: the same code for every exchange of a busy turn runs
    with warm caches, which halved limits' cost a 1 KB request in the gateway
    (bench.limits). Until then the exchange counts as in flight, so no budget or window
    is crossed by more than the bound in aiogw.limits.ledger. Only the usage is read
    here (a stream's usage events, a JSON body's usage object); the finisher reads the
    answer whole if it needs it (a 500-event answer read whole on the loop held the
    next streams' first bytes back).
    """

    __slots__ = ("_due", "accountant")

    def __init__(self, accountant: Accountant) -> None:
        self.accountant = accountant
        self._due: list[Exchange] = []

    def end(self, ex: Exchange) -> None:
        if ex.held is None:
            return
        self._due.append(ex)
        if len(self._due) == 1:
            asyncio.get_running_loop().call_soon(self._settle_due)

    def _settle_due(self) -> None:
        due, self._due = self._due, []
        for ex in due:
            self.accountant.settle(ex)  # a no-op for one the finisher settled first


def _usage(ex: Exchange) -> Usage:
    if ex.t_first_byte is None or ex.status >= 400 or ex.endpoint in FREE:
        return Usage()
    reading = answer.reading(ex)
    if not ex.model:
        reading.answer(ex)  # the price needs the answer's model: read it whole
    return reading.usage(ex)


def _answer_model(ex: Exchange) -> str | None:
    whole = ex.reading.whole if ex.reading is not None else None
    return getattr(whole, "model", None)
