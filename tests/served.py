"""Gateways a test starts for itself: `Served`, `aiogw serve` in a subprocess as
systemd runs it (its signals, its exit, what it prints, what it leaves in its
database); `LimitedGateway`, one on the session's loop from a config of the test's.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import IO

import anthropic
import httpx
import openai

import aiogw
from aiogw import config
from aiogw.app import RUNTIME, start
from tests.builders import allowing, create_key
from tests.conftest import FAKE_ROUTES, PROVIDER_KEYS, audit_rows, free_port, poll

# The code the test imported: a gateway started from a worktree of another commit runs
# that commit's aiogw, not the one installed in the venv.
SOURCE = str(Path(aiogw.__file__).resolve().parent.parent)


class Served:
    """`aiogw serve --config` in a subprocess on a free port, its stdout and stderr in
    files, started once it answers /healthz.

    The config is `[server]` with the port and drain period, state, audit, a route per
    dialect the tests use, and `extra`; a subclass serves another by overriding `write`
    (and `make_key` for other keys). `env` is added to the process's environment
    (PATH, the provider keys, PYTHONPATH naming SOURCE); `command` runs instead of
    `python -m aiogw`; with `pipes`, the output goes through pipes that threads copy to
    the files, as to journald's socket, so what the gateway prints never lands on a
    disk a test may fill.
    """

    def __init__(
        self, tmp_path: Path, fake_url: str, extra: str = "", drain: float = 30, *,
        env: dict[str, str] | None = None, command: list[str] | None = None, pipes: bool = False,
    ) -> None:
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.tmp = tmp_path
        self.port = free_port()
        self.state = tmp_path / "state.db"
        self.path = tmp_path / "aiogw.toml"
        self.fake_url = fake_url
        self.base = f"http://127.0.0.1:{self.port}"
        self.stopping = False
        self.env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": SOURCE, **PROVIDER_KEYS, **(env or {})}
        self.write(extra, drain=drain)
        self.key = self.make_key()
        self.out, self.err = tmp_path / "stdout", tmp_path / "stderr"
        argv = [*(command or [sys.executable, "-m", "aiogw"]), "serve", "--config", str(self.path)]
        self.copiers: list[threading.Thread] = []
        if pipes:
            self.proc = subprocess.Popen(argv, env=self.env, cwd=tmp_path, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            self.copiers = [threading.Thread(target=_copy, args=(pipe, path), daemon=True)
                            for pipe, path in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
            for t in self.copiers:
                t.start()
        else:
            with self.out.open("wb") as out, self.err.open("wb") as err:
                self.proc = subprocess.Popen(argv, env=self.env, cwd=tmp_path, stdin=subprocess.DEVNULL,
                                             stdout=out, stderr=err)
        self.pid = self.proc.pid
        self.wait(self._healthy, what="the gateway to answer /healthz")

    def write(self, extra: str = "", drain: float = 30, port: int | None = None, upstream: str | None = None) -> None:
        """(Re)write the config file; a running gateway reads it again on SIGHUP."""
        self.path.write_text(textwrap.dedent(f"""
            [server]
            port = {self.port if port is None else port}
            drain_seconds = {drain}
            [state]
            path = "{self.state}"
            [audit]
            flush_interval = 0.05
            [[routes]]
            name = "anthropic"
            dialect = "anthropic"
            upstream = "{upstream or self.fake_url}"
            credential = {{ env = "FAKE_ANTHROPIC" }}
            [[routes]]
            name = "openai"
            dialect = "openai"
            upstream = "{self.fake_url}"
            credential = {{ env = "FAKE_OPENAI" }}
            """) + textwrap.dedent(extra))

    def make_key(self) -> str:
        """Alice's key, made before the gateway starts."""
        return create_key(self.state, "alice")[1]

    def anthropic(self, **kw) -> anthropic.Anthropic:
        kw.setdefault("api_key", self.key)
        return anthropic.Anthropic(base_url=f"{self.base}/llm-gateway/anthropic", max_retries=0, **kw)

    def openai(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.base}/llm-gateway/openai/v1", api_key=self.key, max_retries=0)

    def send(self, sig: int) -> None:
        self.stopping = self.stopping or sig in (signal.SIGTERM, signal.SIGINT)
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Stop it (unless a stop signal went already: a second one is not a drain) and
        return its exit status."""
        if self.proc.poll() is None and not self.stopping:
            self.send(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self.kill()

    def kill(self) -> None:
        """Kill it if it still runs; then its output is all in the files."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for t in self.copiers:
            t.join(5)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def audit(self, sql: str, *args) -> list[dict]:
        """Rows of its audit tables, read-only beside its writer; none before it made them."""
        return audit_rows(self.state, sql, *args, missing_ok=True)

    @staticmethod
    def wait(predicate, timeout: float = 30, what: str = "a condition"):
        """The predicate's first true value within `timeout` seconds; else it fails, naming `what`."""
        value = poll(predicate, timeout)
        if not value:
            raise AssertionError(f"timed out waiting for {what}")
        return value

    def _healthy(self) -> bool:
        assert self.proc.poll() is None, f"aiogw serve exited {self.proc.returncode}: {self.stderr()[-3000:]}"
        try:
            return httpx.get(f"{self.base}/healthz").status_code == 200
        except httpx.TransportError:
            return False


# Routes, state and audit, no limits: a format template ({state}, {fake}) to which a
# test adds its own tables. The openai route also forwards an endpoint the gateway
# cannot meter, on purpose.
BASE_TOML = """
[server]
host = "127.0.0.1"
port = 0
[state]
path = "{state}"
[audit]
flush_interval = 0.02
""" + allowing(FAKE_ROUTES, "openai", "POST /v1/audio/*")


class LimitedGateway:
    """A gateway of its own on the session's loop, from `toml` (BASE_TOML by default;
    `extra` is appended), its finished exchanges in `exchanges` after `sinks`."""

    def __init__(self, servers, fake, fake_url, state, *, toml=BASE_TOML, extra="", sinks=()):
        self.servers, self.fake, self.state = servers, fake, state
        self.path = state.with_suffix(".toml")
        self.path.write_text(textwrap.dedent(toml).format(state=state, fake=fake_url) + extra)
        self.cfg = config.load(self.path, env=PROVIDER_KEYS)
        self.exchanges = []
        self.runner, port = servers.run(start(self.cfg, sinks=[*sinks, self.exchanges.append]))
        self.base = f"http://127.0.0.1:{port}/llm-gateway"

    def stop(self):
        self.servers.run(self.runner.cleanup())

    def reload(self) -> list[str]:
        """What SIGHUP does (aiogw.app.reload), from the file as it is now."""
        from aiogw.app import reload

        async def apply() -> list[str]:  # on the gateway's loop, as the signal handler runs
            return await reload(self.runner.app, config.load(self.path, env=PROVIDER_KEYS))

        return self.servers.run(apply())

    def key(self, user: str) -> str:
        return create_key(self.state, user)[1]

    def anthropic(self, user: str, **kw) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=f"{self.base}/anthropic", api_key=self.key(user), **kw)

    def wait_for_audit(self, sql: str, count: int, timeout: float = 10.0) -> list[tuple]:
        """The rows of `sql` as tuples, once there are `count` (else the last read)."""
        rows: list[tuple] = []

        def enough() -> bool:
            nonlocal rows
            conn = sqlite3.connect(f"file:{self.state}?mode=ro", uri=True)
            try:
                rows = conn.execute(sql).fetchall()
            except sqlite3.OperationalError:  # the writer has not made its tables yet
                rows = []
            finally:
                conn.close()
            return len(rows) >= count

        poll(enough, timeout)
        return rows

    def last(self, user: str, timeout: float = 5.0):
        """The user's newest finished exchange (the handler may still be ending)."""
        assert poll(lambda: self.of(user, timeout=0), timeout), f"no finished exchange of {user} within {timeout} s"
        return self.of(user)[-1]

    def of(self, user: str, timeout: float = 5.0, count: int = 0) -> list:
        """The user's finished exchanges, once no request is open and the finisher has
        handed every one to the sinks (usage and cost known) and, with `count`, once
        there are that many (a client has its answer before the handler ends)."""
        runtime = self.runner.app[RUNTIME]

        def done() -> bool:
            found = [ex for ex in self.exchanges if ex.user == user]
            return len(found) >= count and not runtime.proxy.inflight and runtime.parts.finisher.idle

        poll(done, timeout)
        return [ex for ex in self.exchanges if ex.user == user]


def _copy(pipe: IO[bytes], path: Path) -> None:
    with path.open("ab") as out:
        for line in iter(pipe.readline, b""):
            out.write(line)
            out.flush()
