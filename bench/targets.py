"""What the bench measures, and how each is started, each on its own free port.

- direct: the fake upstream itself (`--lean`), the floor any proxy adds to;
- passthrough: `bench.passthrough`, the best a simple Python proxy does;
- a gateway: aiogw from a TOML file, as `aiogw serve --config` runs it, in one of the
  variants a suite names (`Gateway`: which of audit, guards, metrics and the exchange
  log are on, and any TOML added). With `lag=True` it runs under `bench.gateway`
  instead (the same serve, plus an event-loop lag probe the bench switches on only while
  it measures that target);
- the peers (nginx, LiteLLM, Portkey): `bench.peers` installs and starts them.

The proxies run on PROXY_CPU; the fake upstream and every load generator on LOAD_CPU,
so a proxy has a core to itself and never competes with the load.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import gateway
from bench.procs import Procs, free_port

PROXY_CPU = 0
LOAD_CPU = 1
FAKE_KEY = "sk-ant-fake"  # the fake upstream's Anthropic key
ROOT = Path(__file__).resolve().parent.parent

# Far above anything the bench sends: limits that admit every request but still count
# and charge each one.
LIMITS = ("requests_per_minute = 100000000", "tokens_per_minute = 1000000000000", "max_concurrent = 100000",
          "daily_budget_usd = 1000000000.0", "monthly_budget_usd = 1000000000.0")
USER_LIMITS = f"limits = {{ {', '.join(LIMITS)} }}\n"  # on the bench user
LIMITS_TABLE = "\n[limits]\n" + "".join(f"{line}\n" for line in LIMITS)  # for every user


@dataclass(frozen=True, slots=True)
class Gateway:
    """One aiogw configuration: its defaults, with what is named switched off."""

    audit: bool = True
    guards: bool = True
    observe: bool = True  # metrics and the exchange log
    user: str = ""  # TOML added to the bench user's table
    extra: str = ""  # TOML added at the end of the file
    state: str = ""  # TOML added to the [state] table: a PostgreSQL url and password (bench.postgres)
    lag: bool = False  # run under bench.gateway, with the loop-lag probe

    def toml(self, state_dir: Path, port: int, fake_port: int) -> str:
        tail = self.extra
        if not self.audit:
            tail = "\n[audit]\nenabled = false\n" + tail
        if not self.guards:
            tail = "\n[guards]\nenabled = false\n" + tail
        if not self.observe:
            tail = "\n[metrics]\nenabled = false\n[log]\nexchanges = false\n" + tail
        return f"""\
[server]
host = "127.0.0.1"
port = {port}

[state]
path = "{state_dir / 'state.db'}"
{self.state}
[[routes]]
name = "anthropic"
dialect = "anthropic"
upstream = "http://127.0.0.1:{fake_port}"
credential = {{ env = "BENCH_ANTHROPIC_KEY" }}

[[users]]
name = "bench"
{self.user}{tail}"""


SHIPPED = Gateway()
BARE = Gateway(audit=False, guards=False, observe=False)
# bench.run's gateways, in its measuring order: the core alone, the audit (with metrics
# and the log) alone, everything on.
GATEWAYS: dict[str, Gateway] = {
    "aiogw-core": Gateway(audit=False, guards=False, observe=False, lag=True),
    "aiogw-audit": Gateway(guards=False, lag=True),
    "aiogw": Gateway(lag=True),
}
TARGETS = ("direct", "passthrough", *GATEWAYS)


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    url: str  # the Anthropic Messages endpoint as this target serves it
    key: str  # what goes in x-api-key
    pid: int  # the server whose CPU and memory are reported
    fake_pid: int = 0  # the fake upstream behind it
    config: Path | None = None  # an aiogw's config file
    audit: bool = False  # an aiogw with its audit writer, which drains after a run
    lag_file: Path | None = None  # where an aiogw under bench.gateway writes its loop-lag figures
    headers: Mapping[str, str] = field(default_factory=dict)  # a peer's routing headers

    @property
    def base(self) -> str:
        return self.url.split("/llm-gateway/")[0]

    def lag_window(self, start: bool) -> dict[str, float] | None:
        """Open or close a loop-lag window (targets under bench.gateway only)."""
        if self.lag_file is None:
            return None
        return gateway.read_window(self.pid, self.lag_file, start)


def start_fake(procs: Procs) -> tuple[int, int]:
    """The fake upstream in lean mode (see aiogw.fake_upstream); returns (pid, port)."""
    port = free_port()
    pid = procs.start("fake_upstream", [sys.executable, "-m", "aiogw.fake_upstream", "--port", str(port), "--lean"],
                      cpu=LOAD_CPU, port=port)
    return pid, port


def start_gateway(procs: Procs, tmp: Path, name: str, fake_port: int, gw: Gateway = SHIPPED,
                  fake_pid: int = 0) -> Target:
    """One aiogw with a fresh state directory and gateway key, both made by the `aiogw`
    package in `procs.cwd` (bench.commits runs another commit's tree there)."""
    state = tmp / name
    state.mkdir(parents=True)
    port = free_port()
    config = state / "aiogw.toml"
    config.write_text(gw.toml(state, port, fake_port))
    env = {**os.environ, "BENCH_ANTHROPIC_KEY": FAKE_KEY}
    made = subprocess.run([sys.executable, "-m", "aiogw", "keys", "create", "bench", "--config", str(config)],
                          capture_output=True, text=True, env=env, cwd=procs.cwd, check=False)
    if made.returncode != 0:
        raise RuntimeError(f"aiogw keys create failed: {made.stderr.strip()}")
    lag_file = state / "lag.json" if gw.lag else None
    if lag_file is not None:
        cmd = [sys.executable, "-m", "bench.gateway", "--config", str(config), "--lag-file", str(lag_file)]
    else:
        cmd = [sys.executable, "-m", "aiogw", "serve", "--config", str(config)]
    pid = procs.start(name, cmd, cpu=PROXY_CPU, port=port, env=env)
    url = f"http://127.0.0.1:{port}/llm-gateway/anthropic/v1/messages"
    return Target(name, url, made.stdout.strip(), pid, fake_pid, config, gw.audit, lag_file)


def start(procs: Procs, tmp: Path, names: Sequence[str],
          gateways: Mapping[str, Gateway] = GATEWAYS) -> tuple[list[Target], int]:
    """The fake and the named targets (gateways by `gateways`, peers by bench.peers);
    returns them in the order named, and the fake's PID."""
    fake_pid, fake_port = start_fake(procs)
    upstream = f"http://127.0.0.1:{fake_port}"
    out = []
    for name in names:
        if name == "direct":
            out.append(Target("direct", f"{upstream}/v1/messages", FAKE_KEY, fake_pid, fake_pid))
        elif name == "passthrough":
            port = free_port()
            pid = procs.start("passthrough", [sys.executable, "-m", "bench.passthrough", "--port", str(port),
                                              "--upstream", upstream], cpu=PROXY_CPU, port=port)
            out.append(Target("passthrough", f"http://127.0.0.1:{port}/v1/messages", FAKE_KEY, pid, fake_pid))
        elif name in gateways:
            out.append(start_gateway(procs, tmp, name, fake_port, gateways[name], fake_pid))
        else:
            from bench import peers  # it starts targets of its own kind

            out.append(peers.START[name](procs, tmp, fake_port, fake_pid))
    return out, fake_pid


def reload_with(gw: Target, block: str, present: bool, confirmed: Callable[[], bool], what: str) -> None:
    """`block` in or out of the running gateway's config file, then SIGHUP; returns once
    `confirmed()` says the gateway applied it (polled for up to 10 s)."""
    assert gw.config is not None
    text = gw.config.read_text().replace(block, "")
    gw.config.write_text(text + (block if present else ""))
    os.kill(gw.pid, signal.SIGHUP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if confirmed():
            return
        time.sleep(0.05)
    raise RuntimeError(f"the gateway did not apply {what} after SIGHUP")
