"""What limits cost, and how far the admission estimate is from the provider's count.

    python -m bench.limits [--rounds 3] [--duration 4] [--no-write]

1. Throughput: aiogw-core (audit and guards off: no accounting at all) against the same
   process reloaded with `[limits]` set for every user (RPM, TPM, concurrency, daily and monthly
   budgets, all far above the load, so every request is admitted, counted and
   charged), 1 KB and 200 KB bodies under wrk, the two interleaved round by round.
2. The input-token estimate (`aiogw.limits.admission.estimate_tokens`: body bytes / 4)
   against the input tokens the fake upstream reports for the same bodies (its own
   count: the characters of every text / 4).

Writes the `bench.limits` section of bench/RESULTS.md (not with --no-write).
"""

from __future__ import annotations

import argparse
import asyncio

import aiohttp

from bench import harness, onoff, procs
from bench.bodies import messages_body
from bench.targets import BARE, LIMITS_TABLE, Target, reload_with, start_fake, start_gateway


def throughput(rounds: int, duration: float) -> list[str]:
    with harness.Lab("aiogw-bench-limits-") as lab:
        fake_pid, fake_port = start_fake(lab.servers)
        # Metrics and the exchange log off: they read every answer's usage too.
        gw = start_gateway(lab.servers, lab.tmp, "aiogw-limits", fake_port, BARE, fake_pid)
        # One process switched by a reload (limits change without a restart): two
        # processes' heaps and hash seeds moved the ratio by ±10 points round to round.
        table, _ = onoff.compare([gw], [gw], "limits", onoff.workloads(lab.tmp, duration, streams=False), rounds,
                                 switch=lambda label: _switch(lab.servers, gw, label))
        return table


def _switch(servers: procs.Procs, gw: Target, label: str) -> None:
    """`[limits]` in or out of the running gateway's config, then SIGHUP; returns once
    the gateway logged the reload."""
    log = servers.log_dir / f"{gw.name}.log"
    before = log.read_bytes().count(_RELOADED)
    try:
        reload_with(gw, LIMITS_TABLE, label == "on", lambda: log.read_bytes().count(_RELOADED) > before,
                    f"limits {label}")
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}:\n{servers.log_tail(gw.name)}") from None


_RELOADED = b"reload applied"


def estimator() -> list[str]:
    from aiogw.exchange import Exchange
    from aiogw.fake_upstream import FakeConfig, FakeUpstream
    from aiogw.limits.admission import estimate_tokens

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
    onoff.add_run_args(p, 3, 4.0)
    args = p.parse_args(argv)
    est = estimator()
    with harness.interrupted():
        thr = throughput(args.rounds, args.duration)
    facts = [f"**date:** {harness.now()}; the proxy pinned to CPU 0, wrk and the fake upstream to CPU 1, "
             f"{onoff.CONNECTIONS} connections, limits off and on interleaved round by round in one gateway process, "
             "switched by a reload (SIGHUP).",
             "Target (#5): limits on ≥ 95% of limits-off throughput."]
    text = harness.section(f"Limits (`{harness.command('bench.limits', argv)}`)", facts, [
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
        "provider's own count. tiktoken, the tokenizer OpenAI publishes on PyPI, downloads its vocabulary at first use "
        "from outside PyPI, which this machine cannot reach, so no tokenizer comparison is made here.",
    ])
    harness.write("bench.limits", text, not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
