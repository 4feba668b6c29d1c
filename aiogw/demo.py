"""`aiogw demo`: the gateway at work in a few seconds, offline and without provider keys.

It starts the fake upstream and the gateway on free 127.0.0.1 ports, with a config and
a state database in a temporary directory, and plays a short agent session through the
official SDKs, the way an agent would: a streamed answer, a tool call and its result, a
tool result carrying a prompt injection, personal data redacted for one user, and a
request refused by a rate limit. Then it stops the gateway (which flushes the audit)
and prints what an operator reads: `aiogw audit list`, `audit show`, `usage`.

Both servers run on one background thread with their own event loop, so the session
itself can use the SDKs' ordinary sync clients. The session's steps are in
`aiogw.demo_session`; this module sets the stage, plays them and shows the result.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

from aiogw import cli, cli_state, config, keys
from aiogw.demo_session import ANSWER, STEPS, DemoFailed, Session, say
from aiogw.fake_upstream import FakeConfig, FakeUpstream
from aiogw.store.base import Filters

# The SDKs the session speaks through: setup.cfg's `demo` extra (google-genai too, whose
# step is left out when it is missing).
NEEDS = ("anthropic", "openai")
# The provider keys the fake accepts, under the variables the demo config names; the
# gateway reads them from its environment, as it would read real ones.
PROVIDER_ENV = {
    "AIOGW_DEMO_ANTHROPIC_KEY": FakeConfig.anthropic_key,
    "AIOGW_DEMO_OPENAI_KEY": FakeConfig.openai_key,
    "AIOGW_DEMO_GEMINI_KEY": FakeConfig.gemini_key,
}

CONFIG_TOML = """\
# Written by `aiogw demo`: every route points at the local fake provider.
[server]
host = "127.0.0.1"
port = 0

[state]
path = "aiogw.db"             # relative to this file

[audit]
flush_interval = 0.05

[log]
exchanges = false             # the one-line-per-exchange log on stdout: the demo shows the audit instead

[[routes]]
name = "anthropic"
dialect = "anthropic"
upstream = "{fake}"
credential = {{ env = "AIOGW_DEMO_ANTHROPIC_KEY" }}

[[routes]]
name = "openai"
dialect = "openai"
upstream = "{fake}"
credential = {{ env = "AIOGW_DEMO_OPENAI_KEY" }}

[[routes]]
name = "google"
dialect = "gemini"
upstream = "{fake}"
credential = {{ env = "AIOGW_DEMO_GEMINI_KEY" }}

[[users]]
name = "alice"                # the defaults: injections in tool results blocked, personal data logged

[[users]]
name = "bob"
guards = {{ pii = "redact" }}   # personal data is masked before it leaves

[[users]]
name = "carol"
limits = {{ requests_per_minute = 1 }}
"""


def run(keep: bool) -> int:
    """Play the demo; returns the exit code (0 ok, 1 a step went wrong, 2 SDKs missing)."""
    missing = [name for name in NEEDS if not _importable(name)]
    if missing:
        print(
            f"aiogw demo needs the {' and '.join(missing)} SDK{'s' if len(missing) > 1 else ''}, which a plain "
            "install leaves out: run `pip install 'aiogw[demo]'` (in a checkout: `make install`, or "
            "`pip install -e '.[dev]'`).",
            file=sys.stderr,
        )
        return 2
    started = time.perf_counter()
    state_dir = Path(tempfile.mkdtemp(prefix="aiogw-demo-"))
    os.environ.update(PROVIDER_ENV)
    print("aiogw demo: a fake provider, the gateway and an agent session, all on this machine.")
    print("No provider key and no network are needed; nothing here reaches a real provider.")
    try:
        with _quiet_logs(state_dir / "gateway.log"):
            _play(state_dir)
            _operator_view(state_dir / "aiogw.toml")
    except DemoFailed as exc:
        _fail(f"The demo stopped: {exc}", state_dir)
        _leave(state_dir, keep=True)  # whatever was asked: it holds what went wrong
        return 1
    except BrokenPipeError:  # `aiogw demo | head`: the reader left; the CLI exits quietly
        if not keep:
            shutil.rmtree(state_dir, ignore_errors=True)
        raise
    except Exception as exc:  # an unexpected failure: one readable line, no traceback
        _fail(f"The demo failed: {type(exc).__name__}: {exc}", state_dir)
        _leave(state_dir, keep=True)
        return 1
    except KeyboardInterrupt:
        _fail("Interrupted.", None)
        _leave(state_dir, keep)
        return 130
    print(f"\nDone in {time.perf_counter() - started:.1f} s.")
    _leave(state_dir, keep)
    return 0


def _fail(message: str, state_dir: Path | None) -> None:
    sys.stdout.flush()  # the narration so far first, then why it stopped
    print("\n" + " ".join(message.split()), file=sys.stderr)
    if state_dir is not None:
        print(f"The gateway's log may say more: {state_dir / 'gateway.log'}", file=sys.stderr)
    sys.stderr.flush()


def _leave(state_dir: Path, keep: bool) -> None:
    if not keep:
        shutil.rmtree(state_dir, ignore_errors=True)
        print("The temporary state was removed; `aiogw demo --keep` keeps it to look further.")
        return
    path = state_dir / "aiogw.toml"
    print(f"State kept in {state_dir} (config, audit database, gateway log). To look further:")
    for command in ("audit list", "audit list --findings", "audit conversation <id>", "usage --by model"):
        print(f"  aiogw {command} --config {path}")
    print(f"Remove it with: rm -r {state_dir}")


def _importable(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def _quiet_logs(path: Path) -> Iterator[None]:
    """Send the gateway's and aiohttp's log records to a file, not the terminal: the
    demo's own lines are what a newcomer should read."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    saved = []
    for name in ("aiogw", "aiohttp"):
        logger = logging.getLogger(name)
        saved.append((logger, logger.propagate, logger.level))
        logger.addHandler(handler)
        logger.propagate = False
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        for logger, propagate, level in saved:
            logger.removeHandler(handler)
            logger.propagate, logger.level = propagate, level
        handler.close()


class _Servers:
    """One event loop in a daemon thread, where the fake and the gateway serve."""

    def __init__(self) -> None:
        import uvloop

        self.loop = uvloop.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="aiogw-demo", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def _play(state_dir: Path) -> None:
    """Start both servers, play the session, stop them."""
    from aiogw.app import start

    servers = _Servers()
    fake = FakeUpstream(FakeConfig(text=ANSWER, chunks=8))
    runner = None
    try:
        fake_url = f"http://127.0.0.1:{servers.run(fake.start())}"
        config_path = state_dir / "aiogw.toml"
        config_path.write_text(CONFIG_TOML.format(fake=fake_url))
        cfg = config.load(config_path)
        user_keys = {user.name: _new_key(cfg, user.name) for user in cfg.users}
        runner, port = servers.run(start(cfg))  # compiles the guards' Hyperscan databases
        session = Session(f"http://127.0.0.1:{port}{cfg.server.mount}", user_keys, fake)
        print("\nSetting up")
        say(f"fake provider (Anthropic, OpenAI and Gemini APIs) on {fake_url}")
        say(f"gateway on {session.gateway}, config and state in {state_dir}")
        say("users: alice (default guards), bob (personal data redacted), carol (1 request a minute)")
        for number, (title, step) in enumerate(STEPS, 1):
            print(f"\n{number}. {title}")
            step(session)
    finally:
        # Stopping the gateway cleanly closes the audit writer, which commits every
        # queued record: the operator's view below reads a complete trail.
        if runner is not None:
            servers.run(runner.cleanup())
        servers.run(fake.stop())
        servers.close()


def _new_key(cfg: config.Config, user: str) -> str:
    record, key, digest = keys.new_key(user)
    cli_state.run(cfg, lambda store: store.create_key(record, digest), create=True)
    return key


def _operator_view(config_path: Path) -> None:
    """The gateway has stopped and flushed its audit: show what an operator reads."""
    print("\nWhat an operator sees")
    cfg = config.load(config_path)
    blocked = cli_state.run(cfg, lambda store: store.list_rows(Filters(user="alice", outcome="refused"), 1))
    _command("Every exchange, refused ones included, newest first (F: guard findings):",
             ["audit", "list", "--config", str(config_path)])
    if blocked:
        _command("One exchange in full: the blocked injection, with its findings and payloads:",
                 ["audit", "show", blocked[0]["id"], "--config", str(config_path)], max_lines=40)
    _command("Tokens and cost by user, from the audit:", ["usage", "--config", str(config_path)])
    print("\nA gateway run by `aiogw serve` also writes one JSON line per exchange on stdout, for")
    print("journald and log shippers; the demo's config turns that off to keep this page readable.")


def _command(what: str, argv: list[str], max_lines: int = 0) -> None:
    """Run an `aiogw` command in this process and print its output under its command line."""
    print(f"\n{what}\n$ aiogw {' '.join(argv)}")
    out, err = io.StringIO(), io.StringIO()
    # stderr only names the state database; the command line above already says it.
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    lines = out.getvalue().rstrip("\n").splitlines()
    if max_lines and len(lines) > max_lines:
        lines = [*lines[:max_lines], f"... ({len(lines) - max_lines} more lines)"]
    print("\n".join(lines))
    if code != 0:
        raise DemoFailed(f"`aiogw {' '.join(argv)}` exited {code}: {err.getvalue().strip()}")

