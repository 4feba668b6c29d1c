"""A PostgreSQL server for the bench: tests.pgserver's throwaway cluster, made durable.

tests/pgserver.py's cluster (initdb as the postgres user, a free port, the `aiogw` role
with a password, `create_database()`) runs with fsync and full-page writes off, which is
right for tests and wrong for a bench: SQLite runs with WAL and synchronous=NORMAL, so
PostgreSQL must pay what a real server pays for each commit. `BenchPg` is the same
cluster started with the settings given here instead (by default PostgreSQL's own:
fsync, synchronous_commit and full_page_writes on, shared_buffers 128MB), pinned to one
core like the gateway it serves, and `settings()` reads back what the server runs with,
for the record.

`BULK` is for loading generated data only (bench.postgres_queries): wal_level minimal
lets COPY into a table made in the same transaction skip the WAL (the files are synced
at commit instead); the server is restarted with the defaults before anything is timed.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.pgserver import PgServer

# Said explicitly (each is PostgreSQL's default), so the log and the results show them.
DURABLE = {
    "listen_addresses": "127.0.0.1",
    "max_connections": "100",
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
    "wal_level": "replica",
    "shared_buffers": "128MB",
}
BULK = {**DURABLE, "wal_level": "minimal", "max_wal_senders": "0", "maintenance_work_mem": "1GB",
        "max_wal_size": "8GB", "checkpoint_timeout": "30min"}
SHOWN = ("server_version", "fsync", "synchronous_commit", "full_page_writes", "wal_level", "wal_sync_method",
         "shared_buffers", "work_mem", "max_wal_size", "random_page_cost", "effective_cache_size", "jit")
_TICK = os.sysconf("SC_CLK_TCK")


class BenchPg(PgServer):
    """tests.pgserver.PgServer with the bench's settings, pinned to `cpu` (None: not pinned)."""

    def __init__(self, settings: dict[str, str] | None = None, cpu: int | None = None) -> None:
        super().__init__()
        self.settings_given = dict(DURABLE if settings is None else settings)
        self.cpu = cpu
        if cpu is not None:
            self.launcher = ["taskset", "-c", str(cpu)]  # taskset execs: the server keeps its PID

    def restart(self, settings: dict[str, str]) -> None:
        """Stop (fast: a checkpoint), start again with other settings; same data and port."""
        self.stop()
        self.settings_given = dict(settings)
        self.start()

    def settings(self) -> dict[str, str]:
        """What the running server says it runs with (SHOW), for the record."""
        out = self.sql(*(f"SHOW {name}" for name in SHOWN)).split("\n")
        return dict(zip(SHOWN, (line.strip() for line in out), strict=False))

    def cpu_seconds(self) -> float:
        """CPU seconds the whole server has used so far: the postmaster, every process it
        runs now (backends, WAL writer, checkpointer...) and those that have ended."""
        main = self.pid
        if main is None:
            return 0.0
        total = _own_and_reaped(main)
        for pid in _children(main):
            total += _own_and_reaped(pid, reaped=False)
        return total


def _stat(pid: int) -> list[str]:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2:].split()  # the command name may contain spaces


def _own_and_reaped(pid: int, reaped: bool = True) -> float:
    """utime + stime, and with `reaped` the children's it has waited for (cutime + cstime)."""
    try:
        fields = _stat(pid)
    except OSError:  # it ended between the listing and now
        return 0.0
    ticks = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if reaped else 0)
    return ticks / _TICK


def _children(parent: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat(int(entry.name))[1]) == parent:
                    out.append(int(entry.name))
            except (OSError, ValueError):
                continue
    return out
