"""The bench's own subprocesses: start pinned to a core, wait until they listen, stop;
their CPU use, and other jobs' use of the cores (`Steady` keeps those out of the runs).

Only processes started here are ever signalled, by the PIDs remembered at start.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

_TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Procs:
    """Every server the bench started, each with its log file, stopped in reverse order."""

    def __init__(self, log_dir: Path, cwd: Path) -> None:
        self.log_dir = log_dir
        self.cwd = cwd
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, cmd: Sequence[str], *, cpu: int, port: int, env: dict[str, str] | None = None) -> int:
        """Start `cmd` pinned to `cpu`; returns its PID once `port` accepts connections."""
        log = open(self.log_dir / f"{name}.log", "wb")
        # A session of its own: Ctrl-C reaches only the bench, which then stops each
        # child in its `finally`, instead of racing the children's own shutdown.
        proc = subprocess.Popen(["taskset", "-c", str(cpu), *cmd], stdout=log, stderr=subprocess.STDOUT,
                                env=env, cwd=self.cwd, start_new_session=True)
        log.close()
        self.started.append((name, proc))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return proc.pid  # taskset execs the command: same PID
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{name} did not listen on port {port} within 20 s:\n{self.log_tail(name)}")

    def log_tail(self, name: str, lines: int = 20) -> str:
        text = (self.log_dir / f"{name}.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop_all(self) -> None:
        for _, proc in reversed(self.started):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _, proc in reversed(self.started):
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.started.clear()


def wait_idle(pid: int, timeout: float = 30.0, step: float = 0.1) -> float:
    """Wait until a process has used no CPU tick for two steps running (an audit writer
    draining its backlog after a run, say); returns the seconds waited. The next run
    must not share its core with the last one's leftovers."""
    t0 = time.monotonic()
    last = cpu_seconds(pid)
    quiet = 0
    while time.monotonic() - t0 < timeout:
        time.sleep(step)
        now = cpu_seconds(pid)
        quiet = quiet + 1 if now == last else 0
        last = now
        if quiet >= 2:
            break
    return time.monotonic() - t0


def wait_quiet(limit: float = 20.0, busy: float = 15.0, window: float = 0.5) -> float:
    """Wait (up to `limit` s) until neither core is more than `busy` % busy over a
    `window`: called between runs, when the bench's own processes idle, so what keeps
    a core busy is someone else's job. Returns the seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        before = core_busy()
        time.sleep(window)
        after = core_busy()
        if all(busy_percent(before, after, core) <= busy for core in after):
            break
    return time.monotonic() - t0


# A run during which another job kept a core this busy is measured again, once.
DISTURBED = 30.0


class Steady:
    """Runs measurements so that other jobs on the machine spoil as few as possible:
    after a disturbed run it waits for quiet, and measures a disturbed run once more,
    keeping the less disturbed of the two. Counts what it did, for the report."""

    def __init__(self) -> None:
        self.retried = 0
        self.waited = 0.0
        self._noisy = False

    def __call__(self, measure: Callable[..., dict[str, float]], *args: Any, **kwargs: Any) -> dict[str, float]:
        if self._noisy:
            self.waited += wait_quiet()
        m = measure(*args, **kwargs)
        if _noise(m) > DISTURBED:
            self.retried += 1
            self.waited += wait_quiet()
            again = measure(*args, **kwargs)
            m = min(m, again, key=_noise)
        self._noisy = _noise(m) > DISTURBED / 2
        return m


def _noise(m: dict[str, float]) -> float:
    """How busy another job kept a core that mattered during a run, in %: both, or
    only the load core when nothing of the run was on the proxy core (direct)."""
    return max(m.get("bg0", 0.0) if m.get("proxied", 1) else 0.0, m.get("bg1", 0.0))


def peak_rss_mb(pid: int) -> float:
    """VmHWM (peak resident set) of a live process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()  # the command name may contain spaces
    return (int(fields[11]) + int(fields[12])) / _TICK


def thread_cpu_seconds(pid: int) -> tuple[float, float]:
    """(the main thread's CPU seconds, all its other threads') so far: the event loop
    apart from the audit's SQLite thread."""
    main = other = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except FileNotFoundError:  # a thread that ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        seconds = (int(fields[11]) + int(fields[12])) / _TICK
        if task.name == str(pid):
            main += seconds
        else:
            other += seconds
    return main, other


def core_busy() -> dict[str, tuple[int, int]]:
    """Per-core (busy, total) jiffies from /proc/stat, to tell which core saturated."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3:4].isdigit():
            name, *vals = line.split()
            nums = [int(v) for v in vals[:8]]
            idle = nums[3] + nums[4]
            out[name] = (sum(nums) - idle, sum(nums))
    return out


def busy_percent(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]], core: str) -> float:
    busy = after[core][0] - before[core][0]
    total = after[core][1] - before[core][1]
    return 100.0 * busy / total if total else float("nan")
