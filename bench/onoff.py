"""One change's cost: the same gateway without and with it, as a harness suite.

Used by `bench.limits`, `bench.ops`, `bench.audit_alone` and `bench.commits`. Two sides,
*off* and *on*; each round runs every workload on both, in turn off-on and on-off, so
the machine's drift hits both alike; the ratio is taken per round and its median kept.

*off* and *on* may each be several processes of the same config, taken in turn: two
processes of one config differ by a few percent on this machine (their heaps, their
hash seeds), and with one process a side that difference passes for the change's cost.
Round i pairs them so that every pairing comes up (`harness.pairing`). Or one process
switched by a reload before each run (`switch`): then nothing that differs between two
processes can count at all.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

from bench import harness, loads
from bench.bodies import messages_body
from bench.harness import Side, Suite, Workload, fmt
from bench.targets import Target

SIZES = {"small (1 KB)": 1_000, "large (200 KB)": 200_000}
CONNECTIONS = 32
# Streams as fast as the gateway relays them: 16 open at once, 50 events each with no
# pause between them, so the gateway's CPU sets the rate.
FAST = "streams (16 × 50 events)"
# Streams as an agent sees them (bench.run's): 50 open at once, 50 events 5 ms apart,
# started spread over one stream's time: their TTFB and inter-chunk gap.
PACED = "paced streams (50 × 50 events, 5 ms apart)"


def workloads(tmp: Path, duration: float, streams: bool = True, paced: bool = False) -> tuple[Workload, ...]:
    out = []
    for name, size in SIZES.items():
        body = tmp / f"body-{size}.json"
        body.write_bytes(messages_body(size))
        out.append(Workload(name, lambda t, d, body=body: loads.http(t, body, d, CONNECTIONS), duration, warmup=1.0))
    if streams:
        out.append(Workload(FAST, lambda t, d: loads.streams(t, d, concurrency=16, events=50, delay=0, warmup=0.3),
                            duration, warmup=1.0))
    if paced:
        out.append(Workload(PACED, lambda t, d: loads.streams(t, d, concurrency=50, events=50, delay=0.005,
                                                              warmup=0.5), duration, warmup=1.0))
    return tuple(out)


def suite(off: Sequence[Target], on: Sequence[Target], work: tuple[Workload, ...], rounds: int,
          switch: Callable[[str], None] | None = None) -> Suite:
    """`switch(label)` before each run of a side: one process shared by both sides."""
    def side(label: str, targets: Sequence[Target]) -> Side:
        return Side(label, tuple(targets), (lambda: switch(label)) if switch else None)

    return Suite((side("off", off), side("on", on)), work, rounds, alternate=True)


def compare(off: Sequence[Target], on: Sequence[Target], feature: str, work: tuple[Workload, ...], rounds: int,
            switch: Callable[[str], None] | None = None, by_thread: bool = False) -> tuple[list[str], harness.Results]:
    """Run the comparison; its markdown table, and the figures."""
    got, _ = harness.run(suite(off, on, work, rounds, switch))
    return rate_table(got, feature, [w.name for w in work], by_thread), got


def rate_table(got: harness.Results, feature: str, names: Sequence[str], by_thread: bool = False) -> list[str]:
    """Answers/s off and on, the per-round ratios, CPU µs per answer (`by_thread`: the
    on side's also as the loop thread's + the other threads'), and how busy the
    gateway's core was: under 100% the load core set the rate, and the CPU ratio (what
    the change costs each answer) is the figure."""
    split = " (loop thread + others)" if by_thread else ""
    header = ("workload", f"{feature} off /s", f"{feature} on /s", "ratio (per round)",
              f"CPU µs each off → on{split}", "CPU ratio", "busy off / on")
    rows = []
    for name in names:
        off, on = got[(name, "off")], got[(name, "on")]
        per_round = harness.ratios(on, off, "rps")
        cpu = [[r["cpu_loop_us"] + r["cpu_other_us"] for r in side] for side in (off, on)]
        off_cpu, on_cpu = (harness.median_of(side) for side in cpu)
        detail = f" ({harness.median(on, 'cpu_loop_us'):,.0f} + {harness.median(on, 'cpu_other_us'):,.0f})" \
            if by_thread else ""
        busy = [harness.median_of([r["rps"] * c / 1e4 for r, c in zip(side, cs, strict=True)])
                for side, cs in ((off, cpu[0]), (on, cpu[1]))]
        rows.append([name, fmt(harness.median(off, "rps"), 0), fmt(harness.median(on, "rps"), 0),
                     f"{harness.median_of(per_round):.0%} "
                     f"({', '.join(f'{r:.2f}' for r in per_round)})",
                     f"{off_cpu:,.0f} → {on_cpu:,.0f}{detail}", f"{off_cpu / on_cpu:.0%}",
                     f"{busy[0]:.0f}% / {busy[1]:.0f}%"])
    return harness.table(header, rows)


def latency_table(got: harness.Results, names: Sequence[str], rss: dict[str, Sequence[float]]) -> list[str]:
    """Streams' TTFB p50 and inter-chunk gap p99 off → on (medians of the rounds, and
    the median of the per-round differences), then each side's peak RSS."""
    rows = []
    for name in names:
        off, on = got[(name, "off")], got[(name, "on")]
        cells = [name]
        for key in ("ttfb_p50", "gap_p99"):
            diff = [{"d": b[key] - a[key]} for a, b in zip(off, on, strict=True)]
            cells += [f"{fmt(harness.median(off, key))} → {fmt(harness.median(on, key))}",
                      f"{harness.median(diff, 'd'):+.2f}"]
        rows.append(cells)
    out = harness.table(("workload", "TTFB p50 ms off → on", "difference (per-round median)",
                         "gap p99 ms off → on", "difference (per-round median)"), rows)
    out += ["", *harness.table(("side", "peak RSS MiB, each process (VmHWM over every run above)"),
                               [[label, ", ".join(f"{mb:.0f}" for mb in values)] for label, values in rss.items()])]
    return out


def parse_args(p: argparse.ArgumentParser, argv: list[str] | None, configs: dict[str, object], rounds: int,
               default_configs: str) -> tuple[argparse.Namespace, list[str]]:
    """The arguments every on/off comparison takes (rounds, duration, processes a side,
    which configs, no-write) added to `p` and read, refused with exit 2 when they could
    measure nothing; the configs named, in order."""
    add_run_args(p, rounds, 2.0)
    p.add_argument("--pairs", type=int, default=2, help="processes a side, taken in turn")
    p.add_argument("--configs", default=default_configs, help=f"comma-separated, of {', '.join(configs)}")
    args = p.parse_args(argv)
    named = [c for c in args.configs.split(",") if c]
    unknown = [c for c in named if c not in configs]
    if not named or unknown:
        p.error(f"unknown config {unknown[0]!r}" if unknown else f"--configs names none of {', '.join(configs)}")
    if args.rounds < 1 or args.pairs < 1 or not args.duration > 0:
        p.error("--rounds and --pairs must be at least 1, --duration above 0 seconds")
    return args, named


def add_run_args(p: argparse.ArgumentParser, rounds: int, duration: float) -> None:
    """--rounds, --duration and --no-write: what every comparison takes."""
    p.add_argument("--rounds", type=int, default=rounds)
    p.add_argument("--duration", type=float, default=duration)
    p.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md as it is")


def count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"
