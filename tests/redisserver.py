"""A throwaway Redis server for the tests, from the installed binary.

`RedisServer` serves a Redis of its own on a free port of 127.0.0.1, its working folder
a temporary one, and removes it on `close()`. It never touches a Redis that was already
running: it starts its own process, and stops only that process, by its PID. No
persistence by default (`--save "" --appendonly no`): a stop loses the data, as a
crash of a cache would; `appendonly=True` keeps it across a stop (fsync per write).
`password` sets `requirepass`; `url` never holds it (the gateway reads a password
from { env } or { file }, never from its URL).

A test module takes the fixtures by importing them (conftest.py stays as it is):

    from tests.redisserver import redis_server_fixture, redis_url_fixture  # noqa: F401

    def test_limits(redis_url: str) -> None: ...

`redis_server` (session) is the `RedisServer`, without a password, shared by every
module (it lives in the config's stash, as tests/pgserver.py explains); `redis_url`
(function) is the URL of one of its numbered databases, emptied for the test. Without
a redis-server binary the tests that use them are skipped, unless AIOGW_REDIS_REQUIRED
is set, where they fail.

`stop()` and `start()` block for a moment, so an async test calls them with
`asyncio.to_thread`. `start()` after `stop()` serves on the same port again: an
outage and a recovery, as a client sees them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import hiredis
import pytest

from tests.throwaway import Throwaway, session_server

DEFAULT_BINARY = Path("/usr/bin/redis-server")
START_TIMEOUT = 20.0
STOP_TIMEOUT = 20.0
# More numbered databases than Redis's 16, so that each test's `redis_url` is one of
# its own in a long run (they are reused, emptied, after that).
DATABASES = 64


class RedisNotFound(RuntimeError):
    """No redis-server binary on this machine."""


class RedisError(RuntimeError):
    """The server failed to start, or answered a command with an error."""


def find_binary() -> Path:
    """redis-server: $AIOGW_REDIS_SERVER, else PATH's, else /usr/bin/redis-server."""
    if explicit := os.environ.get("AIOGW_REDIS_SERVER"):
        if not Path(explicit).is_file():
            raise RedisNotFound(f"AIOGW_REDIS_SERVER={explicit} is not a file: point it at a redis-server binary")
        return Path(explicit)
    found = shutil.which("redis-server")
    if found:
        return Path(found)
    if DEFAULT_BINARY.is_file():
        return DEFAULT_BINARY
    raise RedisNotFound(
        "no redis-server binary found: run `make system-deps` as root (Debian's redis-server package), "
        "or set AIOGW_REDIS_SERVER to one"
    )


def free_port() -> int:
    """A port of 127.0.0.1 nothing listens on (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def encode(*args: str | bytes | int | float) -> bytes:
    """One command in RESP: an array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class RedisServer(Throwaway):
    """One throwaway server; `start()` makes its folder on first use, `close()` removes it."""

    LOG = "redis.log"

    def __init__(self, binary: Path | None = None, *, password: str | None = None, appendonly: bool = False) -> None:
        super().__init__()
        self.binary = binary or find_binary()
        self.password = password
        self.appendonly = appendonly
        self.port = 0  # chosen by the first start, kept by the next ones
        self.settings_given: list[str] = []  # more `--name value` arguments, for a test that needs them
        self._next_database = 1  # 0 is `url`'s; `new_database` hands out the others

    # --- what a test reads -----------------------------------------------------------

    def database_url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    @property
    def url(self) -> str:
        """redis://127.0.0.1:PORT/0, without the password."""
        return self.database_url(0)

    # --- its life --------------------------------------------------------------------

    def start(self) -> None:
        """Start the server and return once it answers; again after `stop()`, on the
        same port (with the same data only with `appendonly`)."""
        if self.running:
            return
        if self.folder is not None:
            self._launch()
            return
        self.folder = Path(tempfile.mkdtemp(prefix="aiogw-redis-", dir="/tmp"))
        # The port is free when chosen and taken a moment later; rarely, by someone else.
        for attempt in range(3):
            self.port = free_port()
            try:
                self._launch()
                return
            except RedisError:
                if attempt == 2 or "Address already in use" not in self.log_tail():
                    raise

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM to its own PID, and wait; SIGKILL after `timeout` seconds."""
        self._halt(signal.SIGTERM, timeout)

    # --- talking to it ---------------------------------------------------------------

    def command(self, *args: str | bytes | int | float, db: int = 0, timeout: float = 5.0) -> Any:
        """One command on a connection of its own (AUTH and SELECT first when needed);
        its reply as hiredis gives it (bytes, int, None, lists). An error reply raises."""
        commands: list[tuple] = []
        if self.password is not None:
            commands.append(("AUTH", self.password))
        if db:
            commands.append(("SELECT", db))
        commands.append(args)
        replies = self._exchange(commands, timeout)
        for sent, reply in zip(commands, replies, strict=True):
            if isinstance(reply, hiredis.ReplyError):
                raise RedisError(f"{sent[0]!s}: {reply}")
        return replies[-1]

    def ping(self) -> bool:
        """Whether the server answers PONG now."""
        try:
            return self.command("PING", timeout=1.0) == b"PONG"
        except (OSError, RedisError):
            return False

    def new_database(self) -> str:
        """The URL of a numbered database of its own, emptied."""
        db = self._next_database
        self._next_database = db % (DATABASES - 1) + 1
        self.command("FLUSHDB", db=db)
        return self.database_url(db)

    # --- the parts -------------------------------------------------------------------

    def _arguments(self) -> list[str]:
        assert self.folder is not None
        arguments = [
            str(self.binary), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
            # No --pidfile: in the foreground Redis writes none unless told, and its
            # default path (/var/run/redis_PORT.pid) is the system's.
            "--daemonize", "no", "--logfile", str(self.folder / "redis.log"), "--databases", str(DATABASES),
        ]
        if self.appendonly:
            arguments += ["--save", "", "--appendonly", "yes", "--appendfsync", "always"]
        else:
            arguments += ["--save", "", "--appendonly", "no"]
        if self.password is not None:
            arguments += ["--requirepass", self.password]
        return arguments + self.settings_given

    def _launch(self) -> None:
        # Its own session: a Ctrl-C in the terminal reaches pytest, whose teardown stops
        # the server, not the server behind its back.
        self._process = subprocess.Popen(
            self._arguments(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            cwd=self.folder, start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                raise RedisError(f"redis-server exited while starting; its log ends:\n{self.log_tail()}")
            if self._answers():
                return
            time.sleep(0.01)
        self.stop()
        raise RedisError(f"redis-server did not answer within {START_TIMEOUT} s; its log ends:\n{self.log_tail()}")

    def _answers(self) -> bool:
        """Whether it takes commands: any reply but LOADING (an AOF being read)."""
        try:
            (reply,) = self._exchange([("PING",)], 1.0)
        except OSError:
            return False
        return not (isinstance(reply, hiredis.ReplyError) and str(reply).startswith("LOADING"))

    def _exchange(self, commands: list[tuple], timeout: float) -> list[Any]:
        with socket.create_connection(("127.0.0.1", self.port), timeout) as sock:
            sock.sendall(b"".join(encode(*c) for c in commands))
            reader = hiredis.Reader()
            replies: list[Any] = []
            while len(replies) < len(commands):
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("redis-server closed the connection")
                reader.feed(data)
                while (reply := reader.gets()) is not False:
                    replies.append(reply)
            return replies


# --- the fixtures --------------------------------------------------------------------

_SERVER = pytest.StashKey[RedisServer]()


@pytest.fixture(scope="session", name="redis_server")
def redis_server_fixture(request: pytest.FixtureRequest) -> RedisServer:
    """The session's Redis server, started on first use."""
    return session_server(request, _SERVER, find_binary, RedisServer, RedisNotFound, "AIOGW_REDIS_REQUIRED")


@pytest.fixture(name="redis_url")
def redis_url_fixture(redis_server: RedisServer) -> str:
    """The URL of an emptied database of the session's server, for one test."""
    if not redis_server.running:  # an earlier test stopped it and failed before starting it
        redis_server.start()
    return redis_server.new_database()
