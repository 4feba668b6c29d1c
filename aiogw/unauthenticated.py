"""How many requests without a valid gateway key get an audit record and a log line.

Such a request costs its sender nothing, and each record costs the audit disk a row
(5,000 refusals with an 8 KB User-Agent once added 42 MB). A token bucket per client
address, and one for all addresses together (an attacker with many addresses, or a
whole IPv6 prefix, still fills only so much), decide; past them a refusal is counted
in the metrics and not recorded. Plain arithmetic on numbers the caller passes in.
"""

from __future__ import annotations

from collections import OrderedDict

from aiogw.exchange import Exchange

# Addresses remembered; the least recently seen is forgotten first (it starts again
# with a full bucket, which costs at most one burst).
_ADDRESSES = 10_000
# All addresses together may record this many times one address's rate.
_ALL = 10


class _Bucket:
    __slots__ = ("level", "when")

    def __init__(self, level: float, when: float) -> None:
        self.level, self.when = level, when


class RecordBudget:
    """`take(address, now)` is True while the address (and everyone) is within budget."""

    def __init__(self, per_minute: int) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(per_minute)
        self._buckets: OrderedDict[str | None, _Bucket] = OrderedDict()
        self._all = _Bucket(self.burst * _ALL, 0.0)

    def take(self, address: str | None, now: float) -> bool:
        bucket = self._buckets.get(address)
        if bucket is None:
            bucket = self._buckets[address] = _Bucket(self.burst, now)
            if len(self._buckets) > _ADDRESSES:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(address)
        if not (self._refill(bucket, now, self.burst, self.rate) and
                self._refill(self._all, now, self.burst * _ALL, self.rate * _ALL)):
            return False
        bucket.level -= 1
        self._all.level -= 1
        return True

    @staticmethod
    def _refill(bucket: _Bucket, now: float, cap: float, rate: float) -> bool:
        bucket.level = min(cap, bucket.level + (now - bucket.when) * rate)
        bucket.when = now
        return bucket.level >= 1


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
