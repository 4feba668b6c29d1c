"""Token buckets: rate windows without fixed-minute resets.

A bucket of `per_minute` holds at most that many units and refills continuously at
`per_minute / 60` a second, so no client ever gets two minutes' worth in a burst
across a minute boundary. Times are wall-clock seconds (time.time()), so a bucket's
state can be stored and picked up again after a restart.
"""

from __future__ import annotations


class Bucket:
    __slots__ = ("at", "capacity", "level", "rate")

    def __init__(self, per_minute: int, now: float, level: float | None = None, at: float | None = None) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.level = self.capacity if level is None else min(float(level), self.capacity)
        self.at = now if at is None else at

    def refill(self, now: float) -> None:
        if now > self.at:
            self.level = min(self.capacity, self.level + (now - self.at) * self.rate)
        self.at = now

    def wait(self, need: float, now: float) -> float:
        """Seconds until `need` units are there (0: now). A need above the capacity
        waits for a full bucket, never forever."""
        self.refill(now)
        need = min(need, self.capacity)
        if self.level >= need:
            return 0.0
        if self.rate <= 0:
            return float("inf")
        return (need - self.level) / self.rate

    def take(self, units: float) -> None:
        """Spend units (negative: give back). The level may go below zero: a request
        that used more than its estimate delays the next ones by the difference, by no
        more than one more minute."""
        self.level = max(-self.capacity, min(self.capacity, self.level - units))

    def resize(self, per_minute: int) -> None:
        """A new limit from a reloaded config: what was used stays used, but a lower
        limit never makes anyone wait more than a minute for it."""
        used = self.capacity - self.level
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.level = max(0.0, min(self.capacity, self.capacity - used))
