"""The `aiogw` command as an operator runs it: real processes, real signals."""

import signal
import subprocess
import sys
import textwrap
import time

import httpx
import pytest
from conftest import free_port

pytestmark = pytest.mark.timeout(60)


def aiogw(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aiogw", *args], capture_output=True, text=True, timeout=30, **kw)


@pytest.fixture
def config_file(tmp_path, gateway):
    path = tmp_path / "aiogw.toml"
    port = free_port()
    path.write_text(
        textwrap.dedent(f"""
        [server]
        port = {port}
        [state]
        path = "state/aiogw.db"
        [[routes]]
        name = "anthropic"
        dialect = "anthropic"
        upstream = "{gateway.fake_url}"
        credential = {{ env = "FAKE_KEY" }}
        [[users]]
        name = "ci"
        """)
    )
    return path, port


def test_keys_create_list_revoke(config_file):
    path, _ = config_file
    created = aiogw("keys", "create", "ci", "--config", str(path))
    assert created.returncode == 0
    (key,) = created.stdout.splitlines()  # the key alone on stdout, for scripts
    assert key.startswith("aiogw-")
    key_id = created.stderr.split()[1]
    listed = aiogw("keys", "list", "--config", str(path))
    assert key_id in listed.stdout and "active" in listed.stdout and key not in listed.stdout
    assert aiogw("keys", "revoke", key_id, "--config", str(path)).returncode == 0
    assert "revoked" in aiogw("keys", "list", "--config", str(path)).stdout
    again = aiogw("keys", "revoke", key_id, "--config", str(path))
    assert again.returncode == 1 and "no active key" in again.stderr


def test_keys_list_marks_a_key_whose_user_left_the_config(config_file):
    path, _ = config_file
    aiogw("keys", "create", "ci", "--config", str(path))
    path.write_text(path.read_text().replace('name = "ci"', 'name = "someone-else"'))
    listed = aiogw("keys", "list", "--config", str(path))
    (row,) = [line for line in listed.stdout.splitlines() if " ci " in line]
    assert row.endswith("refused: user not in the config")


def test_keys_for_unknown_user_refused(config_file):
    path, _ = config_file
    result = aiogw("keys", "create", "nobody", "--config", str(path))
    assert result.returncode == 2 and "no user 'nobody'" in result.stderr and result.stdout == ""


def test_check_config(config_file, tmp_path):
    path, _ = config_file
    ok = aiogw("check-config", str(path), env={"PATH": "/usr/bin:/bin"})
    assert ok.returncode == 0 and "FAKE_KEY: NOT SET" in ok.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nport = -1\n")
    result = aiogw("check-config", str(bad))
    assert result.returncode == 2
    assert f"{bad}: server.port: expected a whole number from 0 to 65535" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_answers_and_stops_on_sigterm(config_file):
    path, port = config_file
    key = aiogw("keys", "create", "ci", "--config", str(path)).stdout.strip()
    port = free_port()  # --port wins over the file's port
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiogw", "serve", "--config", str(path), "--port", str(port)],
        env={"PATH": "/usr/bin:/bin", "FAKE_KEY": "sk-ant-fake"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if httpx.get(url + "/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        r = httpx.post(
            url + "/llm-gateway/anthropic/v1/messages",
            headers={"x-api-key": key},
            json={"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]},
        )
        assert r.status_code == 200 and r.json()["type"] == "message"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    _, err = proc.communicate()
    assert "listening on" in err and "Traceback" not in err
    assert key not in err


def test_a_guard_pattern_that_does_not_compile_stops_the_start(config_file):
    path, _ = config_file
    path.write_text(path.read_text() + '\n[[guards.patterns]]\nid = "acme"\ncategory = "credential"\nexpression = "acme_(["\n')
    for args in (("check-config", str(path)), ("serve", "--config", str(path))):
        result = aiogw(*args)
        assert result.returncode == 2
        assert "guard pattern 'acme'" in result.stderr and "Traceback" not in result.stderr


def test_serve_warns_of_a_state_database_others_can_read(tmp_path, caplog):
    from aiogw.cli import _warn_if_readable

    db = tmp_path / "state.db"
    db.write_bytes(b"")
    db.chmod(0o644)  # made by an aiogw before its files were its owner's alone
    _warn_if_readable(db)
    assert "can be read by other users (mode 644)" in caplog.text and f"chmod 600 {db}*" in caplog.text
    caplog.clear()
    db.chmod(0o600)
    _warn_if_readable(db)
    db.chmod(0o620)  # a group that may write but not read: nothing to tell
    _warn_if_readable(db)
    _warn_if_readable(tmp_path / "not-made-yet.db")
    assert caplog.text == ""


def test_database_errors_are_told_apart(monkeypatch, capsys):
    """A locked or full database is named as it is, without the wrong-path hint; a
    misuse of the database (a bug of ours) keeps its traceback."""
    import os
    import sqlite3

    from aiogw.audit import cli as audit_cli
    from aiogw.cli import main

    mask = os.umask(0o022)
    os.umask(mask)
    try:
        def locked(args):
            raise sqlite3.OperationalError("database is locked")

        monkeypatch.setattr(audit_cli, "list_cmd", locked)
        assert main(["audit", "list"]) == 2
        err = capsys.readouterr().err
        assert "the state database cannot be used: database is locked" in err and "[state] path" not in err

        def bug(args):
            raise sqlite3.ProgrammingError("Incorrect number of bindings supplied")

        monkeypatch.setattr(audit_cli, "list_cmd", bug)
        with pytest.raises(sqlite3.ProgrammingError):
            main(["audit", "list"])
    finally:
        os.umask(mask)  # main() sets aiogw's own
