"""What the audit costs: the same gateway with `[audit]` off and on, nothing else changed.

    python -m bench.audit_alone [--rounds 8] [--duration 2] [--pairs 2] [--configs default,bare] [--no-write]

Two configurations, each measured audit off against audit on:

- `default`: the gateway as shipped (guards, metrics and the exchange log on). This is
  what turning the audit on costs an operator, and the figure #3's target is read on.
- `bare`: guards, metrics and the log off on both sides. Here the audit is the only
  thing that reads each answer and charges it, so it pays for that reading, which the
  default gateway does anyway for its metrics: the strictest share one can give it.

The audit cannot be switched by a reload (the writer is started with the gateway), so
each side is `--pairs` processes, taken in turn round by round (`bench.onoff`): two
processes of one config differ by a few percent here, and with one a side that passed
for the audit's cost. Per-thread CPU is read from /proc: the loop thread, and the rest
(SQLite's thread). Workloads: 1 KB and 200 KB bodies under wrk, and streams relayed as
fast as the gateway can (no pause between events, so its CPU sets the rate).

Writes the `bench.audit_alone` section of bench/RESULTS.md (not with --no-write: for a
smoke run, which would replace the published tables).
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
CONFIGS = {
    "default": ("the gateway as shipped: guards, metrics and the exchange log on", True),
    "bare": ("guards, metrics and the exchange log off on both sides", False),
}


def measure(config: str, rounds: int, duration: float, pairs: int) -> list[str]:
    _, others_on = CONFIGS[config]
    with tempfile.TemporaryDirectory(prefix="aiogw-bench-audit-") as tmp_name:
        tmp = Path(tmp_name)
        servers = procs.Procs(tmp, ROOT)
        try:
            _, fake_port = start_fake(servers)
            sides = {
                audit: [start_gateway(servers, tmp, f"audit-{'on' if audit else 'off'}-{i}", fake_port, audit=audit,
                                      guards=others_on, observe=others_on) for i in range(pairs)]
                for audit in (False, True)
            }
            return onoff.compare(tmp, sides[False], sides[True], "audit", rounds, duration, by_thread=True,
                                 streams=onoff.Streams())
        finally:
            servers.stop_all()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.audit_alone", description=__doc__.split("\n\n")[0])
    args, configs = onoff.parse_args(p, argv, CONFIGS, rounds=8, default_configs="default,bare")
    command = "python -m bench.audit_alone" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    text = [
        f"## The audit alone (`{command}`)",
        "",
        f"- **date:** {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; the proxy pinned to CPU 0, wrk, the "
        f"stream client and the fake upstream to CPU 1; audit off and on interleaved, off-on then on-off, "
        f"{_count(args.pairs, 'process', 'processes')} a side taken in turn; {_count(args.rounds, 'round')} "
        f"of {args.duration:g} s.",
        f"- Target (#3): audit on ≥ {TARGET:.0%} of audit-off throughput.",
    ]
    for config in configs:
        table = measure(config, args.rounds, args.duration, args.pairs)
        text += ["", f"**{config}** ({CONFIGS[config][0]}):", "", *table]
    print("\n".join(text))
    if not args.no_write:
        results.write_section("bench.audit_alone", "\n".join(text))
    return 0


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


if __name__ == "__main__":
    raise SystemExit(main())
