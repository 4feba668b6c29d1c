"""How many requests without a valid gateway key get an audit record and a log line.

Such a request costs its sender nothing, and each record costs the audit disk a row
(5,000 refusals with an 8 KB User-Agent once added 42 MB). A token bucket per client
address, and one for all addresses together (an attacker with many addresses, or a
whole IPv6 prefix, still fills only so much), decide; past them a refusal is counted
in the metrics and not recorded. Plain arithmetic on numbers the caller passes in
(limits' token buckets).
"""

from __future__ import annotations

from collections import OrderedDict

from aiogw.exchange import Exchange
from aiogw.limits.buckets import Bucket

# Addresses remembered; the least recently seen is forgotten first (it starts again
# with a full bucket, which costs at most one burst).
_ADDRESSES = 10_000
# All addresses together may record this many times one address's rate.
_ALL = 10


class RecordBudget:
    """`take(address, now)` is True while the address (and everyone) is within budget."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._buckets: OrderedDict[str | None, Bucket] = OrderedDict()
        self._all = Bucket(per_minute * _ALL, 0.0)

    def take(self, address: str | None, now: float) -> bool:
        bucket = self._buckets.get(address)
        if bucket is None:
            bucket = self._buckets[address] = Bucket(self.per_minute, now)
            if len(self._buckets) > _ADDRESSES:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(address)
        bucket.refill(now)
        self._all.refill(now)
        if bucket.level < 1 or self._all.level < 1:
            return False
        bucket.take(1)
        self._all.take(1)
        return True


class KeylessRecords:
    """The stage that keeps keyless exchanges within their record budget: past it, an
    exchange is `quiet` (counted in the metrics, neither recorded nor logged)."""

    __slots__ = ("budget", "unrecorded")

    def __init__(self, per_minute: int) -> None:
        self.budget = RecordBudget(per_minute)
        self.unrecorded = 0

    def end(self, ex: Exchange) -> None:
        if ex.user is None and not self.budget.take(ex.client, ex.t_end or 0.0):
            self.unrecorded += 1
            ex.quiet = True
