"""The throwaway Redis server: its port, its password, stop and start, what it keeps."""

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from tests.redisserver import (  # noqa: F401
    RedisError,
    RedisNotFound,
    RedisServer,
    encode,
    find_binary,
    redis_server_fixture,
    redis_url_fixture,
)


def raw_ping(port: int) -> bytes:
    """PING on a bare socket, the reply's first line as it came."""
    with socket.create_connection(("127.0.0.1", port), 2) as sock:
        sock.sendall(encode("PING"))
        return sock.recv(1024).split(b"\r\n")[0]


@pytest.fixture
def own(redis_server: RedisServer):
    """A server of the test's own, for tests that stop it (never the session's)."""
    with RedisServer(redis_server.binary) as server:
        yield server


def test_it_answers_on_a_port_of_its_own(redis_server: RedisServer) -> None:
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert redis_server.port != 6379  # never the system's server
    assert raw_ping(redis_server.port) == b"+PONG"
    assert redis_server.command("CONFIG", "GET", "bind") == [b"bind", b"127.0.0.1"]


def test_redis_cli_reaches_it(redis_server: RedisServer) -> None:
    cli = shutil.which("redis-cli")
    if cli is None:
        pytest.skip("no redis-cli on PATH")
    done = subprocess.run([cli, "-h", "127.0.0.1", "-p", str(redis_server.port), "ping"],
                          capture_output=True, text=True, timeout=10, check=False)
    assert done.stdout.strip() == "PONG", done.stderr


def test_without_persistence_a_stop_loses_the_data_and_a_start_serves_on_the_same_port(own: RedisServer) -> None:
    assert own.command("CONFIG", "GET", "save") == [b"save", b""]
    assert own.command("CONFIG", "GET", "appendonly") == [b"appendonly", b"no"]
    own.command("SET", "k", "v")
    port, pid = own.port, own.pid
    own.stop()
    assert not own.running and own.pid is None
    with pytest.raises(ProcessLookupError):  # stopped by its PID, and waited for
        os.kill(pid, 0)
    with pytest.raises(ConnectionRefusedError):
        raw_ping(port)
    own.start()
    assert own.port == port and own.pid not in (None, pid)
    assert raw_ping(port) == b"+PONG"
    assert own.command("GET", "k") is None


def test_with_appendonly_a_restart_keeps_the_data(redis_server: RedisServer) -> None:
    with RedisServer(redis_server.binary, appendonly=True) as server:
        server.command("SET", "k", "kept")
        server.stop()
        server.start()
        assert server.command("GET", "k") == b"kept"


def test_a_password_is_asked_for_and_never_in_the_url(redis_server: RedisServer) -> None:
    with RedisServer(redis_server.binary, password="s3cret-for-test") as server:
        assert raw_ping(server.port).startswith(b"-NOAUTH")
        assert server.command("PING") == b"PONG"  # AUTH first
        assert "s3cret" not in server.url
        wrong = RedisServer(redis_server.binary, password="not-it")
        wrong.port = server.port
        with pytest.raises(RedisError, match="AUTH: WRONGPASS"):
            wrong.command("PING")


def test_redis_url_is_an_emptied_database_of_its_own(redis_server: RedisServer, redis_url: str) -> None:
    db = int(redis_url.rsplit("/", 1)[1])
    assert redis_url.startswith(f"redis://127.0.0.1:{redis_server.port}/") and db != 0
    assert redis_server.command("DBSIZE", db=db) == 0
    redis_server.command("SET", "only-here", "1", db=db)
    assert redis_server.command("EXISTS", "only-here") == 0
    assert redis_server.new_database() != redis_url


def test_close_ends_the_process_and_removes_the_folder(redis_server: RedisServer) -> None:
    with RedisServer(redis_server.binary) as server:
        folder, pid = server.folder, server.pid
        assert Path(folder, "redis.log").exists()
    assert server.pid is None and not Path(folder).exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_server_that_cannot_start_says_why(redis_server: RedisServer) -> None:
    server = RedisServer(redis_server.binary)
    server.settings_given = ["--no-such-setting", "1"]
    with pytest.raises(RedisError, match="exited while starting"):
        server.start()
    server.close()


def test_a_missing_binary_says_what_to_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AIOGW_REDIS_SERVER", str(tmp_path / "nothing"))
    with pytest.raises(RedisNotFound, match="AIOGW_REDIS_SERVER"):
        find_binary()
