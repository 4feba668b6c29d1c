"""One feature's cost: the same gateway without and with it, interleaved round by round.

Used by `bench.limits` and `bench.ops`. Each round runs wrk against *off* and *on*, in
turn off-on and on-off, so the machine's drift hits both alike; the ratio is taken per
round and its median kept.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path

from bench import procs, wrk
from bench.bodies import messages_body
from bench.targets import LOAD_CPU, Target

SIZES = {"small (1 KB)": 1_000, "large (200 KB)": 200_000}


def compare(tmp: Path, off: Target, on: Target, feature: str, rounds: int, duration: float,
            sizes: dict[str, int] = SIZES, switch: Callable[[str], None] | None = None,
            by_thread: bool = False) -> list[str]:
    """A markdown table: req/s off and on, the per-round ratios, CPU µs per request
    (`by_thread`: the on side's also as the loop thread's + the other threads').

    `off` and `on` may be one gateway that `switch("off")` and `switch("on")` turn
    the feature off and on in (by a reload): then no difference between two processes
    (their heaps, their caches) can pass for the feature's cost."""
    switch = switch or (lambda label: None)
    split = " (loop thread + others)" if by_thread else ""
    lines = [f"| body | {feature} off req/s | {feature} on req/s | ratio (per round) | CPU µs/req off → on{split} |",
             "|---|---:|---:|---|---|"]
    for name, size in sizes.items():
        body = tmp / f"body-{size}.json"
        body.write_bytes(messages_body(size))
        got: dict[str, list[tuple[float, float, float]]] = {"off": [], "on": []}  # req/s; µs: loop, others
        for label, t in (("off", off), ("on", on)):  # warm-up: connections, caches, the guard's memo
            switch(label)
            wrk.run(t.url, body, t.key, connections=32, duration=1.0, cpu=LOAD_CPU)
        for i in range(rounds):
            # off-on, then on-off: a drift of the machine's speed across a round (this
            # VM's moves by ±10% over seconds) tilts the two orders alike, and cancels.
            for label, t in ((("off", off), ("on", on)) if i % 2 == 0 else (("on", on), ("off", off))):
                switch(label)
                main0, other0 = procs.thread_cpu_seconds(t.pid)
                res = wrk.run(t.url, body, t.key, connections=32, duration=duration, cpu=LOAD_CPU)
                main1, other1 = procs.thread_cpu_seconds(t.pid)
                n = max(1, res.requests)
                got[label].append((res.rps, 1e6 * (main1 - main0) / n, 1e6 * (other1 - other0) / n))
                print(f"{name} {feature} {label}: {res.rps:.0f} req/s, errors {res.errors}", flush=True)
        ratios = [b[0] / a[0] for a, b in zip(got["off"], got["on"], strict=True)]
        off_rps, on_rps = (statistics.median(r for r, *_ in got[k]) for k in ("off", "on"))
        off_cpu, on_cpu = (statistics.median(m + o for _, m, o in got[k]) for k in ("off", "on"))
        detail = ""
        if by_thread:
            loop, others = (statistics.median(v[i] for v in got["on"]) for i in (1, 2))
            detail = f" ({loop:,.0f} + {others:,.0f})"
        lines.append(f"| {name} | {off_rps:,.0f} | {on_rps:,.0f} | {statistics.median(ratios):.0%} "
                     f"({', '.join(f'{r:.2f}' for r in ratios)}) | {off_cpu:,.0f} → {on_cpu:,.0f}{detail} |")
    return lines
