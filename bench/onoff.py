"""One feature's cost: the same gateway without and with it, interleaved round by round.

Used by `bench.limits`, `bench.ops` and `bench.audit_alone`. Each round runs a workload
against *off* and *on*, in turn off-on and on-off, so the machine's drift hits both
alike; the ratio is taken per round and its median kept.

*off* and *on* may each be several processes of the same config, taken in turn: two
processes of one config differ by a few percent on this machine (their heaps, their
hash seeds), and with one process a side that difference passes for the feature's cost.
Round i pairs them so that every pairing comes up (`pairing`).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from bench import procs, wrk
from bench import streams as stream_client
from bench.bodies import messages_body
from bench.targets import LOAD_CPU, ROOT, Target

SIZES = {"small (1 KB)": 1_000, "large (200 KB)": 200_000}


@dataclass(frozen=True, slots=True)
class Streams:
    """Streams as fast as the gateway relays them: `concurrency` open at once, each
    `events` events with no pause between them, so the gateway's CPU sets the rate."""

    concurrency: int = 16
    events: int = 50

    @property
    def name(self) -> str:
        return f"streams ({self.concurrency} × {self.events} events)"


@dataclass(frozen=True, slots=True)
class _Run:
    rate: float  # answers a second
    units: int  # answers in the run
    errors: int


def _wrk(t: Target, body: Path, duration: float) -> _Run:
    res = wrk.run(t.url, body, t.key, connections=32, duration=duration, cpu=LOAD_CPU)
    return _Run(res.rps, res.requests, res.errors)


def _streams(t: Target, spec: Streams, duration: float) -> _Run:
    cmd = stream_client.command(t.url, t.key, LOAD_CPU, concurrency=spec.concurrency, chunks=spec.events, delay=0,
                          duration=duration, warmup=0.3)
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=duration + 60, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"stream client failed against {t.name}:\n{out.stderr}")
    got = orjson.loads(out.stdout)
    # The client counts from the end of its warm-up; the CPU is read around the whole
    # run, so per-stream CPU reads a little high on both sides alike.
    return _Run(got["streams_per_s"], max(1, int(got["streams"] * (duration + 0.3) / duration)), got["failed"])


def pairing(i: int, n_off: int, n_on: int) -> tuple[int, int]:
    """Round i's (off, on) process indexes: every pairing once in n_off × n_on rounds."""
    return i % n_off, (i // n_off + i) % n_on if n_off == n_on else (i // n_off) % n_on


def compare(tmp: Path, off: Target | Sequence[Target], on: Target | Sequence[Target], feature: str, rounds: int,
            duration: float, sizes: dict[str, int] = SIZES, switch: Callable[[str], None] | None = None,
            by_thread: bool = False, streams: Streams | None = None) -> list[str]:
    """A markdown table: answers/s off and on, the per-round ratios, CPU µs per answer
    (`by_thread`: the on side's also as the loop thread's + the other threads').

    `off` and `on` may be one gateway that `switch("off")` and `switch("on")` turn
    the feature off and on in (by a reload): then no difference between two processes
    (their heaps, their caches) can pass for the feature's cost. Or lists of processes
    (see the module's doc)."""
    offs = [off] if isinstance(off, Target) else list(off)
    ons = [on] if isinstance(on, Target) else list(on)
    switch = switch or (lambda label: None)
    split = " (loop thread + others)" if by_thread else ""
    lines = [f"| workload | {feature} off /s | {feature} on /s | ratio (per round) | CPU µs each off → on{split} "
             "| CPU ratio | busy off / on |",
             "|---|---:|---:|---|---|---:|---|"]
    workloads: list[tuple[str, Callable[[Target, float], _Run]]] = []
    for name, size in sizes.items():
        body = tmp / f"body-{size}.json"
        body.write_bytes(messages_body(size))
        workloads.append((name, lambda t, d, body=body: _wrk(t, body, d)))
    if streams is not None:
        workloads.append((streams.name, lambda t, d: _streams(t, streams, d)))
    for name, run in workloads:
        got: dict[str, list[tuple[float, float, float]]] = {"off": [], "on": []}  # per s; µs: loop, others
        for label, side in (("off", offs), ("on", ons)):  # warm-up: connections, caches, the guard's memo
            switch(label)
            for t in side:
                run(t, 1.0)
        for i in range(rounds):
            a, b = pairing(i, len(offs), len(ons))
            pair = (("off", offs[a]), ("on", ons[b]))
            # off-on, then on-off: a drift of the machine's speed across a round (this
            # VM's moves by ±10% over seconds) tilts the two orders alike, and cancels.
            for label, t in (pair if i % 2 == 0 else pair[::-1]):
                switch(label)
                main0, other0 = procs.thread_cpu_seconds(t.pid)
                res = run(t, duration)
                main1, other1 = procs.thread_cpu_seconds(t.pid)
                n = max(1, res.units)
                got[label].append((res.rate, 1e6 * (main1 - main0) / n, 1e6 * (other1 - other0) / n))
                print(f"{name} {feature} {label} ({t.name}): {res.rate:.0f}/s, errors {res.errors}", flush=True)
        ratios = [b[0] / a[0] for a, b in zip(got["off"], got["on"], strict=True)]
        off_rate, on_rate = (statistics.median(r for r, *_ in got[k]) for k in ("off", "on"))
        off_cpu, on_cpu = (statistics.median(m + o for _, m, o in got[k]) for k in ("off", "on"))
        detail = ""
        if by_thread:
            loop, others = (statistics.median(v[i] for v in got["on"]) for i in (1, 2))
            detail = f" ({loop:,.0f} + {others:,.0f})"
        # Busy: the share of a core the gateway used. Under 100% the load core set the
        # rate, and the CPU ratio (what the feature costs each answer) is the figure.
        busy = [f"{statistics.median(r * (m + o) for r, m, o in got[k]) / 1e4:.0f}%" for k in ("off", "on")]
        lines.append(f"| {name} | {off_rate:,.0f} | {on_rate:,.0f} | {statistics.median(ratios):.0%} "
                     f"({', '.join(f'{r:.2f}' for r in ratios)}) | {off_cpu:,.0f} → {on_cpu:,.0f}{detail} "
                     f"| {off_cpu / on_cpu:.0%} | {busy[0]} / {busy[1]} |")
    return lines


def parse_args(p: argparse.ArgumentParser, argv: list[str] | None, configs: dict[str, object], rounds: int,
               default_configs: str) -> tuple[argparse.Namespace, list[str]]:
    """The arguments every on/off comparison takes (rounds, duration, processes a side,
    which configs, no-write) added to `p` and read, refused with exit 2 when they could
    measure nothing; the configs named, in order."""
    p.add_argument("--rounds", type=int, default=rounds)
    p.add_argument("--duration", type=float, default=2.0)
    p.add_argument("--pairs", type=int, default=2, help="processes a side, taken in turn")
    p.add_argument("--configs", default=default_configs, help=f"comma-separated, of {', '.join(configs)}")
    p.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md as it is")
    args = p.parse_args(argv)
    named = [c for c in args.configs.split(",") if c]
    unknown = [c for c in named if c not in configs]
    if not named or unknown:
        p.error(f"unknown config {unknown[0]!r}" if unknown else f"--configs names none of {', '.join(configs)}")
    if args.rounds < 1 or args.pairs < 1 or not args.duration > 0:
        p.error("--rounds and --pairs must be at least 1, --duration above 0 seconds")
    return args, named
