"""The gateway at another commit against this one, interleaved round by round.

    python -m bench.commits --before REV [--rounds 6] [--duration 2] [--pairs 2] [--no-write]

A hot-path change is measured against the code before it in the same run (DESIGN §5):
REV is checked out into a temporary git worktree, and `--pairs` gateways of each side
run the same config under `bench.onoff` (each side's processes taken in turn, off-on
then on-off). The *before* side runs from the worktree (its own `aiogw` and `bench`
modules; the venv's packages are shared). Two configs: the gateway as shipped (audit,
guards, metrics and the log on) and bare (all four off: the core alone).

Writes the `bench.commits` section of bench/RESULTS.md (not with --no-write).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import onoff, procs, results
from bench.targets import ROOT, start_fake, start_gateway

CONFIGS = {
    "shipped": ("audit, guards, metrics and the exchange log on", True),
    "bare": ("audit, guards, metrics and the exchange log off: the core alone", False),
}


def measure(before: Path, config: str, rounds: int, duration: float, pairs: int) -> list[str]:
    on = CONFIGS[config][1]
    with tempfile.TemporaryDirectory(prefix="aiogw-bench-commits-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "before").mkdir()
        (tmp / "now").mkdir()
        old = procs.Procs(tmp / "before", before)  # `python -m bench.gateway` from the worktree
        new = procs.Procs(tmp / "now", ROOT)
        try:
            _, fake_port = start_fake(new)
            sides = {
                label: [start_gateway(p, tmp / label, f"{label}-{i}", fake_port, audit=on, guards=on, observe=on)
                        for i in range(pairs)]
                for label, p in (("before", old), ("now", new))
            }
            return onoff.compare(tmp, sides["before"], sides["now"], "commit", rounds, duration,
                                 streams=onoff.Streams())
        finally:
            old.stop_all()
            new.stop_all()


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
    command = "python -m bench.commits" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    text = [
        f"## This commit against another (`{command}`)",
        "",
        f"- **date:** {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; *off* is {rev.stdout.strip()}, *on* "
        f"is {head} with the working tree; {args.pairs} processes a side taken in turn, {args.rounds} rounds of "
        f"{args.duration:g} s; the proxy pinned to CPU 0, load and fake to CPU 1.",
    ]
    with tempfile.TemporaryDirectory(prefix="aiogw-before-") as where:
        tree = Path(where) / "tree"
        subprocess.run(["git", "worktree", "add", "-q", "--detach", str(tree), args.before], cwd=ROOT, check=True)
        try:
            for config in configs:
                table = measure(tree, config, args.rounds, args.duration, args.pairs)
                text += ["", f"**{config}** ({CONFIGS[config][0]}); *off* = before, *on* = now:", "", *table]
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)
    print("\n".join(text))
    if not args.no_write:
        results.write_section("bench.commits", "\n".join(text))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
