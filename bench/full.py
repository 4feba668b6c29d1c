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
import datetime
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import orjson

from bench import measure, peers, procs, results, wrk
from bench.bodies import messages_body
from bench.stats import median
from bench.targets import LOAD_CPU, PROXY_CPU, ROOT, Target, start_all, start_gateway

# Far above anything the bench sends: limits that admit every request but still count
# and charge each one (the limits bench uses the same).
USER_LIMITS = ('limits = { requests_per_minute = 100000000, tokens_per_minute = 1000000000000, '
               'max_concurrent = 100000, daily_budget_usd = 1000000000.0, monthly_budget_usd = 1000000000.0 }\n')
TARGETS = ("direct", "passthrough", "aiogw-off", "aiogw", *peers.PEERS)
# name → (body bytes, wrk connections)
HTTP = {"small": (1_000, 32), "large": (200_000, 32), "huge": (1_000_000, 16)}
# name → (events, seconds between them)
STREAMS = {"streams-50": (50, 0.005), "streams-500": (500, 0.001)}
WORKLOADS = (*HTTP, *STREAMS, "session")
STREAM_CONCURRENCY = 50
SWEEP_TARGETS = ("passthrough", "aiogw-off", "aiogw", "nginx")
SWEEP_LEVELS = (500, 1000, 2500, 5000)
# Latency figures printed with each round's line, when the workload has them.
_ROUND_LATENCY = (("ttfb_p50", "TTFB p50"), ("gap_p99", "gap p99"))


def start_targets(servers: procs.Procs, tmp: Path, names: tuple[str, ...]) -> tuple[list[Target], int, int]:
    """Start the fake and the named targets; (targets in measuring order, fake PID, fake port)."""
    base, fake_pid = start_all(servers, tmp, ("direct", "passthrough"))
    fake_port = urlsplit(base[0].url).port
    assert fake_port is not None
    made = {t.name: t for t in base}
    if "aiogw-off" in names:
        made["aiogw-off"] = start_gateway(servers, tmp, "aiogw-off", fake_port, audit=False, guards=False,
                                          observe=False)
    if "aiogw" in names:
        made["aiogw"] = start_gateway(servers, tmp, "aiogw", fake_port, audit=True, guards=True, observe=True,
                                      extra=USER_LIMITS)
    for name in names:
        if name in peers.START:
            made[name] = peers.START[name](servers, tmp, fake_port)
    return [made[n] for n in names], fake_pid, fake_port


def _python_load(module: str, args: list[str], headers: dict[str, str]) -> dict:
    cmd = ["taskset", "-c", str(LOAD_CPU), sys.executable, "-m", module, *args]
    for name, value in headers.items():
        cmd += ["--header", f"{name}:{value}"]
    out = subprocess.run(cmd, capture_output=True, cwd=ROOT, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"{module} failed: {out.stderr.decode(errors='replace')[-2000:]}")
    return orjson.loads(out.stdout)


class Bench:
    """The targets of one run and how to load each with each workload."""

    def __init__(self, tmp: Path, targets: list[Target], fake_pid: int, fake_port: int, duration: float) -> None:
        self.tmp, self.targets, self.fake_pid, self.duration = tmp, targets, fake_pid, duration
        self.headers = {t.name: peers.extra_headers(t.name, fake_port) for t in targets}
        self.stream_headers = {t.name: peers.stream_headers(t.name, fake_port) for t in targets}
        self.scripts = {t.name: peers.wrk_script(t.name, self.headers[t.name], tmp) for t in targets}
        self.bodies: dict[str, Path] = {}
        for name, (size, _) in HTTP.items():
            self.bodies[name] = tmp / f"body-{name}.json"
            self.bodies[name].write_bytes(messages_body(size, marked=True))
        self.seeds = iter(range(1, 1_000_000))

    def measure(self, workload: str, t: Target) -> dict[str, float]:
        if workload in HTTP:
            return measure.measure(t, self.fake_pid, self.bodies[workload], self.duration, HTTP[workload][1],
                                 self.scripts[t.name])
        if workload in STREAMS:
            return measure.measured(t, self.fake_pid, lambda: self._streams(workload, t))
        return measure.measured(t, self.fake_pid, lambda: self._session(t))

    def _streams(self, workload: str, t: Target) -> tuple[dict, int]:
        events, delay = STREAMS[workload]
        r = _python_load("bench.streams", ["--url", t.url, "--key", t.key, "--duration", str(self.duration),
                                           "--concurrency", str(STREAM_CONCURRENCY), "--chunks", str(events),
                                           "--delay", str(delay)], self.stream_headers[t.name])
        # A stream that came through whole has the events asked for plus six (bench.streams):
        # one that did not (a proxy dropped the x-fake-* headers) is not the same workload.
        whole = r["events_min"] == r["events_max"] == events + 6
        return {"rps": r["streams_per_s"], "ttfb_p50": r["ttfb_p50"], "ttfb_p99": r["ttfb_p99"],
                "gap_p50": r["gap_p50"], "gap_p99": r["gap_p99"],
                "errors": r["failed"] + (0 if whole else r["streams"])}, r["streams"] + r["failed"]

    def _session(self, t: Target) -> tuple[dict, int]:
        r = _python_load("bench.session_mix", ["--url", t.url, "--key", t.key, "--duration", str(self.duration * 1.5),
                                               "--seed", str(next(self.seeds))], self.headers[t.name])
        return {"rps": r["rps"], "p50": r["p50"], "p99": r["p99"], "ttfb_p50": r["ttfb_p50"],
                "errors": r["failed"], "mean_body_kb": r["mean_body_kb"]}, r["turns"] + r["failed"]


def run(args: argparse.Namespace) -> tuple[dict[str, dict[str, list[dict]]], dict, list[dict], procs.Steady]:
    """{workload: {target: [per-round measures]}}, {target: peak RSS MiB}, sweep rows."""
    with tempfile.TemporaryDirectory(prefix="aiogw-full-") as tmp_name:
        tmp = Path(tmp_name)
        servers = procs.Procs(tmp, ROOT)
        try:
            targets, fake_pid, fake_port = start_targets(servers, tmp, args.targets)
            print(f"servers up; logs in {tmp}", flush=True)
            b = Bench(tmp, targets, fake_pid, fake_port, args.duration)
            small = b.bodies["small"].read_bytes().replace(b"@@SEQ@@@@@", b"0000000001")
            for t in targets:
                measure.spot_check(t, small, b.headers[t.name])
            for t in targets:  # Portkey's JIT needs ~10 s of load; the Python targets a run or two
                runs, rps = measure.warm_up(t, fake_pid, b.bodies["small"], 32, b.scripts[t.name])
                print(f"warm-up {t.name:>11}: {runs} runs, last {rps:,.0f} req/s", flush=True)
            got: dict[str, dict[str, list[dict]]] = {w: {t.name: [] for t in targets} for w in args.workloads}
            steady = procs.Steady()
            for rnd in range(1, args.rounds + 1):
                for workload in args.workloads:
                    for t in targets:
                        m = steady(b.measure, workload, t)
                        got[workload][t.name].append(m)
                        latency = "".join(f"  {label} {m[key]:.2f} ms" for key, label in _ROUND_LATENCY if key in m)
                        print(f"round {rnd} {workload:>11} {t.name:>11}: {m['rps']:9.1f}/s  errors {m['errors']:.0f}"
                              f"  CPU {m['cpu_us']:,.0f} µs{latency}", flush=True)
            rss = {t.name: procs.peak_rss_mb(t.pid) for t in targets}
            sweep_rows = []
            if args.sweep:
                from bench import sweep

                for t in targets:
                    if t.name in SWEEP_TARGETS:
                        for row in sweep.sweep(t, SWEEP_LEVELS, hold=args.hold, headers=b.stream_headers[t.name],
                                               upstream_pid=fake_pid):
                            sweep_rows.append({"target": t.name, **row})
                            print(f"sweep {t.name}: {row}", flush=True)
            return got, rss, sweep_rows, steady
        finally:
            servers.stop_all()


# --------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------


def _med(rounds: list[dict], key: str) -> float:
    values = [r[key] for r in rounds if key in r]
    return median(values) if values else float("nan")


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
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
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
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    t0 = time.monotonic()
    try:
        for name in args.targets:
            if name in peers.INSTALL:
                peers.INSTALL[name]()
        got, rss, sweep_rows, steady = run(args)
    except KeyboardInterrupt:
        print("interrupted; servers stopped", file=sys.stderr)
        return 130
    text = markdown(args, got, rss, sweep_rows, steady, time.monotonic() - t0)
    print(text)
    if args.write:
        results.write_section("bench.full", text)
    return 0


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so the `finally` that stops the servers runs


if __name__ == "__main__":
    sys.exit(main())
