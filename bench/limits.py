"""What limits cost, and how far the admission estimate is from the provider's count.

    python -m bench.limits [--rounds 3] [--duration 4]

1. Throughput: aiogw-core (audit and guards off: no accounting at all) against the same
   process reloaded with `[limits]` set for every user (RPM, TPM, concurrency, daily and monthly
   budgets, all far above the load, so every request is admitted, counted and
   charged), 1 KB and 200 KB bodies under wrk, the two interleaved round by round.
2. The input-token estimate (`aiogw.limits.check.estimate_tokens`: body bytes / 4)
   against the input tokens the fake upstream reports for the same bodies (its own
   count: the characters of every text / 4).

Writes the `bench.limits` section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from bench import onoff, procs, results
from bench.bodies import messages_body
from bench.targets import ROOT, Target, start_fake, start_gateway

LIMITS = """
[limits]
requests_per_minute = 100000000
tokens_per_minute = 1000000000000
max_concurrent = 100000
daily_budget_usd = 1000000000.0
monthly_budget_usd = 1000000000.0
"""
def throughput(rounds: int, duration: float) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="aiogw-bench-limits-") as tmp_name:
        tmp = Path(tmp_name)
        servers = procs.Procs(tmp, ROOT)
        try:
            _, fake_port = start_fake(servers)
            # Metrics and the exchange log off: they read every answer's usage too.
            gw = start_gateway(servers, tmp, "aiogw-limits", fake_port, audit=False, guards=False, observe=False)
            # One process switched by a reload (limits change without a restart): two
            # processes' heaps and hash seeds moved the ratio by ±10 points round to round.
            return onoff.compare(tmp, gw, gw, "limits", rounds, duration,
                                 switch=lambda label: _switch(servers, gw, label))
        finally:
            servers.stop_all()


def _switch(servers: procs.Procs, gw: Target, label: str) -> None:
    """`[limits]` in or out of the running gateway's config, then SIGHUP; returns once
    the gateway logged the reload."""
    config = gw.lag_file.parent / "aiogw.toml"
    text = config.read_text().replace(LIMITS, "")
    config.write_text(text + (LIMITS if label == "on" else ""))
    log = servers.log_dir / f"{gw.name}.log"
    before = log.read_bytes().count(_RELOADED)
    os.kill(gw.pid, signal.SIGHUP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if log.read_bytes().count(_RELOADED) > before:
            return
        time.sleep(0.05)
    raise RuntimeError(f"the gateway did not log a reload for limits {label} after SIGHUP:\n"
                       f"{servers.log_tail(gw.name)}")


_RELOADED = b"reload applied"


def estimator() -> list[str]:
    from aiogw.exchange import Exchange
    from aiogw.fake_upstream import FakeConfig, FakeUpstream
    from aiogw.limits.check import estimate_tokens

    bodies = {
        "chat turn (300 B)": b'{"model":"claude-haiku-4-5","max_tokens":1024,"messages":[{"role":"user",'
                             b'"content":"The tests in tests/test_parser.py fail; please fix them."}]}',
        "first turns (1 KB)": messages_body(1_000),
        "first turns (20 KB)": messages_body(20_000),
        "agent session (200 KB)": messages_body(200_000),
        "agent session (1 MB)": messages_body(1_000_000),
    }

    async def counts() -> dict[str, int]:
        fake = FakeUpstream(FakeConfig())
        port = await fake.start()
        out = {}
        async with aiohttp.ClientSession() as s:
            for name, body in bodies.items():
                async with s.post(f"http://127.0.0.1:{port}/v1/messages", data=body,
                                  headers={"x-api-key": "sk-ant-fake", "content-type": "application/json",
                                           "anthropic-version": "2023-06-01"}) as r:
                    out[name] = (await r.json())["usage"]["input_tokens"]
        await fake.stop()
        return out

    reported = asyncio.run(counts())
    lines = ["| body | bytes | estimate (bytes / 4) | fake upstream's count | estimate / count |",
             "|---|---:|---:|---:|---:|"]
    for name, body in bodies.items():
        ex = Exchange("POST")
        ex.body, ex.endpoint = body, "messages"
        est = estimate_tokens(ex)
        lines.append(f"| {name} | {len(body):,} | {est:,} | {reported[name]:,} | {est / reported[name]:.2f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.limits", description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=4.0)
    args = p.parse_args(argv)
    command = "python -m bench.limits" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    est = estimator()
    thr = throughput(args.rounds, args.duration)
    text = "\n".join([
        f"## Limits (`{command}`)",
        "",
        f"- **date:** {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; the proxy pinned to CPU 0, wrk and the "
        "fake upstream to CPU 1, 32 connections, limits off and on interleaved round by round in one gateway process, switched by a reload (SIGHUP).",
        "- Target (#5): limits on ≥ 95% of limits-off throughput.",
        "",
        "### Throughput: aiogw-core without and with `[limits]`",
        "",
        *thr,
        "",
        "*Limits on* includes everything limits need: the admission check, the usage read from every response and "
        "its price, the ledger's settlement and the store's flush once a second.",
        "",
        "### The admission estimate against the provider's count",
        "",
        *est,
        "",
        "The estimate only holds a minute's token window until the exchange ends; then the window is corrected by the "
        "provider's own count. tiktoken, the tokenizer OpenAI publishes on PyPI, downloads its vocabulary at first use from "
        "outside PyPI, which this machine cannot reach, so no tokenizer comparison is made here.",
    ])
    print(text)
    results.write_section("bench.limits", text)  # between its markers; the other sections stay
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
