"""The sd_notify client against a real datagram socket standing in for systemd's."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import free_port

from aiogw.notify import Notifier

pytestmark = pytest.mark.timeout(60)


class FakeSystemd:
    """The receiving end of NOTIFY_SOCKET: one bound AF_UNIX datagram socket."""

    def __init__(self, env_value: str, bind_address: str) -> None:
        self.env_value = env_value  # what systemd would put in NOTIFY_SOCKET
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(bind_address)

    def recv(self, timeout: float = 10.0) -> str:
        self.sock.settimeout(timeout)
        return self.sock.recv(4096).decode()

    def close(self) -> None:
        self.sock.close()


def path_systemd(tmp_path: Path) -> FakeSystemd:
    path = str(tmp_path / "notify.sock")
    assert len(path) < 100, "AF_UNIX paths are limited to 108 bytes; shorten the test name"
    return FakeSystemd(path, path)


def abstract_systemd() -> FakeSystemd:
    name = f"aiogw-test-{uuid.uuid4().hex}"
    return FakeSystemd("@" + name, "\0" + name)


@pytest.fixture(params=["path", "abstract"])
def systemd(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FakeSystemd]:
    fake = path_systemd(tmp_path) if request.param == "path" else abstract_systemd()
    yield fake
    fake.close()


def test_messages_arrive_exactly(systemd: FakeSystemd) -> None:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": systemd.env_value})
    assert notifier.enabled
    assert notifier.ready("listening on 127.0.0.1:8080")
    assert systemd.recv() == "READY=1\nSTATUS=listening on 127.0.0.1:8080"
    assert notifier.status("3 streams open")
    assert systemd.recv() == "STATUS=3 streams open"
    assert notifier.ping()
    assert systemd.recv() == "WATCHDOG=1"
    assert notifier.reloading("reloading /etc/aiogw/aiogw.toml")
    reloading, monotonic, status = systemd.recv().split("\n")
    assert (reloading, status) == ("RELOADING=1", "STATUS=reloading /etc/aiogw/aiogw.toml")
    assert monotonic.startswith("MONOTONIC_USEC=") and int(monotonic.split("=")[1]) > 0
    assert notifier.stopping("draining 3 streams")
    assert systemd.recv() == "STOPPING=1\nSTATUS=draining 3 streams"
    assert notifier.ready()
    assert systemd.recv() == "READY=1"
    notifier.close()


def test_a_status_cannot_inject_another_assignment(systemd: FakeSystemd) -> None:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": systemd.env_value})
    notifier.status("bad config\nREADY=1")
    assert systemd.recv() == "STATUS=bad config READY=1"
    notifier.close()


def test_without_notify_socket_nothing_happens(caplog: pytest.LogCaptureFixture) -> None:
    notifier = Notifier.from_env({"WATCHDOG_USEC": "30000000"})
    assert not notifier.enabled
    assert notifier.watchdog_interval is None  # no one would hear the pings
    assert not notifier.ready("listening")
    assert not notifier.status("x")
    assert not notifier.stopping("bye")
    assert not notifier.ping()
    asyncio.run(asyncio.wait_for(notifier.watchdog(), 5))  # returns at once
    assert not notifier.socket_open  # not even a socket was made
    assert not caplog.records


def test_a_notify_socket_that_is_not_a_socket_address_is_ignored(caplog: pytest.LogCaptureFixture) -> None:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": "relative/notify.sock"})
    assert not notifier.enabled and not notifier.ready("x")
    assert "ignoring NOTIFY_SOCKET" in caplog.text


def test_a_socket_that_went_away_does_not_raise(systemd: FakeSystemd, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="aiogw.notify")
    notifier = Notifier.from_env({"NOTIFY_SOCKET": systemd.env_value})
    assert notifier.status("up")
    systemd.close()
    if not systemd.env_value.startswith("@"):
        os.unlink(systemd.env_value)
    assert not notifier.ping()
    assert not notifier.stopping("bye")
    assert not notifier.ready("again")
    warnings = [r for r in caplog.records if r.name == "aiogw.notify"]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING  # once, not per ping
    assert systemd.env_value in warnings[0].getMessage()
    notifier.close()


def test_a_socket_that_never_existed_does_not_raise(tmp_path: Path) -> None:
    for value in (str(tmp_path / "missing.sock"), f"@aiogw-nobody-{uuid.uuid4().hex}"):
        notifier = Notifier.from_env({"NOTIFY_SOCKET": value})
        assert notifier.enabled and not notifier.ready("x")
        notifier.close()


@pytest.mark.parametrize(
    ("extra", "interval"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "20000"}, 0.01),
        ({}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "<self>"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "<other>"}, None),
    ],
)
def test_watchdog_interval_is_half_the_timeout(tmp_path: Path, extra: dict[str, str], interval: float | None) -> None:
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), **extra}
    if "WATCHDOG_PID" in env:
        env["WATCHDOG_PID"] = str(os.getpid() if env["WATCHDOG_PID"] == "<self>" else os.getpid() + 1)
    assert Notifier.from_env(env).watchdog_interval == interval


async def test_watchdog_pings_repeatedly(systemd: FakeSystemd) -> None:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": systemd.env_value, "WATCHDOG_USEC": "20000"})
    systemd.sock.setblocking(False)
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(notifier.watchdog())
    try:
        pings = [await asyncio.wait_for(loop.sock_recv(systemd.sock, 4096), 10) for _ in range(3)]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        notifier.close()
    assert pings == [b"WATCHDOG=1"] * 3


SERVE_TOML = """
[server]
host = "127.0.0.1"
port = 0
[state]
path = "{state}"
[guards]
enabled = false
[[routes]]
name = "anthropic"
dialect = "anthropic"
upstream = "http://127.0.0.1:{dead_port}"
credential = {{ env = "NOT_NEEDED" }}
"""


def test_serve_tells_systemd_ready_watchdog_stopping(tmp_path: Path) -> None:
    """`aiogw serve` as systemd starts it under Type=notify with WatchdogSec=.

    No request is made, so the route may point at a closed port.
    """
    systemd = path_systemd(tmp_path)
    path = tmp_path / "aiogw.toml"
    path.write_text(textwrap.dedent(SERVE_TOML).format(state=tmp_path / "state.db", dead_port=free_port()))
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiogw", "serve", "--config", str(path), "--port", str(free_port())],
        # 0.4 s timeout: pings every 0.2 s, so one arrives soon after READY.
        env={"PATH": "/usr/bin:/bin", "NOTIFY_SOCKET": systemd.env_value, "WATCHDOG_USEC": "400000"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        seen = wait_for_message(systemd, proc, "READY=1")
        assert any(line.startswith("STATUS=") for line in seen[-1].splitlines()), seen
        wait_for_message(systemd, proc, "WATCHDOG=1")
        proc.send_signal(signal.SIGTERM)
        wait_for_message(systemd, proc, "STOPPING=1")
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate()
        systemd.close()
    assert "Traceback" not in err and "cannot notify systemd" not in err


def wait_for_message(systemd: FakeSystemd, proc: subprocess.Popen, line: str, timeout: float = 30) -> list[str]:
    """Datagrams up to and including the first holding `line`; fails if the process dies."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            message = systemd.recv(timeout=0.5)
        except TimeoutError:
            # A process sends before it exits: once it is gone, nothing more will come.
            if proc.poll() is not None:
                pytest.fail(f"aiogw exited {proc.returncode} before sending {line}; got {seen}")
            continue
        seen.append(message)
        if line in message.splitlines():
            return seen
    pytest.fail(f"no {line} within {timeout} s; got {seen}")
