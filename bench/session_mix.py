"""Agents replaying coding sessions at once: the mixed workload of the full comparison.

Each of `--agents` agents replays its own synthetic Claude Code session
(bench.agent_text.Session: a ~30 KB system prompt and tools, a history that grows by a
tool call and its result every turn), one streamed turn after another, as Claude Code
sends them (`?beta=true`, its headers, its session id). So the load mixes what a real
gateway sees: bodies from ~30 KB to a few hundred KB, each turn resending the last
one's history. The fake upstream streams its default answer (5 events): no `x-fake-*`
header is sent, since not every peer forwards them.

Run as a subprocess pinned beside the fake (bench.full); prints one JSON line.

    python -m bench.session_mix --url URL --key KEY [--header NAME:VALUE] [--agents 16]
                                [--turns 40] [--seed 1] [--duration 0]

Every body is made before the clock starts, so the generator's own work is not in the
figures; `--seed` gives each run sessions no target has seen yet.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid

import aiohttp
import orjson
import uvloop

from bench import agent_text
from bench.stats import percentile

HEADERS = {
    "anthropic-version": "2023-06-01", "content-type": "application/json",
    "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
    "user-agent": "claude-cli/2.0.14 (external, cli)", "x-app": "cli",
}


def sessions(agents: int, turns: int, seed: int) -> list[list[bytes]]:
    """Each agent's request bodies, turn by turn."""
    out = []
    for agent in range(agents):
        session = agent_text.Session(seed=seed * 1000 + agent)
        bodies = []
        for _ in range(turns):
            bodies.append(orjson.dumps(session.body(stream=True)))
            session.turn()
        out.append(bodies)
    return out


async def replay(url: str, headers: dict[str, str], bodies: list[bytes], http: aiohttp.ClientSession,
                 got: dict[str, list], deadline: float) -> None:
    agent_headers = {**headers, "X-Claude-Code-Session-Id": str(uuid.uuid4())}
    for body in bodies:
        if time.perf_counter() >= deadline:
            return
        t0 = time.perf_counter()
        ttfb = None
        try:
            async with http.post(url + "?beta=true", data=body, headers=agent_headers) as resp:
                async for _ in resp.content.iter_any():
                    if ttfb is None:
                        ttfb = time.perf_counter() - t0
                if resp.status != 200:
                    got["failed"].append(f"status {resp.status}")
                    continue
        except aiohttp.ClientError as e:
            got["failed"].append(f"{type(e).__name__}: {e}")
            continue
        got["latency"].append(time.perf_counter() - t0)
        got["ttfb"].append(ttfb or 0.0)
        got["bytes"].append(len(body))


async def run(url: str, key: str, extra: dict[str, str], agents: int, turns: int, seed: int,
              duration: float) -> dict:
    work = sessions(agents, turns, seed)
    headers = {**HEADERS, "x-api-key": key, **extra}
    got: dict[str, list] = {"latency": [], "ttfb": [], "bytes": [], "failed": []}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        t0 = time.perf_counter()
        deadline = t0 + duration if duration > 0 else float("inf")
        await asyncio.gather(*(replay(url, headers, bodies, http, got, deadline) for bodies in work))
        elapsed = time.perf_counter() - t0
    ms = 1000.0
    return {
        "turns": len(got["latency"]), "failed": len(got["failed"]), "first_failure": (got["failed"] or [None])[0],
        "rps": len(got["latency"]) / elapsed, "seconds": elapsed,
        "p50": percentile(got["latency"], 50) * ms, "p99": percentile(got["latency"], 99) * ms,
        "ttfb_p50": percentile(got["ttfb"], 50) * ms,
        "mean_body_kb": sum(got["bytes"]) / max(1, len(got["bytes"])) / 1024,
        "max_body_kb": max(got["bytes"], default=0) / 1024,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.session_mix", description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--header", action="append", default=[], help="NAME:VALUE, repeatable")
    p.add_argument("--agents", type=int, default=16)
    p.add_argument("--turns", type=int, default=40)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--duration", type=float, default=0.0, help="start no turn after this many seconds (0: all)")
    args = p.parse_args(argv)
    extra = dict(h.split(":", 1) for h in args.header)
    result = uvloop.run(run(args.url, args.key, extra, args.agents, args.turns, args.seed, args.duration))
    sys.stdout.buffer.write(orjson.dumps(result) + b"\n")


if __name__ == "__main__":
    main()
