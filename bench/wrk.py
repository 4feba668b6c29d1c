"""Drive wrk (Debian's `wrk` package) and read its `--latency` report."""

from __future__ import annotations

import itertools
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).with_name("post.lua")
# Each run numbers its requests from its own million (see post.lua): no two requests
# of one bench carry the same body, so no run finds the last run's turns in a cache.
_RUNS = itertools.count(1)
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_LATENCY = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class WrkResult:
    rps: float  # 200 answers per second: errors answered fast must not count as throughput
    p50_ms: float  # latency percentiles over all answers, errors included
    p99_ms: float
    requests: int
    socket_errors: int
    statuses: dict[int, int]  # every answer that was not a 200, by status (from post.lua)
    p999_ms: float = float("nan")  # from post.lua's done()

    @property
    def errors(self) -> int:
        return self.socket_errors + sum(self.statuses.values())


def version() -> str:
    out = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
    return out.splitlines()[0].split(" Copyright")[0] if out else "wrk (version unknown)"


def command(url: str, body_file: Path, key: str, *, connections: int, duration: float, cpu: int,
            script: Path = SCRIPT) -> list[str]:
    # wrk takes whole seconds only.
    duration = max(1, round(duration))
    # One wrk thread is plenty (tens of thousands of requests/s) and leaves the rest of
    # its core to the fake upstream it shares it with.
    return [
        "taskset", "-c", str(cpu), "wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--timeout", "10s",
        "--latency", "-s", str(script), url, "--", str(body_file), key, str(next(_RUNS) * 1_000_000),
    ]


def paced_script(pause_ms: int, directory: Path) -> Path:
    """post.lua plus a pause before each request on a connection: a load that leaves
    the server idle time, instead of saturating it. wrk looks for `delay` when it
    loads the script, so it must be defined there, not in `init`."""
    path = directory / f"paced-{pause_ms}.lua"
    if not path.exists():
        path.write_text(SCRIPT.read_text() + f"\nfunction delay()\n   return {int(pause_ms)}\nend\n")
    return path


def run(url: str, body_file: Path, key: str, *, connections: int, duration: float, cpu: int,
        script: Path = SCRIPT) -> WrkResult:
    cmd = command(url, body_file, key, connections=connections, duration=duration, cpu=cpu, script=script)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    return parse(proc.stdout)


def parse(text: str) -> WrkResult:
    """Read req/s, p50, p99, the request count and errors from wrk's report."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in", text)
    if rps is None or total is None:
        raise RuntimeError(f"unexpected wrk output:\n{text}")
    lat = {pct: float(value) * _UNITS[unit] for pct, value, unit in _LATENCY.findall(text)}
    sockets = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
    statuses = {int(code): int(n) for code, n in re.findall(r"(\d{3})=(\d+)", _line(text, "statuses:"))}
    requests = int(total.group(1))
    ok = max(0, requests - sum(statuses.values()))
    p999 = re.search(r"^p99\.9: (\d+)us$", text, re.MULTILINE)
    return WrkResult(float(rps.group(1)) * ok / requests if requests else 0.0,
                     lat.get("50", float("nan")), lat.get("99", float("nan")), requests, sockets, statuses,
                     int(p999.group(1)) / 1000 if p999 else float("nan"))


def _line(text: str, prefix: str) -> str:
    return next((line for line in text.splitlines() if line.startswith(prefix)), "")
