"""The one loop every bench runs: sides × workloads → rounds → medians → a section.

A suite is data. Its *sides* are what is compared (a target, or several processes of
one config taken in turn, or one process switched by a reload before each of its
runs); its *workloads* are loads, each a function of a target and a duration. `plan`
lays out the runs: round by round, workload by workload, every side in turn, so a drift
of the machine hits all alike; with `alternate` the sides' order flips every other
round (off-on, on-off) and each side's processes are paired so that every pairing
comes up (`pairing`). `run` warms up, measures each step under procs.Steady and keeps
every round; `summarise` takes the medians, `ratios` the per-round ratios, `table`
and `section` make the markdown that `write` puts between the command's markers in
bench/RESULTS.md. `Lab` owns the temporary directory and every server started in it.

The pure parts (plan, pairing, summarise, ratios, table, section) are tested with
plain data in tests/test_bench_harness.py.
"""

from __future__ import annotations

import contextlib
import datetime
import signal
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import procs, results
from bench.targets import ROOT

# Warm-up until settled (`Suite.settle`): runs of WARM_STEP_S until two in a row are
# within WARM_SETTLED of each other, at most WARM_MAX_RUNS. Portkey's Node.js needs ~10 s
# of load before its JIT has compiled the request path (399 → 664 → 725 → 745 req/s in
# successive 4 s runs), the Python targets a run or two.
WARM_STEP_S = 2.0
WARM_SETTLED = 0.05
WARM_MAX_RUNS = 10

Measure = Callable[[Any, float], dict[str, float]]  # (a target, seconds) → figures


@dataclass(frozen=True, slots=True)
class Workload:
    name: str
    measure: Measure
    duration: float
    warmup: float = 0.0  # one unrecorded run this long per process before round 1
    only: frozenset[str] | None = None  # the sides it runs on (None: every side)


@dataclass(frozen=True, slots=True)
class Side:
    name: str
    processes: tuple[Any, ...]  # bench.targets.Target, one or more of one config
    switch: Callable[[], None] | None = None  # before each of its runs (one process, two sides)


@dataclass(frozen=True, slots=True)
class Suite:
    sides: tuple[Side, ...]
    workloads: tuple[Workload, ...]
    rounds: int
    alternate: bool = False  # two sides: off-on, then on-off, and processes paired
    settle: str | None = None  # warm every side on this workload until it settles


@dataclass(frozen=True, slots=True)
class Step:
    round: int  # from 1
    workload: str
    side: str
    process: int  # index into the side's processes


def pairing(i: int, n_off: int, n_on: int) -> tuple[int, int]:
    """Round i's (off, on) process indexes: every pairing once in n_off × n_on rounds."""
    return i % n_off, (i // n_off + i) % n_on if n_off == n_on else (i // n_off) % n_on


def plan(rounds: int, workloads: Sequence[Workload], sides: Sequence[Side], alternate: bool = False) -> list[Step]:
    """Every measured run of a suite, in order."""
    if alternate and len(sides) != 2:
        raise ValueError("alternate compares two sides")
    steps = []
    for i in range(rounds):
        if alternate:
            a, b = pairing(i, len(sides[0].processes), len(sides[1].processes))
            order = [(sides[0], a), (sides[1], b)]
            order = order if i % 2 == 0 else order[::-1]
        else:
            order = [(s, i % len(s.processes)) for s in sides]
        for w in workloads:
            steps += [Step(i + 1, w.name, s.name, p) for s, p in order if w.only is None or s.name in w.only]
    return steps


Results = dict[tuple[str, str], list[dict[str, float]]]  # (workload, side) → a figure dict per round


def run(suite: Suite, say: Callable[[str], None] = print) -> tuple[Results, procs.Steady]:
    """Warm up, then every step of `plan`; each run's figures kept in round order."""
    sides = {s.name: s for s in suite.sides}
    workloads = {w.name: w for w in suite.workloads}
    if suite.settle is not None:
        w = workloads[suite.settle]
        for s in suite.sides:
            for t in s.processes:
                runs, rps = settle(lambda t=t, s=s: _run(s, w.measure, t, WARM_STEP_S)["rps"])
                say(f"warm-up {s.name:>11}: {runs} runs of {WARM_STEP_S:g} s, last {rps:,.0f}/s")
    for w in suite.workloads:
        if w.warmup > 0:
            for s in suite.sides:
                if w.only is None or s.name in w.only:
                    for t in s.processes:
                        _run(s, w.measure, t, w.warmup)
    got: Results = {}
    steady = procs.Steady()
    for step in plan(suite.rounds, suite.workloads, suite.sides, suite.alternate):
        side, w = sides[step.side], workloads[step.workload]
        t = side.processes[step.process]
        m = steady(_run, side, w.measure, t, w.duration)
        got.setdefault((w.name, side.name), []).append(m)
        say(f"round {step.round} {w.name:>18} {side.name:>11}" + (f"[{step.process}]" if len(side.processes) > 1
                                                                    else "") + f": {line(m)}")
    return got, steady


def _run(side: Side, measure: Measure, target: Any, duration: float) -> dict[str, float]:
    if side.switch is not None:
        side.switch()
    return measure(target, duration)


def settle(measure: Callable[[], float], tolerance: float = WARM_SETTLED, most: int = WARM_MAX_RUNS) -> tuple[int, float]:
    """Run `measure` until two results in a row are within `tolerance` of each other,
    at most `most` times; (runs, last result)."""
    last = measure()
    for runs in range(2, most + 1):
        now = measure()
        if abs(now - last) <= tolerance * max(now, last):
            return runs, now
        last = now
    return most, last


def line(m: dict[str, float]) -> str:
    """One run's figures, for the console."""
    parts = [f"{m['rps']:9.1f}/s"] if "rps" in m else []  # none for an idle window
    parts.append(f"errors {m.get('errors', 0):.0f}")
    for key, label in (("p50", "p50"), ("ttfb_p50", "TTFB p50"), ("gap_p99", "gap p99"), ("lag_p99", "lag p99")):
        if key in m:
            parts.append(f"{label} {m[key]:.2f} ms")
    if m.get("cpu_us", float("nan")) == m.get("cpu_us"):
        parts.append(f"CPU {m['cpu_us']:,.0f} µs")
    if "bg0" in m:
        parts.append(f"other load {max(0, m['bg0']):.0f}/{max(0, m['bg1']):.0f} %")
    return "  ".join(parts)


# Totals over the rounds, not medians: one bad round must show.
_SUMMED = ("errors", "failed", "lag_n")


def summarise(rounds: Sequence[dict[str, float]]) -> dict[str, float]:
    """The median of each figure over the rounds; errors summed, the worst lag kept."""
    keys = dict.fromkeys(k for r in rounds for k in r)
    out = {}
    for k in keys:
        values = [r[k] for r in rounds if k in r]
        if k in _SUMMED or k.startswith("status_"):
            out[k] = sum(values)
        elif k == "lag_max":
            out[k] = max(values)
        else:
            out[k] = statistics.median(values)
    return out


def median(rounds: Sequence[dict[str, float]] | None, key: str) -> float:
    """The median of one figure over the rounds that have it; NaN for none."""
    return median_of([r[key] for r in rounds or () if key in r])


def median_of(values: Sequence[float]) -> float:
    """The median of plain numbers; NaN for none."""
    return statistics.median(values) if values else float("nan")


def ratios(a: Sequence[dict[str, float]], b: Sequence[dict[str, float]], key: str) -> list[float]:
    """a ÷ b round by round (the rounds paired as they ran)."""
    return [x[key] / y[key] if y.get(key) else float("nan") for x, y in zip(a, b, strict=True)]


def fmt(value: float | None, digits: int = 2, missing: str = "n/a") -> str:
    return missing if value is None or value != value else f"{value:,.{digits}f}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A markdown table: the first column left, the others right."""
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if i else "---" for i in range(len(header))) + "|"]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"{len(row)} cells under {len(header)} columns: {row}")
        out.append("| " + " | ".join(row) + " |")
    return out


def section(title: str, facts: Sequence[str], body: Sequence[str]) -> str:
    """A RESULTS.md section: its title, a bullet per fact, then the body."""
    return "\n".join([f"## {title}", "", *(f"- {f}" for f in facts), "", *body]).rstrip("\n")


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def command(prog: str, argv: Sequence[str] | None) -> str:
    """The command line as run, for the record."""
    return " ".join(["python -m " + prog, *(sys.argv[1:] if argv is None else argv)])


def write(name: str, text: str, really: bool = True) -> None:
    """Print the section; put it between its markers in RESULTS.md when `really`."""
    print(text)
    if really:
        results.write_section(name, text)
        print(f"\nwritten to {results.RESULTS.relative_to(ROOT)} (section {name})")
    else:
        print("\nbench/RESULTS.md left as it was")


class Lab:
    """A temporary directory and every server started in it, stopped on the way out,
    also on SIGTERM (raised as KeyboardInterrupt so the `finally` runs)."""

    def __init__(self, prefix: str, cwd: Path = ROOT) -> None:
        self.prefix, self.cwd = prefix, cwd

    def __enter__(self) -> Lab:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
        signal.signal(signal.SIGTERM, _interrupt)
        self._dir = tempfile.TemporaryDirectory(prefix=self.prefix)
        self.tmp = Path(self._dir.name)
        self.servers = procs.Procs(self.tmp, self.cwd)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.servers.stop_all()
        finally:
            self._dir.cleanup()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def interrupted(what: str = "bench") -> Iterator[None]:
    """Ctrl-C or SIGTERM ends the command with 130, its servers stopped."""
    try:
        yield
    except KeyboardInterrupt:
        print(f"{what} interrupted; servers stopped", file=sys.stderr)
        raise SystemExit(130) from None
