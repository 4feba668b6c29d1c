"""aiogw.running: what a gateway announces, and what the commands make of it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from aiogw import running


def test_an_announcement_lives_as_long_as_its_gateway(tmp_path):
    where = tmp_path / "run"
    with running.announce(tmp_path / "state.db", "aiogw.toml", where=where) as entry:
        (gateway,) = running.running(where=where)
        assert gateway.pid == os.getpid() and gateway.state_path == tmp_path / "state.db"
        assert gateway.config == os.path.abspath("aiogw.toml")  # the fix names a file from anywhere
        assert where.stat().st_mode & 0o777 == 0o700 and entry.path.stat().st_mode & 0o777 == 0o600
        assert running.warning(tmp_path / "state.db", where=where) is None
        text = running.warning(tmp_path / "other.db", where=where)
        assert f"uses the state database {tmp_path / 'other.db'}, which no running gateway uses" in text
        assert f"--config {os.path.abspath('aiogw.toml')}, or export AIOGW_CONFIG=" in text
    assert running.running(where=where) == [] and running.warning(tmp_path / "other.db", where=where) is None


def test_the_same_database_by_another_name_is_the_same(tmp_path):
    where = tmp_path / "run"
    (tmp_path / "state.db").write_bytes(b"")
    (tmp_path / "link.db").symlink_to(tmp_path / "state.db")
    with running.announce(tmp_path / "state.db", "<defaults>", where=where):
        assert running.warning(tmp_path / "link.db", where=where) is None
        text = running.warning(tmp_path / "else.db", where=where)
        assert f"config <defaults> (started in {os.getcwd()})" in text and "in the folder it was started in" in text


def test_stale_and_foreign_entries_are_ignored(tmp_path):
    where = tmp_path / "run"
    where.mkdir(mode=0o700)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)
    (where / f"{dead_pid}.json").write_text(json.dumps({"pid": dead_pid, "state_path": "/x.db", "config": "/x.toml"}))
    # This process's pid, announced by a process started at another time: the pid was reused.
    (where / f"{os.getpid()}.json").write_text(
        json.dumps({"pid": os.getpid(), "started": "1", "state_path": "/y.db", "config": "/y.toml"})
    )
    (where / "junk.json").write_text("{not json")
    (where / "1.json").write_text(json.dumps({"pid": "1", "state_path": 5}))
    assert running.running(where=where) == []
    assert not (where / f"{dead_pid}.json").exists()  # a killed gateway's entry goes
    assert (where / f"{os.getpid()}.json").exists()  # a live process's entry stays


def test_a_folder_another_could_write_is_not_trusted(tmp_path, caplog):
    where = tmp_path / "run"
    with running.announce(tmp_path / "state.db", "a.toml", where=where):
        where.chmod(0o777)  # as if another user had made it, open to all
        assert running.running(where=where) == []
        where.chmod(0o700)
        assert len(running.running(where=where)) == 1
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = tmp_path / "link"
    link.symlink_to(elsewhere)
    handle = running.announce(tmp_path / "state.db", "a.toml", where=link)
    assert handle.path is None and list(elsewhere.iterdir()) == []
    assert "cannot announce this gateway" in caplog.text
    handle.close()  # a no-op, as at any gateway's exit


def test_the_default_folder():
    assert running.folder() == Path(f"/tmp/aiogw-{os.getuid()}")
    assert running.folder("/run/user/1000") == Path("/run/user/1000/aiogw")


def test_a_gateway_on_postgresql_is_the_same_database_by_its_url_alone(tmp_path):
    """Gateways on PostgreSQL are told apart by their URL (without its password); their
    local [state] path (the spool's folder) says nothing of the database."""
    where = tmp_path / "run"
    url = "postgresql://aiogw@db.internal:5432/aiogw"
    with running.announce(tmp_path / "local.db", "pg.toml", where=where, state_url=url):
        assert running.warning(tmp_path / "elsewhere.db", where=where, state_url=url) is None
        other = running.warning(tmp_path / "local.db", where=where, state_url="postgresql://aiogw@db.internal/other")
        assert other is not None and f"the gateway of pid {os.getpid()} uses {url}" in other
        on_sqlite = running.warning(tmp_path / "local.db", where=where)  # a command on the SQLite file
        assert on_sqlite is not None and "uses the state database " + str(tmp_path / "local.db") in on_sqlite
