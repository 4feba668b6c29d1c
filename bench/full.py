"""The whole comparison of issue 7: aiogw with everything on, beside everything off, the
minimal pass-through, nginx, LiteLLM and Portkey, on coding-agent workloads.

    make bench-full                 # = python -m bench.full
    python -m bench.full --quick    # one short round, no sweep: prints only

Targets, all in front of the same fake upstream (`aiogw.fake_upstream --lean`), each
proxy pinned to CPU 0, the fake and every load generator to CPU 1:

- direct: the fake alone, the floor every proxy adds to;
- passthrough: `bench.passthrough`, the minimal aiohttp proxy;
- aiogw-off: aiogw with audit, guards, metrics and the exchange log off, no limits;
- aiogw: aiogw's defaults (audit, guards, metrics, exchange log) and limits for the
  bench user (RPM, TPM, concurrency, daily and monthly budgets, far above the load:
  every request is admitted, counted and charged);
- nginx, litellm, portkey: `bench.peers` installs (cached) and starts them.

Workloads, every target in each, the targets interleaved round by round so the
machine's drift hits them alike:

- small, large, huge: 1 KB, 200 KB, 1 MB Messages bodies under wrk (every request a
  new turn of its conversation: post.lua's marker);
- streams-50, streams-500: `bench.streams`, 50 concurrent streams of 50 events 5 ms
  apart and of 500 events 1 ms apart, started spread over one stream's time (as agents'
  streams are, not all at once);
- session: `bench.session_mix`, 16 agents replaying coding sessions (30 → 100 KB);
- then the sweep (`bench.sweep`): open streams up to 5,000 on the Python proxies and
  nginx, for memory per open stream and errors.

Writes the `bench.full` section of bench/RESULTS.md (not with --quick).
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from bench import harness, loads, peers, procs, wrk
from bench.bodies import SEQ_MARK, messages_body
from bench.harness import Side, Suite, Workload
from bench.targets import BARE, LOAD_CPU, PROXY_CPU, ROOT, USER_LIMITS, Gateway, Target, start

GATEWAYS = {"aiogw-off": BARE, "aiogw": Gateway(user=USER_LIMITS)}
TARGETS = ("direct", "passthrough", *GATEWAYS, *peers.PEERS)
# name → (body bytes, wrk connections)
HTTP = {"small": (1_000, 32), "large": (200_000, 32), "huge": (1_000_000, 16)}
# name → (events, seconds between them)
STREAMS = {"streams-50": (50, 0.005), "streams-500": (500, 0.001)}
WORKLOADS = (*HTTP, *STREAMS, "session")
STREAM_CONCURRENCY = 50
SWEEP_TARGETS = ("passthrough", "aiogw-off", "aiogw", "nginx")
SWEEP_LEVELS = (500, 1000, 2500, 5000)


def workloads(tmp: Path, names: tuple[str, ...], duration: float) -> tuple[Workload, ...]:
    """The suite's workloads; every HTTP body is a new turn of its conversation (post.lua's marker)."""
    scripts: dict[str, Path] = {}

    def script(t: Target) -> Path:
        if t.name not in scripts:
            scripts[t.name] = peers.wrk_script(t.name, dict(t.headers), tmp)
        return scripts[t.name]

    seeds = itertools.count(1)
    out = []
    for name in names:
        if name in HTTP:
            size, connections = HTTP[name]
            body = tmp / f"body-{name}.json"
            body.write_bytes(messages_body(size, marked=True))
            out.append(Workload(name, lambda t, d, b=body, c=connections: loads.http(t, b, d, c, script(t)), duration))
        elif name in STREAMS:
            events, delay = STREAMS[name]
            out.append(Workload(name, lambda t, d, e=events, p=delay: loads.streams(
                t, d, concurrency=STREAM_CONCURRENCY, events=e, delay=p, warmup=0.5, headers=peers.stream_headers(t)),
                duration))
        else:
            out.append(Workload(name, lambda t, d: loads.session(t, d, next(seeds), t.headers), duration * 1.5))
    return tuple(out)


def run(args: argparse.Namespace) -> tuple[dict[str, dict[str, list[dict]]], dict, list[dict], procs.Steady]:
    """{workload: {target: [per-round measures]}}, {target: peak RSS MiB}, sweep rows."""
    with harness.Lab("aiogw-full-") as lab:
        targets, fake_pid = start(lab.servers, lab.tmp, args.targets, GATEWAYS)
        print(f"servers up; logs in {lab.tmp}", flush=True)
        work = workloads(lab.tmp, tuple(dict.fromkeys(("small", *args.workloads))), args.duration)
        small = (lab.tmp / "body-small.json").read_bytes().replace(SEQ_MARK.encode(), b"0000000001")
        for t in targets:
            loads.spot_check(t, small)
        # Portkey's JIT needs ~10 s of load; the Python targets a run or two.
        settle = Suite(tuple(Side(t.name, (t,)) for t in targets), work, 0, settle="small")
        harness.run(settle)
        suite = Suite(settle.sides, tuple(w for w in work if w.name in args.workloads), args.rounds)
        got, steady = harness.run(suite)
        rss = {t.name: procs.peak_rss_mb(t.pid) for t in targets}
        sweep_rows = []
        if args.sweep:
            from bench import sweep

            for t in targets:
                if t.name in SWEEP_TARGETS:
                    for row in sweep.sweep(t, SWEEP_LEVELS, hold=args.hold, headers=peers.stream_headers(t),
                                           upstream_pid=fake_pid):
                        sweep_rows.append({"target": t.name, **row})
                        print(f"sweep {t.name}: {row}", flush=True)
    by_workload = {w: {t.name: got.get((w, t.name), []) for t in targets} for w in args.workloads}
    return by_workload, rss, sweep_rows, steady


# --------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------


def _med(rounds: list[dict] | None, key: str) -> float:
    return harness.median(rounds, key)


def _f(value: float, digits: int = 2) -> str:
    return "–" if value != value else f"{value:,.{digits}f}"


def tables(got: dict[str, dict[str, list[dict]]], rss: dict[str, float]) -> list[str]:
    out = []
    for workload, by_target in got.items():
        direct = by_target.get("direct")
        aiogw = by_target.get("aiogw")
        stream = workload in STREAMS
        if stream:
            head = "| target | streams/s | TTFB p50 ms | added TTFB p50 ms | gap p99 ms | added gap p99 ms "
        else:
            head = "| target | req/s | p50 ms | p99 ms | p99.9 ms | added p50 ms "
        head += "| CPU s / 1,000 | errors | aiogw ÷ target |"
        out += [f"#### {workload}", "", head, "|---|" + "---:|" * (head.count("|") - 2)]
        for name, rounds in by_target.items():
            rps = _med(rounds, "rps")
            ratio = _med(aiogw, "rps") / rps if aiogw and rps else float("nan")
            errors = sum(r["errors"] for r in rounds)
            if stream:
                added_ttfb = _med(rounds, "ttfb_p50") - _med(direct, "ttfb_p50") if direct else float("nan")
                added_gap = _med(rounds, "gap_p99") - _med(direct, "gap_p99") if direct else float("nan")
                cells = [_f(rps, 1), _f(_med(rounds, "ttfb_p50")), _f(added_ttfb), _f(_med(rounds, "gap_p99")),
                         _f(added_gap)]
            else:
                added = _med(rounds, "p50") - _med(direct, "p50") if direct else float("nan")
                cells = [_f(rps, 0), _f(_med(rounds, "p50")), _f(_med(rounds, "p99")), _f(_med(rounds, "p999")),
                         _f(added)]
            out.append(f"| {name} | " + " | ".join(cells) + f" | {_f(_med(rounds, 'cpu_us') / 1000, 3)} | {errors:.0f} "
                       f"| {_f(ratio)} |")
        out.append("")
    out += ["#### Peak RSS over the runs above", "", "| target | peak RSS MiB |", "|---|---:|"]
    out += [f"| {name} | {mb:,.0f} |" for name, mb in rss.items()]
    return [*out, ""]


def sweep_table(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    from bench import sweep

    return ["#### Open streams (`bench.sweep`)", "", sweep.table(rows), ""]


def verdicts(got: dict[str, dict[str, list[dict]]], rss: dict[str, float], sweep_rows: list[dict]) -> list[str]:
    """Each target of issue 7 that this run measured, with its verdict."""
    out = []

    def rps(workload: str, target: str) -> float:
        rounds = got.get(workload, {}).get(target)
        return _med(rounds, "rps") if rounds else float("nan")

    def check(ok: bool, text: str) -> None:
        if text:
            out.append(f"- **{'PASS' if ok else 'MISS'}** {text}")

    for workload, floor in (("small", 0.75), ("large", 0.60)):
        r = rps(workload, "aiogw") / rps(workload, "passthrough")
        if r == r:
            check(r >= floor, f"aiogw, {workload}: {r:.0%} of the pass-through's throughput (target ≥ {floor:.0%})")
    for peer, times in (("litellm", 30), ("portkey", 5)):
        r = rps("small", "aiogw") / rps("small", peer)
        if r == r:
            check(r >= times, f"aiogw, small: {r:.1f}× {peer}'s throughput (target ≥ {times}×)")
    for peer in ("litellm", "portkey"):
        fractions = []
        for workload, by_target in got.items():
            if workload in STREAMS or peer not in by_target or "direct" not in by_target:
                continue
            base = _med(by_target["direct"], "p50")
            ours, theirs = _med(by_target["aiogw"], "p50") - base, _med(by_target[peer], "p50") - base
            fractions.append((workload, ours / theirs if theirs > 0 else float("nan")))
        if fractions:
            check(all(f < 1 for _, f in fractions), f"aiogw's added p50 latency as a fraction of {peer}'s: "
                  + ", ".join(f"{w} {_f(f)}" for w, f in fractions) + " (target: a fraction, < 1)")
    for workload in STREAMS:
        by_target = got.get(workload)
        if not by_target or "aiogw" not in by_target:
            continue
        if "nginx" in by_target:
            r = rps(workload, "aiogw") / rps(workload, "nginx")
            # "The same streams per second as nginx within 5%": more than nginx is no miss.
            check(r >= 0.95, f"aiogw, {workload}: {r:.2f}× nginx's streams/s (target: at least 0.95×)")
        if "passthrough" in by_target and "direct" in by_target:
            added = _med(by_target["aiogw"], "ttfb_p50") - _med(by_target["passthrough"], "ttfb_p50")
            check(added <= 1.0, f"aiogw, {workload}: TTFB p50 {added:+.2f} ms against the pass-through's "
                  "(target ≤ 1 ms)")
            gap = _med(by_target["aiogw"], "gap_p99") - _med(by_target["direct"], "gap_p99")
            check(gap <= 0.2, f"aiogw, {workload}: adds {gap:+.2f} ms to the inter-chunk gap p99 (target ≤ 0.2 ms)")
    if "aiogw" in rss:
        check(rss["aiogw"] < 150, f"aiogw peak RSS over the runs: {rss['aiogw']:.0f} MiB (target < 150 MiB)")
    for row in sweep_rows:
        if row["target"] == "aiogw" and row.get("level") == max(SWEEP_LEVELS):
            check(row["failed"] == 0 and row["open"] == row["level"] and row["rss_open_mb"] < 600,
                  f"aiogw with {row['level']:,} streams: {row['open']:,} open at once, RSS {row['rss_open_mb']:.0f} "
                  f"MiB, {row['failed']} failed (target: all open, < 600 MiB, no error)")
    if "nginx" in got.get("small", {}):
        out.append("- **INFO** aiogw ÷ nginx, throughput: " + ", ".join(
            f"{w} {rps(w, 'aiogw') / rps(w, 'nginx'):.2f}" for w in got if "nginx" in got[w]))
    return out


def markdown(args: argparse.Namespace, got: dict, rss: dict, sweep_rows: list[dict], steady: procs.Steady,
             seconds: float) -> str:
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                            cwd=ROOT).stdout.strip()
    now = harness.now()
    lines = [
        "## The whole comparison (`python -m bench.full`, `make bench-full`)", "",
        f"- **date:** {now}, aiogw at {commit}; {seconds / 60:.0f} min",
        f"- **command:** `{' '.join(['python -m bench.full', *sys.argv[1:]])}`",
        f"- **machine:** {os.cpu_count()} CPUs, Linux {platform.release()}, Python {platform.python_version()}",
        f"- **versions:** {', '.join(f'{k} {v}' for k, v in peers.versions().items())}; {wrk.version()}",
        f"- **pinning:** each proxy on CPU {PROXY_CPU}; the fake upstream (`--lean`) and the load generators on "
        f"CPU {LOAD_CPU}",
        f"- **runs:** {args.rounds} rounds, targets interleaved, {args.duration:g} s per run (the session "
        f"{args.duration * 1.5:g} s), medians; wrk 1 thread, 32 connections (16 for 1 MB); streams "
        f"{STREAM_CONCURRENCY} concurrent; other jobs: {steady.retried} runs measured again, "
        f"{steady.waited:.0f} s waiting for quiet",
        "- **aiogw:** its defaults (audit, guards, metrics, exchange log) plus limits for the bench user; "
        "**aiogw-off:** audit, guards, metrics and log off, no limits", "",
        "### Verdicts", "", *verdicts(got, rss, sweep_rows), "",
        "### Figures", "", *tables(got, rss), *sweep_table(sweep_rows),
        "*Added* is the target's figure less the direct call's. *aiogw ÷ target* divides throughputs. CPU is the "
        "serving process's own (for aiogw, its audit writer finishing the run's records included), per answer.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.full", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="one 2 s round, no sweep, printed only")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--duration", type=float, default=4.0, help="seconds per run (default 4)")
    p.add_argument("--targets", default=",".join(TARGETS), help=f"default {','.join(TARGETS)}")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help=f"default {','.join(WORKLOADS)}")
    p.add_argument("--no-sweep", dest="sweep", action="store_false", help="skip the open-streams sweep")
    p.add_argument("--hold", type=float, default=8.0, help="seconds each sweep level's streams stay open")
    p.add_argument("--no-write", dest="write", action="store_false", help="print only")
    args = p.parse_args(argv)
    args.targets = tuple(n for n in args.targets.split(",") if n)
    args.workloads = tuple(n for n in args.workloads.split(",") if n)
    if unknown := (set(args.targets) - set(TARGETS)) | (set(args.workloads) - set(WORKLOADS)):
        p.error(f"unknown targets or workloads: {', '.join(sorted(unknown))}")
    if args.quick:
        args.rounds, args.duration, args.sweep, args.write = 1, 2.0, False, False
    t0 = time.monotonic()
    with harness.interrupted():
        for name in args.targets:
            if name in peers.INSTALL:
                peers.INSTALL[name]()
        got, rss, sweep_rows, steady = run(args)
    harness.write("bench.full", markdown(args, got, rss, sweep_rows, steady, time.monotonic() - t0), args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
