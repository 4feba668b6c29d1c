"""The gateway at another commit against this one, interleaved round by round.

    python -m bench.commits --before REV [--rounds 6] [--duration 2] [--pairs 2] [--configs shipped,bare]
                            [--no-write]

A hot-path change is measured against the code before it in the same run (DESIGN §5):
REV is checked out into a temporary git worktree, and `--pairs` gateways of each side
run the same config, each side's processes taken in turn, off-on then on-off
(`bench.onoff`). The *before* side runs `python -m aiogw serve` from the worktree (its
own `aiogw`; the venv's packages are shared). Two configs: the gateway as shipped
(audit, guards, metrics and the log on) and bare (all four off: the core alone).

Workloads: 1 KB and 200 KB bodies under wrk (throughput, CPU per request), streams as
fast as the gateway relays them (throughput), and paced streams as an agent sees them
(50 at once, 50 events 5 ms apart) for the time to first byte and the inter-chunk gap;
then each process's peak RSS over all of it.

Writes the `bench.commits` section of bench/RESULTS.md (not with --no-write).
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

from bench import harness, onoff, procs
from bench.targets import BARE, ROOT, SHIPPED, start_fake, start_gateway

CONFIGS = {
    "shipped": ("audit, guards, metrics and the exchange log on", SHIPPED),
    "bare": ("audit, guards, metrics and the exchange log off: the core alone", BARE),
}


def measure(before: Path, config: str, rounds: int, duration: float, pairs: int) -> list[str]:
    gw = CONFIGS[config][1]
    with harness.Lab("aiogw-bench-commits-") as lab:
        old = procs.Procs(lab.tmp, before)  # `python -m aiogw serve` from the worktree
        try:
            fake_pid, fake_port = start_fake(lab.servers)
            sides = {label: [start_gateway(p, lab.tmp / label, f"{label}-{i}", fake_port, gw, fake_pid)
                             for i in range(pairs)]
                     for label, p in (("before", old), ("now", lab.servers))}
            work = onoff.workloads(lab.tmp, duration, paced=True)
            table, got = onoff.compare(sides["before"], sides["now"], "commit", work, rounds)
            rss = {f"{side} ({label})": [procs.peak_rss_mb(t.pid) for t in sides[label]]
                   for side, label in (("off", "before"), ("on", "now"))}
        finally:
            old.stop_all()
    streams = [w.name for w in work if w.name in (onoff.FAST, onoff.PACED)]
    return [*table, "", *onoff.latency_table(got, streams, rss)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.commits", description=__doc__.split("\n\n")[0])
    p.add_argument("--before", required=True, help="the commit to compare against (a hash, a tag, HEAD~3)")
    args, configs = onoff.parse_args(p, argv, CONFIGS, rounds=6, default_configs="shipped,bare")
    rev = subprocess.run(["git", "rev-parse", "--short", args.before], cwd=ROOT, capture_output=True, text=True,
                         check=False)
    if rev.returncode != 0:
        p.error(f"--before {args.before!r} is not a commit here: {rev.stderr.strip()}")
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()
    facts = [f"**date:** {harness.now()}; *off* is {rev.stdout.strip()}, *on* is {head} with the working tree; "
             f"{onoff.count(args.pairs, 'process', 'processes')} a side taken in turn, {onoff.count(args.rounds, 'round')} "
             f"of {args.duration:g} s; the proxy "
             "pinned to CPU 0, load and fake to CPU 1."]
    body: list[str] = []
    with tempfile.TemporaryDirectory(prefix="aiogw-before-") as where, harness.interrupted():
        tree = Path(where) / "tree"
        subprocess.run(["git", "worktree", "add", "-q", "--detach", str(tree), args.before], cwd=ROOT, check=True)
        try:
            for config in configs:
                table = measure(tree, config, args.rounds, args.duration, args.pairs)
                body += [f"**{config}** ({CONFIGS[config][0]}); *off* = before, *on* = now:", "", *table, ""]
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)
    text = harness.section(f"This commit against another (`{harness.command('bench.commits', argv)}`)", facts, body)
    harness.write("bench.commits", text, not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
