"""What the audit alone costs: aiogw-core against aiogw-core with `[audit]` on.

    python -m bench.audit_alone [--rounds 8] [--duration 2]

`make bench`'s row for the audit compares aiogw-audit (audit, metrics and the exchange
log on) with aiogw-core (all three off), since its guards row needs metrics and log on
on both sides. This one switches the audit alone: metrics, log and guards stay off on
both. The audit cannot be switched by a reload (the writer is started with the
gateway), so these are two processes, interleaved off-on and on-off round by round.
Per-thread CPU is read from /proc: the loop thread, and the rest (SQLite's thread).

Writes the `bench.audit_alone` section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import procs, results, wrk
from bench.bodies import messages_body
from bench.targets import LOAD_CPU, ROOT, Target, start_fake, start_gateway

SIZES = {"small (1 KB)": 1_000, "large (200 KB)": 200_000}
TARGET = 0.85  # #3: audit on ≥ 85% of audit-off throughput


def _thread_seconds(pid: int) -> tuple[float, float]:
    """(the main thread's CPU seconds, all other threads')."""
    tick = os.sysconf("SC_CLK_TCK")
    main = other = 0.0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        seconds = (int(fields[11]) + int(fields[12])) / tick
        if int(tid) == pid:
            main += seconds
        else:
            other += seconds
    return main, other


def measure(rounds: int, duration: float) -> list[str]:
    lines = ["| body | audit off req/s | audit on req/s | ratio (per round) | CPU µs/req off → on (loop thread + others) | verdict |",
             "|---|---:|---:|---|---|---|"]
    with tempfile.TemporaryDirectory(prefix="aiogw-bench-audit-") as tmp_name:
        tmp = Path(tmp_name)
        servers = procs.Procs(tmp, ROOT)
        try:
            _, fake_port = start_fake(servers)
            off = start_gateway(servers, tmp, "audit-off", fake_port, audit=False, guards=False, observe=False)
            on = start_gateway(servers, tmp, "audit-on", fake_port, audit=True, guards=False, observe=False)
            for name, size in SIZES.items():
                body = tmp / f"body-{size}.json"
                body.write_bytes(messages_body(size))
                for t in (off, on):  # warm-up
                    wrk.run(t.url, body, t.key, connections=32, duration=1.0, cpu=LOAD_CPU)
                got: dict[str, list[tuple[float, float, float]]] = {"off": [], "on": []}
                for i in range(rounds):
                    pair: tuple[tuple[str, Target], ...] = (("off", off), ("on", on))
                    for label, t in pair if i % 2 == 0 else pair[::-1]:
                        main0, other0 = _thread_seconds(t.pid)
                        res = wrk.run(t.url, body, t.key, connections=32, duration=duration, cpu=LOAD_CPU)
                        main1, other1 = _thread_seconds(t.pid)
                        n = max(1, res.requests)
                        got[label].append((res.rps, 1e6 * (main1 - main0) / n, 1e6 * (other1 - other0) / n))
                        print(f"{name} audit {label}: {res.rps:.0f} req/s, errors {res.errors}", flush=True)
                ratios = [b[0] / a[0] for a, b in zip(got["off"], got["on"], strict=True)]
                ratio = statistics.median(ratios)
                med = {k: [statistics.median(r[i] for r in v) for i in range(3)] for k, v in got.items()}
                lines.append(
                    f"| {name} | {med['off'][0]:,.0f} | {med['on'][0]:,.0f} | {ratio:.0%} "
                    f"({', '.join(f'{r:.2f}' for r in ratios)}) | {med['off'][1] + med['off'][2]:,.0f} → "
                    f"{med['on'][1] + med['on'][2]:,.0f} ({med['on'][1]:,.0f} + {med['on'][2]:,.0f}) | "
                    f"{'PASS' if ratio >= TARGET else 'MISS'} |")
        finally:
            servers.stop_all()
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.audit_alone", description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--duration", type=float, default=2.0)
    args = p.parse_args(argv)
    command = "python -m bench.audit_alone" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    table = measure(args.rounds, args.duration)
    text = "\n".join([
        f"## The audit alone (`{command}`)",
        "",
        f"- **date:** {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; the proxy pinned to CPU 0, wrk and the "
        "fake upstream to CPU 1, 32 connections; audit off and on interleaved, off-on then on-off.",
        f"- Target (#3): audit on ≥ {TARGET:.0%} of audit-off throughput. Metrics, exchange log and guards off on both.",
        "",
        *table,
    ])
    print(text)
    results.write_section("bench.audit_alone", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
