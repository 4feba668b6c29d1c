"""Where a target's CPU goes under one bench workload: py-spy on the serving process.

    python -m bench.profile TARGET WORKLOAD [--seconds 10] [--connections 64] [--out FILE]

TARGET is one of bench.targets.TARGETS (`direct` profiles the fake upstream);
WORKLOAD is `small`, `large`, `huge` (1 KB, 200 KB, 2 MB bodies under wrk) or
`streams`. The same pinning as `bench.run`. Prints the functions with the most samples
on their own (self) and below them (inclusive), and keeps py-spy's raw stacks in
--out (collapsed format, for flamegraph.pl or speedscope).
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import procs, wrk
from bench import streams as stream_client
from bench.bodies import messages_body
from bench.targets import LOAD_CPU, ROOT, TARGETS, start

SIZES = {"small": 1_000, "large": 200_000, "huge": 2_000_000}
_FRAME = re.compile(r" \((?:[^)]*/)?([^/)]+\.py):(\d+)\)")


def summarise(raw: Path, top: int = 25) -> str:
    """Self and inclusive shares per function (line numbers folded) from collapsed stacks."""
    self_: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        count = int(n)
        total += count
        names = [_FRAME.sub(r" (\1)", f) for f in stack.split(";")]
        self_[names[-1]] += count
        for name in set(names):
            incl[name] += count
    out = [f"{total} samples", "", "self:"]
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in self_.most_common(top)]
    out += ["", "inclusive:"]
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in incl.most_common(top * 2) if n < total * 0.99]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    p.add_argument("target", choices=TARGETS)
    p.add_argument("workload", choices=(*SIZES, "streams"))
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    p.add_argument("--out", type=Path, help="keep the raw collapsed stacks here")
    args = p.parse_args(argv)
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    with tempfile.TemporaryDirectory(prefix="aiogw-profile-") as tmp_name:
        tmp = Path(tmp_name)
        servers = procs.Procs(tmp, ROOT)
        try:
            names = ("direct",) if args.target == "direct" else ("direct", args.target)
            targets, _ = start(servers, tmp, names)
            target = targets[-1]
            raw = args.out or tmp / "stacks.txt"
            body = tmp / "body.json"
            if args.workload != "streams":
                body.write_bytes(messages_body(SIZES[args.workload], marked=target.config is not None))
                wrk.run(target.url, body, target.key, connections=args.connections, duration=2, cpu=LOAD_CPU)
            spy_proc = subprocess.Popen([spy, "record", "-p", str(target.pid), "-d", str(args.seconds), "-r",
                                         str(args.rate), "-f", "raw", "-o", str(raw), "--nonblocking"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(0.5)  # py-spy attaches
            if args.workload == "streams":
                subprocess.run(stream_client.command(target.url, target.key, LOAD_CPU, duration=args.seconds),
                               check=True, capture_output=True, cwd=ROOT)
            else:
                res = wrk.run(target.url, body, target.key, connections=args.connections, duration=args.seconds,
                              cpu=LOAD_CPU)
                print(f"{target.name} {args.workload}: {res.rps:,.0f} req/s under py-spy, errors {res.errors}")
            _, err = spy_proc.communicate(timeout=args.seconds + 30)
            if spy_proc.returncode != 0:
                raise RuntimeError(f"py-spy failed: {err.decode(errors='replace')}")
            print(summarise(raw))
        finally:
            servers.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
