"""The stream client: many concurrent SSE streams, timing each event's arrival.

Run by `bench.run` as a subprocess pinned beside the fake upstream, it prints one JSON
line: streams completed, failures, the TTFB and inter-event gap percentiles, and the
fewest and most SSE events a stream had (events_min / events_max: `--chunks` + 6 when
the fake's stream came through whole).

    python -m bench.streams --url URL --key KEY [--concurrency 50] [--duration 4]
        [--chunks 50] [--delay 0.005] [--header NAME:VALUE ...]

The fake upstream makes each stream `--chunks` text deltas `--delay` s apart, as the
request's x-fake-chunks / x-fake-delay headers ask: a proxy in between must pass them on.
`--header` adds a request header (a peer's routing headers, say), repeatable.

TTFB is request sent → first body bytes. A gap is the time between two SSE events
arriving; events that arrive together in one read count as a gap of zero, which is
what the agent sees (and what a proxy that batches chunks would cause).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import aiohttp
import orjson
import uvloop

from bench.bodies import messages_body
from bench.stats import percentile


class Recorder:
    __slots__ = ("done", "events", "failed", "gaps", "ttfb", "warm_until")

    def __init__(self, warm_until: float) -> None:
        self.ttfb: list[float] = []
        self.gaps: list[float] = []
        # SSE events per recorded stream: chunks + 6 when the fake's stream came through
        # whole (message_start, content_block_start, ping, the deltas, content_block_stop,
        # message_delta, message_stop); the fake's default 5 chunks (11 events) when a
        # proxy dropped the x-fake-* headers.
        self.events: list[int] = []
        self.done = 0
        self.failed = 0
        # Streams started before this instant warm pools up and are not recorded.
        self.warm_until = warm_until


async def one_stream(session: aiohttp.ClientSession, url: str, headers: dict[str, str],
                     body: bytes, rec: Recorder) -> None:
    t0 = time.perf_counter()
    ttfb = 0.0
    gaps: list[float] = []
    last = 0.0
    tail = b""
    count = 0
    async with session.post(url, data=body, headers=headers) as resp:
        if resp.status != 200:
            await resp.read()
            rec.failed += 1
            return
        async for chunk in resp.content.iter_any():
            now = time.perf_counter()
            if not ttfb:
                ttfb = now - t0
            else:
                gaps.append(now - last)
            # One more entry per extra event in this read: they arrived with no gap.
            # `tail` catches a "\n\n" split across two reads.
            events = (tail + chunk).count(b"\n\n")
            gaps.extend([0.0] * max(0, events - 1))
            count += events
            tail = chunk[-1:]
            last = now
    if t0 >= rec.warm_until:
        rec.ttfb.append(ttfb)
        rec.gaps.extend(gaps)
        rec.events.append(count)
        rec.done += 1


async def worker(session: aiohttp.ClientSession, url: str, headers: dict[str, str], body: bytes,
                 rec: Recorder, deadline: float, start_after: float) -> None:
    await asyncio.sleep(start_after)
    while time.perf_counter() < deadline:
        try:
            await one_stream(session, url, headers, body, rec)
        except aiohttp.ClientError:
            rec.failed += 1


async def run(url: str, key: str, concurrency: int, duration: float, warmup: float,
              chunks: int, delay: float, extra: dict[str, str] | None = None) -> dict:
    """Keep `concurrency` streams open for warmup+duration seconds; the summary in ms.
    `extra`: more request headers, sent after (so over) the standard ones."""
    headers = {
        "content-type": "application/json", "anthropic-version": "2023-06-01", "x-api-key": key,
        "x-fake-chunks": str(chunks), "x-fake-delay": str(delay), **(extra or {}),
    }
    body = messages_body(1000, stream=True)
    start = time.perf_counter()
    rec = Recorder(start + warmup)
    deadline = start + warmup + duration
    # The streams start one after another, spread over one stream's nominal time (within
    # the warm-up): started together, they end together and start again together, and a
    # stream's TTFB measured the fake upstream answering the whole cohort at once (at 500
    # events, ~25 ms direct, and ±10 ms from one run to the next), not what a proxy adds.
    spread = min(chunks * delay, warmup) / concurrency
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        await asyncio.gather(*(worker(session, url, headers, body, rec, deadline, i * spread)
                               for i in range(concurrency)))
    elapsed = time.perf_counter() - rec.warm_until
    ms = 1000.0
    return {
        "streams": rec.done, "failed": rec.failed, "streams_per_s": rec.done / elapsed,
        "ttfb_p50": percentile(rec.ttfb, 50) * ms, "ttfb_p99": percentile(rec.ttfb, 99) * ms,
        "gap_p50": percentile(rec.gaps, 50) * ms, "gap_p99": percentile(rec.gaps, 99) * ms,
        "gaps": len(rec.gaps), "events_min": min(rec.events, default=0), "events_max": max(rec.events, default=0),
    }


def command(url: str, key: str, cpu: int, **options: float | int) -> list[str]:
    """This client's command line, pinned to `cpu`; `options` are its flags by name
    (concurrency=16, chunks=50, delay=0, duration=2, warmup=0.3)."""
    flags = [f"--{name}={value}" for name, value in options.items()]
    return ["taskset", "-c", str(cpu), sys.executable, "-m", "bench.streams", "--url", url, "--key", key, *flags]


def header(text: str) -> tuple[str, str]:
    """`NAME:VALUE` (spaces around either trimmed) as a header, its name in lower case
    (as the standard ones: a later one of the same name replaces it); argparse's type."""
    name, sep, value = text.partition(":")
    name, value = name.strip().lower(), value.strip()
    if not sep or not name or any(c in name for c in " \t\r\n") or any(c in value for c in "\r\n"):
        raise argparse.ArgumentTypeError(f"not NAME:VALUE: {text!r}")
    return name, value


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.streams")
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--chunks", type=int, default=50)
    parser.add_argument("--delay", type=float, default=0.005)
    parser.add_argument("--header", type=header, action="append", default=[], metavar="NAME:VALUE",
                        help="an extra request header (repeatable)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    result = uvloop.run(run(args.url, args.key, args.concurrency, args.duration, args.warmup,
                            args.chunks, args.delay, dict(args.header)))
    sys.stdout.buffer.write(orjson.dumps(result) + b"\n")


if __name__ == "__main__":
    main()
