"""What the audit alone costs: aiogw-core against aiogw-core with `[audit]` on.

    python -m bench.audit_alone [--rounds 8] [--duration 2]

`make bench`'s row for the audit compares aiogw-audit (audit, metrics and the exchange
log on) with aiogw-core (all three off), since its guards row needs metrics and log on
on both sides. This one switches the audit alone: metrics, log and guards stay off on
both. The audit cannot be switched by a reload (the writer is started with the
gateway), so these are two processes, interleaved off-on and on-off round by round
(`bench.onoff`). Per-thread CPU is read from /proc: the loop thread, and the rest
(SQLite's thread).

Writes the `bench.audit_alone` section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from bench import onoff, procs, results
from bench.targets import ROOT, start_fake, start_gateway

TARGET = 0.85  # #3: audit on ≥ 85% of audit-off throughput


def measure(rounds: int, duration: float) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="aiogw-bench-audit-") as tmp_name:
        tmp = Path(tmp_name)
        servers = procs.Procs(tmp, ROOT)
        try:
            _, fake_port = start_fake(servers)
            off = start_gateway(servers, tmp, "audit-off", fake_port, audit=False, guards=False, observe=False)
            on = start_gateway(servers, tmp, "audit-on", fake_port, audit=True, guards=False, observe=False)
            return onoff.compare(tmp, off, on, "audit", rounds, duration, by_thread=True)
        finally:
            servers.stop_all()


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
        f"- Target (#3): audit on ≥ {TARGET:.0%} of audit-off throughput. Metrics, exchange log and guards off on both; "
        "1 KB and 200 KB bodies under wrk.",
        "",
        *table,
    ])
    print(text)
    results.write_section("bench.audit_alone", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
