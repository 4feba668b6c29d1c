"""aiogw as `aiogw serve` runs it, plus an event-loop lag probe, for the bench.

    python -m bench.gateway --config aiogw.toml --lag-file lag.json

It runs `aiogw.serving.serve(config)` — the code behind `aiogw serve`: same start-up, GC
tuning, uvloop and shutdown — and beside it, only while the bench asks, a task that
sleeps 1 ms in a loop and records how late each wake-up is. Lag is what every request
waits on top of its own work when something holds the loop: a long audit batch, a
guard scan, a GC pass.

The bench drives the probe with signals, so nothing in aiogw changes:
SIGUSR1 starts a window (samples cleared, probe running); SIGUSR2 ends it and writes
{"n", "p50", "p99", "max"} (ms) to the lag file, atomically. Between windows the probe
sleeps: a target the bench is not measuring costs its core nothing.

Resolution: uvloop's timers tick in whole milliseconds, so an idle loop already shows
up to ~1 ms; the bench reports an idle window as the floor.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import time
from pathlib import Path

import orjson

from bench.stats import percentile

INTERVAL = 0.001  # the probe's sleep: finer than uvloop's 1 ms timer tick is pointless


class LagProbe:
    """Sleeps INTERVAL, records (woke - due) in ms, while a window is open."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.samples: list[float] = []
        self.task: asyncio.Task[None] | None = None

    def open(self) -> None:
        self.samples = []
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run(), name="bench-lag-probe")

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.task = None
        s = self.samples
        summary = {"n": len(s), "p50": percentile(s, 50), "p99": percentile(s, 99), "max": max(s, default=float("nan"))}
        tmp = self.out.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(summary))
        os.replace(tmp, self.out)

    async def _run(self) -> None:
        clock = time.perf_counter  # loop.time() is uvloop's cached millisecond clock
        samples = self.samples
        while True:
            due = clock() + INTERVAL
            await asyncio.sleep(INTERVAL)
            samples.append((clock() - due) * 1000.0)


async def main(config_path: str, lag_file: Path) -> None:
    from aiogw import config as config_mod
    from aiogw.serving import serve

    cfg = config_mod.load(config_path)
    probe = LagProbe(lag_file)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, probe.open)
    loop.add_signal_handler(signal.SIGUSR2, probe.close)
    try:
        await serve(cfg)  # returns on SIGTERM/SIGINT, after a clean shutdown
    finally:
        if probe.task is not None:
            probe.task.cancel()


def cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--lag-file", required=True, type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import uvloop

    uvloop.run(main(args.config, args.lag_file))


def read_window(pid: int, lag_file: Path, start: bool) -> dict[str, float] | None:
    """Bench side: open (start=True) or close a window of process `pid`; closing
    returns the window's figures once the process has written them."""
    if start:
        lag_file.unlink(missing_ok=True)
        os.kill(pid, signal.SIGUSR1)
        return None
    os.kill(pid, signal.SIGUSR2)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if lag_file.exists():
            return orjson.loads(lag_file.read_bytes())
        time.sleep(0.01)
    raise RuntimeError(f"gateway {pid} wrote no lag figures to {lag_file}")


if __name__ == "__main__":
    cli()
