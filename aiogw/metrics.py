"""Prometheus metrics, kept in plain dicts and written out in the text format.

The request path only adds to a dict entry keyed by a tuple of label values: no
locks (one event loop), no objects per observation, no formatting. Everything else —
cumulative buckets, escaping, values read from other parts (queue depth, memory) —
happens when /metrics is scraped. No client library: the format is a few lines of
text, and the package list is fixed.

Label values are bounded (`Bounded`): a model name is the client's own text, so after
`max_label_values` distinct values the rest count as "other"; its control characters
are written visibly, never raw (a scrape is read on terminals too).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Iterable

from aiogw.untrusted import visible

# Seconds. The whole exchange runs from milliseconds (a refusal) to minutes (a long
# stream); the gateway's own share is expected under a millisecond.
EXCHANGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)

OTHER = "other"
MAX_VALUE = 128  # characters of a label value: real model and user names are far shorter


class Bounded:
    """Keeps the first `limit` distinct values of a label, each cut to MAX_VALUE
    characters and with its control characters written visibly (`untrusted.visible`: ESC
    as `\\x1b`); later ones become "other". Values are kept as shown, so two that show
    alike are one series, never two series of the same labels."""

    __slots__ = ("limit", "seen", "series")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        # Each value met, as it came, to how it is shown (one lookup per exchange, even
        # for a value that is cut or escaped), and the shown ones: the series.
        self.seen: dict[str, str] = {}
        self.series: set[str] = set()

    def __call__(self, value: str | None) -> str:
        if value is None:
            return ""
        shown = self.seen.get(value)
        if shown is not None:  # the usual case: one dict lookup
            return shown
        shown = visible(value[:MAX_VALUE])
        if shown not in self.series:
            if len(self.series) >= self.limit:
                return OTHER
            self.series.add(shown)
        if len(self.seen) < 4 * self.limit:  # raw spellings of the series: bounded too
            self.seen[value] = shown
        return shown


class Counter:
    __slots__ = ("help", "labels", "name", "values")

    def __init__(self, name: str, help: str, labels: tuple[str, ...] = ()) -> None:
        self.name, self.help, self.labels = name, help, labels
        self.values: dict[tuple, float] = {}

    def inc(self, key: tuple, amount: float = 1) -> None:
        values = self.values
        values[key] = values.get(key, 0) + amount

    def lines(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} counter"
        for key, value in self.values.items():
            yield f"{self.name}{_labels(self.labels, key)} {_number(value)}"


class Gauge:
    """A value read when scraped (queue depth, open streams): nothing to update."""

    __slots__ = ("help", "kind", "labels", "name", "read")

    def __init__(
        self, name: str, help: str, read: Callable[[], float | dict[tuple, float]], labels: tuple[str, ...] = ()
    ) -> None:
        self.name, self.help, self.read, self.labels = name, help, read, labels
        self.kind = "gauge"  # or "counter", for a total kept elsewhere and read when scraped

    def lines(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} {self.kind}"
        value = self.read()
        if isinstance(value, dict):
            for key, v in value.items():
                yield f"{self.name}{_labels(self.labels, key)} {_number(v)}"
        else:
            yield f"{self.name} {_number(value)}"


class Histogram:
    """Counts per bucket (not cumulative: one increment an observation), the sum, per
    label key; made cumulative when written out."""

    __slots__ = ("buckets", "help", "labels", "name", "values")

    def __init__(self, name: str, help: str, buckets: tuple[float, ...], labels: tuple[str, ...] = ()) -> None:
        self.name, self.help, self.buckets, self.labels = name, help, buckets, labels
        self.values: dict[tuple, list[float]] = {}  # key -> [count per bucket..., +Inf count, sum]

    def observe(self, key: tuple, value: float) -> None:
        slot = self.values.get(key)
        if slot is None:
            slot = self.values[key] = [0] * (len(self.buckets) + 1) + [0.0]
        slot[bisect_left(self.buckets, value)] += 1
        slot[-1] += value

    def lines(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        bounds = [*map(_number, self.buckets), "+Inf"]
        for key, slot in self.values.items():
            total = 0
            for bound, count in zip(bounds, slot, strict=False):
                total += count
                yield f"{self.name}_bucket{_labels((*self.labels, 'le'), (*key, bound))} {total}"
            yield f"{self.name}_sum{_labels(self.labels, key)} {_number(slot[-1])}"
            yield f"{self.name}_count{_labels(self.labels, key)} {total}"


def exposition(families: Iterable[Counter | Gauge | Histogram]) -> bytes:
    """The Prometheus text format (version 0.0.4) of these families."""
    out: list[str] = []
    for family in families:
        out.extend(family.lines())
    out.append("")
    return "\n".join(out).encode()


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _labels(names: tuple[str, ...], values: tuple) -> str:
    if not names:
        return ""
    return "{" + ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)) + "}"


def _escape(value: object) -> str:
    """A label value in the format's escapes (backslash, quote, newline), after every
    other control character is written visibly (ESC as the four characters `\\x1b`): a
    scrape is read on terminals too. Client text reaches here through `Bounded`."""
    text = str(value)
    if "\n" in text:
        text = "\n".join(visible(line) for line in text.split("\n"))
    else:
        text = visible(text)
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if value != value:  # NaN
        return "NaN"
    if value in (math.inf, -math.inf):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))
