"""A throwaway PostgreSQL server for the tests, from the installed binaries.

`PgServer` makes a cluster in a temporary folder (initdb), serves it on a free port of
127.0.0.1 and removes it on `close()`. Two roles: the superuser `postgres`, and `aiogw`,
which logs in with a password and may do nothing but own its databases, as the gateway's
own role would. `create_database` gives a test a clean database in a few tens of
milliseconds, so one cluster serves the whole session.

A test module takes the fixtures by importing them (conftest.py stays as it is):

    from tests.pgserver import pg_server_fixture, pg_url_fixture  # noqa: F401

    async def test_store(pg_url: str) -> None:
        conn = await asyncpg.connect(pg_url)

The functions' names differ from the fixtures' so that a test's `pg_url` argument does
not shadow the import (ruff's F811). Not `pytest_plugins = ["tests.pgserver"]`: once
any module has imported tests.pgserver, pytest warns that it cannot rewrite its asserts,
and warnings are errors here.

`pg_server` (session) is the `PgServer`; `pg_url` (function) is the URL of a fresh
database owned by `aiogw`, dropped after the test. All modules share the one server (see
`pg_server`). Without PostgreSQL binaries the tests that use them are skipped, unless
AIOGW_PG_REQUIRED is set (as .ci/run does), where they fail.

The server is a child process of the test run: `stop()` and `start()` block for a moment
(a fast shutdown, a start), so an async test calls them with `asyncio.to_thread`.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.throwaway import Throwaway, session_server

# What `stop(mode)` sends the postmaster; "immediate" is a crash as far as the data goes
# (the next start recovers from the WAL).
STOP_SIGNALS = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}

# Safe for a throwaway cluster: fsync and full-page writes only matter when the machine
# itself crashes. synchronous_commit stays on, so a commit the client saw survives a
# `stop("immediate")` as it would on a real server. 100 connections, as a stock server has,
# for the tests that load it; small shared buffers, as the databases are tiny.
SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "full_page_writes": "off",
    "shared_buffers": "16MB",
    "max_connections": "100",
}

# Unix-socket connections (the folder is the server user's, mode 0700, so only that user
# and root reach it) are trusted; TCP asks every role for its password.
HBA = "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n"

ROLE = "aiogw"
SUPERUSER = "postgres"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class PgNotFound(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


class PgError(RuntimeError):
    """The server or one of its tools failed; the message carries its output."""


def find_bindir() -> Path:
    """The folder of initdb and postgres: $AIOGW_PG_BIN, else `pg_config --bindir`, else
    the newest /usr/lib/postgresql/*/bin (Debian), else wherever PATH has initdb."""
    if explicit := os.environ.get("AIOGW_PG_BIN"):
        if not (Path(explicit) / "initdb").is_file():
            raise PgNotFound(f"AIOGW_PG_BIN={explicit} has no initdb: point it at the folder of PostgreSQL's initdb and postgres")
        return Path(explicit)
    candidates = []
    if pg_config := shutil.which("pg_config"):
        # On Debian pg_config may come from libpq-dev alone, naming a folder with no server.
        done = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if done.returncode == 0:
            candidates.append(Path(done.stdout.strip()))
    debian = Path("/usr/lib/postgresql").glob("*/bin")
    candidates += sorted(debian, key=lambda p: [int(n) for n in re.findall(r"\d+", p.parent.name)], reverse=True)
    if initdb := shutil.which("initdb"):
        candidates.append(Path(initdb).parent)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "postgres").is_file():
            return folder
    raise PgNotFound(
        "no PostgreSQL server binaries (initdb, postgres) found: run `make system-deps` as root "
        "(Debian's postgresql package), or set AIOGW_PG_BIN to the folder that has them"
    )


def free_port() -> int:
    """A port of 127.0.0.1 nothing listens on (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _major_version(bindir: Path) -> int:
    """PostgreSQL's major version, from `postgres --version` ("postgres (PostgreSQL) 15.20 ...")."""
    done = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=False)
    found = re.search(r"\) (\d+)", done.stdout)
    if done.returncode != 0 or not found:
        raise PgError(f"{bindir / 'postgres'} --version said {done.stdout.strip() or done.stderr.strip()!r}: is it PostgreSQL?")
    major = int(found[1])
    if major < 13:
        raise PgError(f"PostgreSQL {major} in {bindir} is too old (DROP DATABASE ... WITH (FORCE) needs 13): set AIOGW_PG_BIN to a newer one")
    return major


def _server_user() -> pwd.struct_passwd | None:
    """Whom initdb and postgres run as: None for the current user; the `postgres` system
    user when we are root, as both refuse to run as root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SUPERUSER)
    except KeyError:
        raise PgError(
            "running as root, and PostgreSQL refuses to run as root, but there is no `postgres` "
            "user to run it as: install Debian's postgresql package (it makes one) or "
            "`useradd --system postgres`, or run the tests as another user"
        ) from None


class PgServer(Throwaway):
    """One throwaway cluster; `start()` makes it on first use, `close()` removes it.

    `url` is the `aiogw` role's URL of its own database `aiogw`; `superuser_url` is
    `postgres`'s. Both keep working across `stop()` and `start()`: the data folder, the
    port and the passwords stay.
    """

    def __init__(self, bindir: Path | None = None) -> None:
        super().__init__()
        self.bindir = bindir or find_bindir()
        self.major = _major_version(self.bindir)
        self.password = secrets.token_urlsafe(18)
        self.superuser_password = secrets.token_urlsafe(18)
        self.port = 0  # chosen by the first start
        self._user = _server_user()
        self.settings_given = dict(SETTINGS)  # the server's -c settings (bench.pgcluster gives its own)
        self.launcher: list[str] = []  # a command the server runs under (bench.pgcluster: taskset)

    # --- what a test reads -----------------------------------------------------------

    def database_url(self, name: str, *, superuser: bool = False) -> str:
        user, password = (SUPERUSER, self.superuser_password) if superuser else (ROLE, self.password)
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{name}"

    @property
    def url(self) -> str:
        return self.database_url(ROLE)

    @property
    def superuser_url(self) -> str:
        return self.database_url("postgres", superuser=True)

    # --- its life --------------------------------------------------------------------

    def start(self) -> None:
        """Make the cluster (first call), start the server, return once it accepts
        connections. Again after `stop()`: the same data, port and roles."""
        if self.running:
            return
        if self.folder is not None:
            self._launch()
            return
        self._initdb()
        # The port is free when chosen and taken a moment later; rarely, by someone else.
        for attempt in range(3):
            self.port = free_port()
            try:
                self._launch()
                break
            except PgError:
                if attempt == 2 or "could not bind" not in self.log_tail():
                    raise
        self._bootstrap()

    def stop(self, mode: str = "fast", timeout: float = STOP_TIMEOUT) -> None:
        """Stop the server by its PID: "fast" (default) ends the sessions and checkpoints,
        "smart" waits for them, "immediate" is a crash. SIGKILL after `timeout` seconds."""
        self._halt(STOP_SIGNALS[mode], timeout)

    # --- databases -------------------------------------------------------------------

    def create_database(self, name: str | None = None) -> str:
        """A new empty database owned by `aiogw` (a random name by default); its URL."""
        name = name or f"t_{secrets.token_hex(6)}"
        self._check_name(name)
        self.sql(self._create_statement(name))
        return self.database_url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, ending the sessions a test left open on it."""
        self._check_name(name)
        self.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def sql(self, *statements: str, database: str = "postgres") -> str:
        """Run statements as the superuser (psql over the Unix socket, each on its own,
        so CREATE DATABASE may be one of them); what they printed."""
        if not self.running:
            raise PgError("the PostgreSQL server is not running: start() it first")
        command = [str(self.bindir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
        command += ["-h", str(self.folder), "-p", str(self.port), "-U", SUPERUSER, "-d", database]
        for statement in statements:
            command += ["-c", statement]
        return self._run(command, "psql").stdout

    # --- the parts -------------------------------------------------------------------

    def _initdb(self) -> None:
        # /tmp, not $TMPDIR: the server user must reach it, and a Unix socket's path is
        # limited to ~100 bytes (macOS's $TMPDIR is longer than that with the socket's name).
        self.folder = Path(tempfile.mkdtemp(prefix="aiogw-pg-", dir="/tmp"))
        if self._user is not None:
            os.chown(self.folder, self._user.pw_uid, self._user.pw_gid)
        data = self.folder / "data"
        self._run(
            [
                str(self.bindir / "initdb"), "-D", str(data), "-U", SUPERUSER, "-A", "trust",
                "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions",
            ],
            "initdb",
        )
        (data / "pg_hba.conf").write_text(HBA)  # the server user's file; we only rewrite it

    def _launch(self) -> None:
        assert self.folder is not None
        settings = {**self.settings_given, "port": str(self.port), "unix_socket_directories": str(self.folder)}
        command = [*self.launcher, str(self.bindir / "postgres"), "-D", str(self.folder / "data")]
        for key, value in settings.items():
            command += ["-c", f"{key}={value}"]
        with open(self.folder / "server.log", "ab") as log:
            # Its own session: a Ctrl-C in the terminal reaches pytest, whose teardown
            # stops the server, not the server behind its back.
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, **self._child_options(),
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        """Until postmaster.pid says "ready" for our process, as pg_ctl waits; the
        line of a killed earlier run names another PID."""
        assert self.folder is not None and self._process is not None
        lockfile = self.folder / "data" / "postmaster.pid"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                raise PgError(f"PostgreSQL exited while starting; its log ends:\n{self.log_tail()}")
            try:
                lines = lockfile.read_text().splitlines()
            except FileNotFoundError:
                lines = []
            if len(lines) >= 8 and lines[0] == str(self._process.pid) and lines[7].strip() == "ready":
                return
            time.sleep(0.01)
        self.stop("immediate")
        raise PgError(f"PostgreSQL did not accept connections within {START_TIMEOUT} s; its log ends:\n{self.log_tail()}")

    def _bootstrap(self) -> None:
        self.sql(
            f"ALTER ROLE {SUPERUSER} PASSWORD '{self.superuser_password}'",
            f"CREATE ROLE {ROLE} LOGIN PASSWORD '{self.password}' NOSUPERUSER NOCREATEDB NOCREATEROLE",
            self._create_statement(ROLE),
        )

    def _create_statement(self, name: str) -> str:
        # From 15 on, CREATE DATABASE writes the template through the WAL by default:
        # 100-250 ms while new WAL segments are made. Copying the files is ~30 ms.
        strategy = " STRATEGY FILE_COPY" if self.major >= 15 else ""
        return f"CREATE DATABASE {name} OWNER {ROLE}{strategy}"

    def _run(self, command: list[str], what: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(command, capture_output=True, text=True, check=False, **self._child_options())
        if done.returncode != 0:
            raise PgError(f"{what} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
        return done

    def _child_options(self) -> dict:
        # PG* variables of the caller's shell (PGHOST, PGPORT...) would point psql at
        # another server; HOME is the folder, as the server user may not read ours.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["HOME"] = str(self.folder)
        options: dict = {"env": env, "cwd": self.folder}
        if self._user is not None:
            options.update(user=self._user.pw_uid, group=self._user.pw_gid, extra_groups=[])
        return options

    @staticmethod
    def _check_name(name: str) -> None:
        if not _NAME.fullmatch(name):
            raise ValueError(f"database name {name!r}: use lower-case letters, digits and _, at most 63")


# --- the fixtures --------------------------------------------------------------------

_SERVER = pytest.StashKey[PgServer]()


@pytest.fixture(scope="session", name="pg_server")
def pg_server_fixture(request: pytest.FixtureRequest) -> PgServer:
    """The session's PostgreSQL server, started on first use."""
    return session_server(request, _SERVER, find_bindir, PgServer, PgNotFound, "AIOGW_PG_REQUIRED")


@pytest.fixture(name="pg_url")
def pg_url_fixture(pg_server: PgServer) -> Iterator[str]:
    """The `aiogw` role's URL of a fresh database, dropped after the test."""
    if not pg_server.running:  # an earlier test stopped it and failed before starting it
        pg_server.start()
    name = f"t_{secrets.token_hex(6)}"
    url = pg_server.create_database(name)
    yield url
    if pg_server.running:
        pg_server.drop_database(name)
