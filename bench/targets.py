"""Start the things the bench measures, each on its own free port.

- direct: the fake upstream itself (`--lean`), the floor any proxy adds to;
- passthrough: `bench.passthrough`, the best a simple Python proxy does;
- aiogw-core: aiogw with `[audit]`, `[guards]`, metrics and the exchange log off: the proxy alone;
- aiogw-audit: aiogw with its audit log, metrics and exchange log on, guards off (so it
  differs from `aiogw` by the guards alone: the guard figures compare the two);
- aiogw: aiogw as configured by default (audit, guards, metrics and exchange log on).

Each aiogw runs as `bench.gateway` (`aiogw.app.serve` plus an event-loop lag probe the
bench switches on only while it measures that target), with its own state database.
The proxies run on PROXY_CPU; the fake upstream and every load generator on LOAD_CPU,
so a proxy has a core to itself and never competes with the load.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench import gateway
from bench.procs import Procs, free_port

PROXY_CPU = 0
LOAD_CPU = 1
FAKE_KEY = "sk-ant-fake"  # the fake upstream's Anthropic key
ROOT = Path(__file__).resolve().parent.parent

# name → (audit on, guards on, metrics and exchange log on); the order is the measuring
# order within a round.
GATEWAYS = {"aiogw-core": (False, False, False), "aiogw-audit": (True, False, True), "aiogw": (True, True, True)}
TARGETS = ("direct", "passthrough", *GATEWAYS)


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    url: str  # the Anthropic Messages endpoint as this target serves it
    key: str  # what goes in x-api-key
    pid: int  # the server whose CPU and memory are reported
    lag_file: Path | None = None  # where an aiogw target writes its loop-lag figures

    def lag_window(self, start: bool) -> dict[str, float] | None:
        """Open or close a loop-lag window (aiogw targets only)."""
        if self.lag_file is None:
            return None
        return gateway.read_window(self.pid, self.lag_file, start)


def _aiogw_bin() -> str:
    beside = Path(sys.executable).with_name("aiogw")
    found = str(beside) if beside.exists() else shutil.which("aiogw")
    if not found:
        raise RuntimeError("no `aiogw` command: run `make install` first")
    return found


def gateway_config(state_dir: Path, port: int, fake_port: int, *, audit: bool = True, guards: bool = True,
                   observe: bool = True, extra_toml: str = "") -> str:
    """The gateway's config: its defaults, one route to the fake, one user; audit,
    guards, metrics and the exchange log switched off only where asked."""
    extra = ""
    if not audit:
        extra += "\n[audit]\nenabled = false\n"
    if not guards:
        extra += "\n[guards]\nenabled = false\n"
    if not observe:
        extra += "\n[metrics]\nenabled = false\n[log]\nexchanges = false\n"
    extra += extra_toml
    return f"""\
[server]
host = "127.0.0.1"
port = {port}

[state]
path = "{state_dir / 'state.db'}"

[[routes]]
name = "anthropic"
dialect = "anthropic"
upstream = "http://127.0.0.1:{fake_port}"
credential = {{ env = "BENCH_ANTHROPIC_KEY" }}

[[users]]
name = "bench"
{extra}"""


def start_fake(procs: Procs) -> tuple[int, int]:
    """The fake upstream in lean mode (see aiogw.fake_upstream); returns (pid, port)."""
    port = free_port()
    pid = procs.start("fake_upstream", [sys.executable, "-m", "aiogw.fake_upstream", "--port", str(port), "--lean"],
                      cpu=LOAD_CPU, port=port)
    return pid, port


def start_gateway(procs: Procs, tmp: Path, name: str, fake_port: int, *, audit: bool, guards: bool,
                  observe: bool = True, extra: str = "") -> Target:
    """One aiogw under `bench.gateway`, with a fresh state directory and gateway key."""
    state = tmp / name
    state.mkdir()
    port = free_port()
    config = state / "aiogw.toml"
    config.write_text(gateway_config(state, port, fake_port, audit=audit, guards=guards, observe=observe,
                                     extra_toml=extra))
    env = {**os.environ, "BENCH_ANTHROPIC_KEY": FAKE_KEY}
    made = subprocess.run([_aiogw_bin(), "keys", "create", "bench", "--config", str(config)],
                          capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    if made.returncode != 0:
        raise RuntimeError(f"aiogw keys create failed: {made.stderr.strip()}")
    lag_file = state / "lag.json"
    pid = procs.start(name, [sys.executable, "-m", "bench.gateway", "--config", str(config), "--lag-file",
                             str(lag_file)], cpu=PROXY_CPU, port=port, env=env)
    url = f"http://127.0.0.1:{port}/llm-gateway/anthropic/v1/messages"
    return Target(name, url, made.stdout.strip(), pid, lag_file)


def start_all(procs: Procs, tmp: Path, names: tuple[str, ...] = TARGETS) -> tuple[list[Target], int]:
    """Start the fake and the named targets; returns them in measuring order, and the
    fake's PID."""
    fake_pid, fake_port = start_fake(procs)
    upstream = f"http://127.0.0.1:{fake_port}"
    targets = []
    for name in names:
        if name == "direct":
            targets.append(Target("direct", f"{upstream}/v1/messages", FAKE_KEY, fake_pid))
        elif name == "passthrough":
            port = free_port()
            pid = procs.start("passthrough", [sys.executable, "-m", "bench.passthrough", "--port", str(port),
                                              "--upstream", upstream], cpu=PROXY_CPU, port=port)
            targets.append(Target("passthrough", f"http://127.0.0.1:{port}/v1/messages", FAKE_KEY, pid))
        else:
            audit, guards, observe = GATEWAYS[name]
            targets.append(start_gateway(procs, tmp, name, fake_port, audit=audit, guards=guards, observe=observe))
    return targets, fake_pid
