"""What the audit costs: the same gateway with `[audit]` off and on, nothing else changed.

    python -m bench.audit_alone [--rounds 8] [--duration 2] [--pairs 2] [--configs default,bare] [--no-write]

Two configurations, each measured audit off against audit on:

- `default`: the gateway as shipped (guards, metrics and the exchange log on). This is
  what turning the audit on costs an operator, and the figure #3's target is read on.
- `bare`: guards, metrics and the log off on both sides. Here the audit is the only
  thing that reads each answer and charges it, so it pays for that reading, which the
  default gateway does anyway for its metrics: the strictest share one can give it.

The audit cannot be switched by a reload (the writer is started with the gateway), so
each side is `--pairs` processes, taken in turn round by round (`bench.onoff`). CPU is
read per thread from /proc: the loop thread, and the rest (SQLite's thread).
Workloads: 1 KB and 200 KB bodies under wrk, and streams relayed as fast as the
gateway can. Writes the `bench.audit_alone` section of bench/RESULTS.md (not with
--no-write: for a smoke run, which would replace the published tables).
"""

from __future__ import annotations

import argparse

from bench import harness, onoff
from bench.targets import Gateway, start_fake, start_gateway

TARGET = 0.85  # #3: audit on ≥ 85% of audit-off throughput
CONFIGS = {
    "default": ("the gateway as shipped: guards, metrics and the exchange log on", True),
    "bare": ("guards, metrics and the exchange log off on both sides", False),
}


def measure(config: str, rounds: int, duration: float, pairs: int) -> list[str]:
    others = CONFIGS[config][1]
    with harness.Lab("aiogw-bench-audit-") as lab:
        fake_pid, fake_port = start_fake(lab.servers)
        sides = {audit: [start_gateway(lab.servers, lab.tmp, f"audit-{'on' if audit else 'off'}-{i}", fake_port,
                                       Gateway(audit=audit, guards=others, observe=others), fake_pid)
                         for i in range(pairs)]
                 for audit in (False, True)}
        table, _ = onoff.compare(sides[False], sides[True], "audit", onoff.workloads(lab.tmp, duration), rounds,
                                 by_thread=True)
        return table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.audit_alone", description=__doc__.split("\n\n")[0])
    args, configs = onoff.parse_args(p, argv, CONFIGS, rounds=8, default_configs="default,bare")
    facts = [
        f"**date:** {harness.now()}; the proxy pinned to CPU 0, wrk, the stream client and the fake upstream to "
        f"CPU 1; audit off and on interleaved, off-on then on-off, {onoff.count(args.pairs, 'process', 'processes')} "
        f"a side taken in turn; {onoff.count(args.rounds, 'round')} of {args.duration:g} s.",
        f"Target (#3): audit on ≥ {TARGET:.0%} of audit-off throughput.",
    ]
    body: list[str] = []
    with harness.interrupted():
        for config in configs:
            table = measure(config, args.rounds, args.duration, args.pairs)
            body += [f"**{config}** ({CONFIGS[config][0]}):", "", *table, ""]
    text = harness.section(f"The audit alone (`{harness.command('bench.audit_alone', argv)}`)", facts, body)
    harness.write("bench.audit_alone", text, not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
