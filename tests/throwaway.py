"""What every server the tests start for themselves shares (tests.pgserver,
tests.redisserver): a folder of its own, a process stopped by its own PID, the end of
its log for a failure's message, and removal when the run ends."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import pytest

S = TypeVar("S", bound="Throwaway")


class Throwaway:
    """A server process and its folder; a subclass starts it (`start`) and names its
    log (`LOG`, in the folder)."""

    LOG = "server.log"

    def __init__(self) -> None:
        self.folder: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        """The server's PID while it runs."""
        return self._process.pid if self.running else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        """The end of the server's log, for a failure's message."""
        if self.folder is None or not (self.folder / self.LOG).exists():
            return "(no log)"
        return "\n".join((self.folder / self.LOG).read_text(errors="replace").splitlines()[-lines:])

    def _halt(self, sig: int, timeout: float) -> None:
        """`sig` to its own PID, and wait; SIGKILL after `timeout` seconds."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def stop(self) -> None:
        self._halt(signal.SIGTERM, 30)

    def close(self) -> None:
        """Stop the server and remove its folder."""
        self.stop()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def __enter__(self) -> Throwaway:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def session_server(request: pytest.FixtureRequest, key: pytest.StashKey[S], find: Callable[[], Any],
                   make: Callable[[Any], S], missing: type[Exception], required: str) -> S:
    """The session's one server of a kind, started on first use and closed when the run
    ends. pytest makes a session fixture per module that imports it; the server lives in
    the config's stash instead, so every module shares one. `find` locates its binaries
    (`missing` when they are not installed: a skip, or a failure when the environment
    variable `required` is set, as in CI)."""
    server = request.config.stash.get(key, None)
    if server is None:
        try:
            found = find()
        except missing as exc:
            if os.environ.get(required):
                pytest.fail(f"{required} is set and {exc}")
            pytest.skip(str(exc))
        server = make(found)
        request.config.add_cleanup(server.close)
        server.start()
        request.config.stash[key] = server
    return server
