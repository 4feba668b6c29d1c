"""What metrics and the exchange log cost: the gateway without and with them.

    python -m bench.ops [--rounds 3] [--duration 4]

Two gateways, each measured without and with `[metrics]` and the exchange log,
interleaved round by round under wrk (1 KB and 200 KB bodies). Each is ONE process,
switched between off and on by rewriting its config and a SIGHUP before every run, so
what differs between two processes cannot pass for the cost:
1. the default gateway (audit and guards on) — the comparison an operator makes when
   switching them on;
2. aiogw-core (audit and guards off): there they also make the gateway read every
   answer's usage, which the audit otherwise does.
/metrics is requested every second throughout, as a Prometheus would (answered with
a 404 while off), and the exchange lines go to a file (what journald takes from stdout).

Writes the `bench.ops` section of bench/RESULTS.md. Target (#6): on ≥ 95% of off.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench import onoff, procs, results
from bench.targets import ROOT, Target, start_fake, start_gateway


class Scraper:
    """GET /metrics once a second while measuring, like a Prometheus."""

    def __init__(self, target: Target) -> None:
        self.url = target.url.split("/llm-gateway/")[0] + "/metrics"
        self.scrapes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Scraper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            try:
                with urllib.request.urlopen(self.url, timeout=5) as r:
                    r.read()
                self.scrapes += 1
            except urllib.error.HTTPError:  # 404 while switched off
                pass


_OFF = "\n[metrics]\nenabled = false\n[log]\nexchanges = false\n"


def _switch(gw: Target, label: str) -> None:
    """Metrics and the exchange log off or on in the running gateway: config and SIGHUP;
    returns once /metrics answers as it should."""
    config = gw.lag_file.parent / "aiogw.toml"
    text = config.read_text().replace(_OFF, "")
    config.write_text(text + (_OFF if label == "off" else ""))
    os.kill(gw.pid, signal.SIGHUP)
    want = 404 if label == "off" else 200
    url = gw.url.split("/llm-gateway/")[0] + "/metrics"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                status = r.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        if status == want:
            return
        time.sleep(0.05)
    raise RuntimeError(f"the gateway did not switch metrics {label} after SIGHUP")


def measure(rounds: int, duration: float) -> list[str]:
    out = []
    with tempfile.TemporaryDirectory(prefix="aiogw-bench-ops-") as tmp_name:
        tmp = Path(tmp_name)
        for title, audit, guards in (("default gateway (audit and guards on)", True, True),
                                     ("aiogw-core (audit and guards off)", False, False)):
            base = tmp / title.split()[0]
            base.mkdir()
            servers = procs.Procs(base, ROOT)
            try:
                _, fake_port = start_fake(servers)
                gw = start_gateway(servers, base, "gateway", fake_port, audit=audit, guards=guards, observe=True)
                with Scraper(gw) as scraper:
                    table = onoff.compare(base, gw, gw, "metrics+log", rounds, duration,
                                          switch=lambda label, gw=gw: _switch(gw, label))
                out += [f"### {title}", "", *table, "", f"/metrics scraped {scraper.scrapes} times meanwhile.", ""]
            finally:
                servers.stop_all()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ops", description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=4.0)
    args = p.parse_args(argv)
    command = "python -m bench.ops" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    body = measure(args.rounds, args.duration)
    text = "\n".join([
        f"## Metrics and the exchange log (`{command}`)",
        "",
        f"- **date:** {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; the proxy pinned to CPU 0, wrk, the "
        "scraper and the fake upstream to CPU 1, 32 connections, off and on interleaved round by round.",
        "- Target (#6): metrics and logging on ≥ 95% of the throughput without them.",
        "",
        *body,
        "*On* is `[metrics] enabled = true` and `[log] exchanges = true` (the defaults): per exchange, the metric "
        "updates and one JSON line on stdout (here a file); *off* sets both off. Scrapes count only while on.",
    ])
    print(text)
    results.write_section("bench.ops", text)  # between its markers; the other sections stay
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
