"""What metrics and the exchange log cost: the gateway without and with them.

    python -m bench.ops [--rounds 3] [--duration 4] [--no-write]

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

Writes the `bench.ops` section of bench/RESULTS.md (not with --no-write). Target (#6): on ≥ 95%
of off.
"""

from __future__ import annotations

import argparse
import threading
import urllib.error
import urllib.request

from bench import harness, onoff
from bench.targets import Gateway, Target, reload_with, start_fake, start_gateway


class Scraper:
    """GET /metrics once a second while measuring, like a Prometheus."""

    def __init__(self, target: Target) -> None:
        self.url = target.base + "/metrics"
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
    want = 404 if label == "off" else 200

    def switched() -> bool:
        try:
            with urllib.request.urlopen(gw.base + "/metrics", timeout=5) as r:
                return r.status == want
        except urllib.error.HTTPError as exc:
            return exc.code == want

    reload_with(gw, _OFF, label == "off", switched, f"metrics {label}")


def measure(rounds: int, duration: float) -> list[str]:
    out = []
    for title, audit, guards in (("default gateway (audit and guards on)", True, True),
                                 ("aiogw-core (audit and guards off)", False, False)):
        with harness.Lab("aiogw-bench-ops-") as lab:
            fake_pid, fake_port = start_fake(lab.servers)
            gw = start_gateway(lab.servers, lab.tmp, "gateway", fake_port, Gateway(audit=audit, guards=guards),
                               fake_pid)
            with Scraper(gw) as scraper:
                table, _ = onoff.compare([gw], [gw], "metrics+log", onoff.workloads(lab.tmp, duration, streams=False),
                                         rounds, switch=lambda label, gw=gw: _switch(gw, label))
        out += [f"### {title}", "", *table, "", f"/metrics scraped {scraper.scrapes} times meanwhile.", ""]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ops", description=__doc__.split("\n\n")[0])
    onoff.add_run_args(p, 3, 4.0)
    args = p.parse_args(argv)
    with harness.interrupted():
        body = measure(args.rounds, args.duration)
    facts = [f"**date:** {harness.now()}; the proxy pinned to CPU 0, wrk, the scraper and the fake upstream to CPU 1, "
             f"{onoff.CONNECTIONS} connections, off and on interleaved round by round.",
             "Target (#6): metrics and logging on ≥ 95% of the throughput without them."]
    text = harness.section(f"Metrics and the exchange log (`{harness.command('bench.ops', argv)}`)", facts, [
        *body,
        "*On* is `[metrics] enabled = true` and `[log] exchanges = true` (the defaults): per exchange, the metric "
        "updates and one JSON line on stdout (here a file); *off* sets both off. Scrapes count only while on.",
    ])
    harness.write("bench.ops", text, not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
