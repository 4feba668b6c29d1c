"""The peers aiogw is compared with (issue 7), each in front of the same fake upstream.

- nginx: a plain reverse proxy (Debian's `nginx-light`, else `nginx`), one worker,
  upstream keep-alive, no buffering either way (`bench/peers/nginx.conf`);
- litellm: the LiteLLM proxy (`litellm[proxy]` from PyPI, in a venv of its own), started
  as its quick start says (`litellm --config config.yaml`), one model routed to the fake
  (`bench/peers/litellm.yaml`); loaded on its Anthropic-compatible `/v1/messages`;
- portkey: the Portkey gateway (`@portkey-ai/gateway` from npm, in a prefix of its own,
  with the two dependencies its own lockfile pins: see PORTKEY_OVERRIDES), started as
  `npx @portkey-ai/gateway` would; routed per request by its headers
  (`extra_headers`), which wrk sends from a copy of post.lua (`wrk_script`).

Installs are cached in ~/.cache/aiogw-bench (or $XDG_CACHE_HOME/aiogw-bench), one folder
per pinned version: the first run installs (a minute or two), later runs start at once.
Each peer runs pinned to PROXY_CPU, listens on 127.0.0.1 only and is registered in the
given `Procs`, whose `stop_all()` stops it.

    python -m bench.peers [--duration 4] [--rounds 2] [--connections 32] [--peers nginx,litellm,portkey]

measures them with wrk on ~1 KB Messages bodies beside direct, the pass-through and aiogw
(defaults), interleaved, and prints a table (bench/RESULTS.md is not written).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from string import Template

import orjson

from bench import harness, loads, procs, wrk
from bench.bodies import MODEL, messages_body
from bench.harness import Side, Suite, Workload
from bench.targets import FAKE_KEY, PROXY_CPU, SHIPPED, Target, start

TEMPLATES = Path(__file__).with_name("peers")
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "aiogw-bench"
# Pinned so that a rerun measures the same code; bump to compare with a newer release
# (a new version installs beside the old one).
LITELLM_VERSION = "1.108.7"
PORTKEY_VERSION = "1.15.2"
# The gateway's own package-lock.json (what its Docker image installs) pins these; a
# plain `npm install` or `npx` resolves @hono/node-server 1.19.x instead, with which
# every streamed request fails (500, `TypeError: immutable` in updateHeaders: Portkey
# issue #1389). Both are needed: @hono/node-ws 1.3 pulls the new node-server in again.
PORTKEY_OVERRIDES = {"@hono/node-server": "1.13.5", "@hono/node-ws": "1.2.0"}
PORTKEY_PREFIX = CACHE / f"portkey-{PORTKEY_VERSION}-hono-{PORTKEY_OVERRIDES['@hono/node-server']}"
# Importing LiteLLM's proxy takes ~8 s on a free core, more on a busy one: longer than
# Procs.start waits for a port.
LITELLM_START_S = 90.0
# What the bench compares aiogw with, in measuring order; aiogw itself and its two
# references come from bench.targets.
PEERS = ("nginx", "litellm", "portkey")
BASE = ("direct", "passthrough", "aiogw")


# --------------------------------------------------------------------------------------
# Configuration (pure: tested in tests/test_bench_peers.py)
# --------------------------------------------------------------------------------------


def nginx_conf(directory: Path, port: int, fake_port: int, user: str | None) -> str:
    """nginx.conf for one worker on 127.0.0.1:`port` in front of the fake; `user` is
    the workers' user when the master runs as root (else nginx's own `nobody` could
    not write its temp files in `directory`)."""
    return Template((TEMPLATES / "nginx.conf").read_text()).substitute(
        user_line=f"user {user};" if user else "", dir=directory, port=port, fake_port=fake_port)


def litellm_config(fake_port: int, master_key: str) -> str:
    return Template((TEMPLATES / "litellm.yaml").read_text()).substitute(
        model=MODEL, fake_port=fake_port, fake_key=FAKE_KEY, master_key=master_key)


def extra_headers(name: str, fake_port: int) -> dict[str, str]:
    """Headers a target needs on every request besides post.lua's own (the key goes in
    x-api-key as for every target). Portkey takes its route from them: the provider,
    and a custom host in place of api.anthropic.com/v1; the key passes through."""
    if name == "portkey":
        return {"x-portkey-provider": "anthropic", "x-portkey-custom-host": f"http://127.0.0.1:{fake_port}/v1"}
    return {}


def stream_headers(target: Target) -> dict[str, str]:
    """A target's headers for a stream run (bench.streams, one --header each). The fake
    shapes a stream from the request's x-fake-chunks / x-fake-delay; Portkey builds its
    own request to the provider and passes on only the client headers its
    x-portkey-forward-headers names (nginx passes every header; LiteLLM's x-* headers
    are let through by bench/peers/litellm.yaml)."""
    from aiogw.fake_upstream.model import CHUNKS_HEADER, DELAY_HEADER

    headers = dict(target.headers)
    if target.name == "portkey":
        headers["x-portkey-forward-headers"] = f"{CHUNKS_HEADER},{DELAY_HEADER}"
    return headers


def wrk_script(name: str, headers: dict[str, str], directory: Path, base: Path = wrk.SCRIPT) -> Path:
    """`base` (post.lua, or a paced copy of it) for a target that needs extra headers:
    they are set when wrk loads the script, before post.lua's `init` formats the
    request. Returns `base` itself when there are none."""
    if not headers:
        return base
    lines = []
    for key, value in headers.items():
        if any(c in key + value for c in '"\\\r\n'):
            raise ValueError(f"header {key!r} cannot go in a Lua string as it is")
        lines.append(f'wrk.headers["{key}"] = "{value}"\n')
    path = directory / f"{base.stem}-{name}.lua"
    path.write_text(f"-- {name}'s routing headers (bench.peers), then {base.name}\n" + "".join(lines)
                    + base.read_text())
    return path


# --------------------------------------------------------------------------------------
# Installing (idempotent; cached between runs)
# --------------------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    """One install at a time per peer, should two benches start together."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _run(cmd: list[str], log: Path, what: str, env: dict[str, str] | None = None) -> None:
    with open(log, "ab") as out:
        done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, check=False)
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise RuntimeError(f"{what} failed ({done.returncode}); see {log}:\n{tail}")


def install_nginx() -> str:
    """The nginx binary; apt-get installs `nginx-light` (else `nginx`) if there is none."""
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise RuntimeError("nginx is not installed: `sudo apt-get install -y nginx-light` (or `nginx`)")
    with _locked("nginx"):
        if shutil.which("nginx"):  # another bench installed it meanwhile
            return shutil.which("nginx") or "nginx"
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        log = CACHE / "nginx-install.log"
        # Debian's postinst would start the packaged service on port 80 where an init
        # system runs; `policy-rc.d` says no on this kind of machine (containers).
        for update in (False, True):
            if update:
                _run(["apt-get", "update", "-qq"], log, "apt-get update", env)
            for package in ("nginx-light", "nginx"):
                if subprocess.run(["apt-get", "install", "-y", "-qq", package], env=env, capture_output=True,
                                  check=False).returncode == 0:
                    return shutil.which("nginx") or "/usr/sbin/nginx"
    raise RuntimeError("apt-get could install neither nginx-light nor nginx")


def install_litellm() -> Path:
    """The `litellm` command of a venv of its own, with `litellm[proxy]` pinned."""
    venv = CACHE / f"litellm-{LITELLM_VERSION}"
    exe, marker = venv / "bin" / "litellm", venv / ".installed"
    if marker.exists() and exe.exists():
        return exe
    with _locked("litellm"):
        if marker.exists() and exe.exists():
            return exe
        log = CACHE / "litellm-install.log"
        log.write_text("")
        print(f"installing litellm[proxy]=={LITELLM_VERSION} into {venv} (once)", flush=True)
        _run([sys.executable, "-m", "venv", "--clear", str(venv)], log, "python -m venv")
        _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
              f"litellm[proxy]=={LITELLM_VERSION}"], log, "pip install litellm[proxy]")
        marker.write_text(f"litellm[proxy]=={LITELLM_VERSION}\n")
    return exe


def install_portkey() -> Path:
    """The gateway's start script (its package's `bin`) in an npm prefix of its own."""
    prefix = PORTKEY_PREFIX
    script = prefix / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
    marker = prefix / ".installed"
    if marker.exists() and script.exists():
        return script
    if not (shutil.which("node") and shutil.which("npm")):
        raise RuntimeError("the Portkey gateway needs Node.js and npm: `apt-get install -y nodejs npm`")
    with _locked("portkey"):
        if marker.exists() and script.exists():
            return script
        prefix.mkdir(parents=True, exist_ok=True)
        log = CACHE / "portkey-install.log"
        log.write_text("")
        print(f"installing @portkey-ai/gateway@{PORTKEY_VERSION} into {prefix} (once)", flush=True)
        (prefix / "package.json").write_text(orjson.dumps(
            {"private": True, "dependencies": {"@portkey-ai/gateway": PORTKEY_VERSION},
             "overrides": PORTKEY_OVERRIDES}, option=orjson.OPT_INDENT_2).decode())
        _run(["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--loglevel=error"], log,
             "npm install @portkey-ai/gateway")
        marker.write_text(f"@portkey-ai/gateway@{PORTKEY_VERSION}\n")
    return script


INSTALL: dict[str, Callable[[], object]] = {"nginx": install_nginx, "litellm": install_litellm,
                                            "portkey": install_portkey}


def versions() -> dict[str, str]:
    """What is installed, for a report (only peers already installed)."""
    out = {}
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if Path(nginx).exists():
        said = subprocess.run([nginx, "-v"], capture_output=True, text=True, check=False).stderr.strip()
        pkg = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Version}\\n", "nginx-light", "nginx"],
                             capture_output=True, text=True, check=False).stdout.split("\n")
        out["nginx"] = f"{said.split(': ')[-1]} (Debian: {', '.join(x for x in pkg if x) or 'package unknown'})"
    if (CACHE / f"litellm-{LITELLM_VERSION}" / ".installed").exists():
        out["litellm"] = f"litellm[proxy] {LITELLM_VERSION} (PyPI)"
    if (PORTKEY_PREFIX / ".installed").exists():
        node = subprocess.run(["node", "-v"], capture_output=True, text=True, check=False).stdout.strip()
        pins = ", ".join(f"{k} {v}" for k, v in PORTKEY_OVERRIDES.items())
        out["portkey"] = f"@portkey-ai/gateway {PORTKEY_VERSION} (npm; {pins} as its lockfile pins), Node.js {node}"
    return out


# --------------------------------------------------------------------------------------
# Starting
# --------------------------------------------------------------------------------------


def _child(pid: int, timeout: float = 10.0) -> int:
    """The first child of `pid` (nginx's worker, forked after the master listens)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError):
                text = stat.read_text()
                if int(text[text.rindex(")") + 2:].split()[1]) == pid:
                    return int(stat.parent.name)
        time.sleep(0.05)
    raise RuntimeError(f"process {pid} started no worker within {timeout:g} s")


def start_nginx(servers: procs.Procs, tmp: Path, fake_port: int, fake_pid: int) -> Target:
    """nginx (master and its one worker) pinned to PROXY_CPU; the Target's PID is the
    worker's, where the requests' CPU time goes."""
    binary = install_nginx()
    home = tmp / "nginx"
    home.mkdir()
    port = procs.free_port()
    user = pwd.getpwuid(os.geteuid()).pw_name if os.geteuid() == 0 else None
    conf = home / "nginx.conf"
    conf.write_text(nginx_conf(home, port, fake_port, user))
    master = servers.start("nginx", [binary, "-p", str(home), "-e", str(home / "error.log"), "-c", str(conf),
                                     "-g", "daemon off;"], cpu=PROXY_CPU, port=port)
    return Target("nginx", f"http://127.0.0.1:{port}/v1/messages", FAKE_KEY, _child(master), fake_pid)


def start_litellm(servers: procs.Procs, tmp: Path, fake_port: int, fake_pid: int) -> Target:
    """The LiteLLM proxy as its quick start runs it (`litellm --config config.yaml`,
    uvicorn, one worker), on 127.0.0.1 (its default host is 0.0.0.0). Requests carry
    the run's master key in x-api-key; LiteLLM swaps in the fake's key."""
    exe = install_litellm()
    home = tmp / "litellm"
    home.mkdir()
    port = procs.free_port()
    master_key = "sk-" + secrets.token_hex(32)
    config = home / "config.yaml"
    config.write_text(litellm_config(fake_port, master_key))
    # LITELLM_LOCAL_MODEL_COST_MAP: its documented switch to read the bundled price map
    # instead of fetching one from GitHub at start (no outbound call; with it, its only
    # connection is to the fake). Nothing else is changed from its defaults.
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    cmd = [str(exe), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    pid = _start_patiently(servers, "litellm", cmd, port, env, LITELLM_START_S)
    return Target("litellm", f"http://127.0.0.1:{port}/v1/messages", master_key, pid, fake_pid)


def start_portkey(servers: procs.Procs, tmp: Path, fake_port: int, fake_pid: int) -> Target:
    """The Portkey gateway as `npx @portkey-ai/gateway` starts it (its `bin`, with
    `--port=N`), kept on 127.0.0.1 by bench/peers/loopback.cjs; its requests carry
    `extra_headers("portkey", fake_port)` (the Target's headers)."""
    script = install_portkey()
    (tmp / "portkey").mkdir()
    port = procs.free_port()
    cmd = ["node", "--require", str(TEMPLATES / "loopback.cjs"), str(script), f"--port={port}"]
    pid = servers.start("portkey", cmd, cpu=PROXY_CPU, port=port)
    return Target("portkey", f"http://127.0.0.1:{port}/v1/messages", FAKE_KEY, pid, fake_pid,
                  headers=extra_headers("portkey", fake_port))


def _start_patiently(servers: procs.Procs, name: str, cmd: list[str], port: int, env: dict[str, str],
                     patience: float) -> int:
    """Procs.start for a server slower to listen than it waits: the process is
    registered before the wait, so it is waited for here a while longer."""
    try:
        return servers.start(name, cmd, cpu=PROXY_CPU, port=port, env=env)
    except RuntimeError:
        proc = servers.started[-1][1]
        if servers.started[-1][0] != name or proc.poll() is not None:
            raise
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc.pid
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{name} did not listen on port {port}:\n{servers.log_tail(name)}")


START: dict[str, Callable[[procs.Procs, Path, int, int], Target]] = {
    "nginx": start_nginx, "litellm": start_litellm, "portkey": start_portkey}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=4.0, help="seconds per wrk run, whole (default 4)")
    p.add_argument("--rounds", type=int, default=2, help="rounds of interleaved targets (default 2)")
    p.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    p.add_argument("--peers", default=",".join(PEERS), help=f"which peers (default {','.join(PEERS)})")
    args = p.parse_args(argv)
    peers = [name for name in args.peers.split(",") if name]
    if unknown := set(peers) - set(PEERS):
        p.error(f"unknown peers: {', '.join(sorted(unknown))}")
    with harness.interrupted():
        for name in peers:
            INSTALL[name]()
        rows, steady = _measure(peers, args.rounds, args.duration, args.connections)
    print()
    print(_table(rows, args, peers, steady))
    return 0


def _measure(peers: list[str], rounds: int, duration: float, connections: int) -> tuple[dict[str, dict], procs.Steady]:
    with harness.Lab("aiogw-peers-") as lab:
        body_file = lab.tmp / "body-1000.json"
        body_file.write_bytes(messages_body(1000))
        targets, _ = start(lab.servers, lab.tmp, (*BASE, *peers), {"aiogw": SHIPPED})
        print(f"servers up; logs in {lab.tmp}", flush=True)
        scripts = {t.name: wrk_script(t.name, dict(t.headers), lab.tmp) for t in targets}
        rows: dict[str, dict] = {}
        direct_id = None
        for t in targets:
            answer = loads.spot_check(t, body_file.read_bytes())
            direct_id = direct_id or answer["id"]
            # The fake derives its ids from the request body: the same id means the
            # same bytes reached it.
            rows[t.name] = {"same_bytes": answer["id"] == direct_id}
        small = Workload("small (1 KB)", lambda t, d: loads.http(t, body_file, d, connections, scripts[t.name]),
                         duration)
        suite = Suite(tuple(Side(t.name, (t,)) for t in targets), (small,), rounds, settle=small.name)
        got, steady = harness.run(suite)
        for t in targets:
            rows[t.name].update(rounds=got[(small.name, t.name)], rss=procs.peak_rss_mb(t.pid))
    return rows, steady


def _table(rows: dict[str, dict], args: argparse.Namespace, peers: list[str], steady: procs.Steady) -> str:
    def med(name: str, key: str) -> float:
        return harness.median(rows[name]["rounds"], key)

    aiogw = med("aiogw", "rps")
    lines = [f"small (1 KB) Messages bodies, wrk 1 thread {args.connections} connections, {args.duration:g} s "
             f"× {args.rounds} rounds interleaved (medians); proxy on CPU {PROXY_CPU}, wrk and fake on the other",
             "", "| target | req/s | p50 ms | p99 ms | errors | CPU µs/req | peak RSS MiB | same bytes at fake "
             "| aiogw ÷ target |", "|---|---:|---:|---:|---:|---:|---:|---|---:|"]
    for name, row in rows.items():
        errors = sum(r["errors"] for r in row["rounds"])
        lines.append(f"| {name} | {med(name, 'rps'):,.0f} | {med(name, 'p50'):.2f} | {med(name, 'p99'):.2f} "
                     f"| {errors:.0f} | {med(name, 'cpu_us'):,.0f} | {row['rss']:.0f} "
                     f"| {'yes' if row['same_bytes'] else 'no'} | {aiogw / med(name, 'rps'):.2f} |")
    lines.append("")
    for name in [*(n for n in ("litellm", "portkey", "nginx") if n in peers), "passthrough"]:
        per_round = ", ".join(f"{a['rps'] / b['rps']:.2f}" for a, b in zip(rows["aiogw"]["rounds"],
                                                                            rows[name]["rounds"], strict=True))
        lines.append(f"aiogw / {name}: {aiogw / med(name, 'rps'):.2f} (per round: {per_round}); CPU per "
                     f"request {med('aiogw', 'cpu_us'):,.0f} µs against {med(name, 'cpu_us'):,.0f} µs")
    lines.append(f"other jobs: {steady.retried} runs measured again (a core over {procs.DISTURBED:.0f} % busy "
                 f"with someone else's work); {steady.waited:.0f} s spent waiting for quiet")
    lines.append("")
    lines += [f"{name}: {v}" for name, v in versions().items() if name in peers]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
