"""`aiogw serve` as an operator meets it: a port already taken, a second stop signal."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import PROVIDER_KEYS
from tests.test_exchange_log import serving
from tests.test_reload_drain import gated, wait


@pytest.fixture
def served(gateway, tmp_path):
    yield from serving(gateway, tmp_path)


@pytest.mark.timeout(90)
def test_a_taken_port_is_a_clear_error_and_exit_2_not_a_hang(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = tmp_path / "aiogw.toml"
        cfg.write_text(f'[server]\nport = {port}\n[state]\npath = "{tmp_path / "state.db"}"\n'
                       '[[routes]]\nname = "anthropic"\ndialect = "anthropic"\nupstream = "http://127.0.0.1:9"\n'
                       'credential = { env = "FAKE_ANTHROPIC" }\n')
        done = subprocess.run([sys.executable, "-m", "aiogw", "serve", "--config", str(cfg)], capture_output=True,
                              text=True, timeout=60, env={"PATH": "/usr/bin:/bin", **PROVIDER_KEYS})
    assert done.returncode == 2
    assert f"aiogw: cannot listen on 127.0.0.1:{port}:" in done.stderr and "set [server] port" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.timeout(120)
@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_second_signal_cuts_the_drain_short(served, second):
    s = served(drain=3600)  # without the second signal, the stream would hold the stop for an hour
    stream = gated(s.anthropic, f"held-{time.monotonic_ns()}", "never sent in full")
    s.send(signal.SIGTERM)
    wait(lambda: "aiogw stopping: 1 open exchange," in s.stderr(), what="the drain to begin")
    s.proc.send_signal(second)
    assert s.proc.wait(timeout=60) == 0
    stream.join(30)
    assert stream.final is None and "message_stop" not in stream.events
    (row,) = s.audit("SELECT outcome, reason FROM exchanges")
    assert row == {"outcome": "shutdown", "reason": "gateway stopping: cut by a second signal"}
    assert "cutting 1 open exchanges" in s.stderr() and "Traceback" not in s.stderr()
