"""Worker processes on one port under a supervisor (`aiogw serve --workers N`).

Each worker is `aiogw.serving.serve` in a process forked once the config is loaded:
its own uvloop, its own audit spool and spill file (`app.local_files`), on the one port
with SO_REUSEPORT (the kernel spreads connections over them). Worker 0 starts alone
(it makes a new database's tables), the others once it listens. The supervisor has no
event loop and no thread: one poll over a pipe of signals (signal.set_wakeup_fd) and a
socketpair per worker, a datagram a message (worker: `ready`, `beat` from its loop,
`reload ok`, `reload refused <why>`; supervisor: `cut`, `refused`). It alone speaks to
systemd: READY=1 once every worker listens, WATCHDOG=1 only while every listening
worker beats. SIGHUP: the file is read, its guards compiled once; refused for all (each
counts it), or sent to each and READY=1 after their results. SIGTERM/SIGINT: forwarded,
each drains; a second one cuts. A dead worker is logged and started again, after a
pause that grows while it keeps dying young; one that fails in the first start stops it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import os
import selectors
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable

from aiogw import logs
from aiogw.config import Config, ConfigError, Server, load, unshared
from aiogw.guards.databases import GuardsUnavailable
from aiogw.notify import Notifier
from aiogw.pipeline import compile_guards
from aiogw.serving import restartable, tell, worker_process

log = logging.getLogger("aiogw.workers")

_STOPS = (signal.SIGTERM, signal.SIGINT)
_SIGNALS = (*_STOPS, signal.SIGHUP, signal.SIGCHLD)
_BEAT = 1.0  # beats without a watchdog: often enough to warn of a stuck loop within seconds
_STALE_BEATS = 3  # a listening worker whose last beat is older than this many beat periods is stuck
# A worker that lived this long before dying was not crash-looping: started at once.
_STABLE = 30.0
# The pause before starting a worker that died young again doubles from this, to this.
_FIRST_PAUSE, _MAX_PAUSE = 0.5, 30.0


def supervise(config: Config, overrides: Callable[[Config], Config]) -> int:
    """Serve with `config.server.workers` worker processes until SIGTERM or SIGINT; the
    exit status. `overrides` puts the command line's options over a reloaded file."""
    reserved = None
    asked = config.server
    if config.server.port == 0:
        # One free port for every worker, held (bound, not listening) for as long as
        # the supervisor runs, so a restarted worker finds it free again.
        family, kind, proto, _, address = socket.getaddrinfo(config.server.host, 0, type=socket.SOCK_STREAM)[0]
        reserved = socket.socket(family, kind, proto)
        reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # as the workers' own sockets
        reserved.bind(address)
        config = dataclasses.replace(config, server=dataclasses.replace(config.server, port=reserved.getsockname()[1]))
    try:
        return Supervisor(config, asked, overrides, reserved).run()
    finally:
        if reserved is not None:
            reserved.close()


@dataclasses.dataclass(slots=True, eq=False)
class Worker:
    number: int
    pid: int
    sock: socket.socket  # the supervisor's end of the pair
    started: float  # monotonic
    ready: bool = False
    beat: float = 0.0  # monotonic, the last beat
    stuck: bool = False  # said so in the log
    reload_due: bool = False  # forked before a reload it must still apply

    def name(self, workers: int) -> str:
        return f"worker {self.number}/{workers} (pid {self.pid})"


class Supervisor:
    """The loop, the workers and what the supervisor is doing (starting, reloading,
    stopping). Everything here runs in the supervisor's one thread."""

    def __init__(self, config: Config, asked: Server, overrides: Callable[[Config], Config],
                 reserved: socket.socket | None) -> None:
        self.config = config  # what a worker forked now runs (a reload's, as app.reload keeps it)
        self.asked = asked  # [server] before the port was chosen: a reload compares with it
        self.overrides = overrides
        self.reserved = reserved
        self.count = config.server.workers
        self.notifier = Notifier.from_env()
        interval = self.notifier.watchdog_interval
        self.beat_every = interval / 2 if interval else _BEAT
        self.workers: dict[int, Worker] = {}  # pid -> worker
        self.due: dict[int, float] = {}  # worker number -> when to start it
        self.fails = [0] * self.count  # deaths in a row, each young
        self.announced = False  # READY=1 sent
        self.next_ping = 0.0
        self.reload: tuple[set[int], list[str]] | None = None  # the pids it waits for, their refusals
        self.reload_again = False
        self.stopping = False
        self.status = 0
        self.selector = selectors.DefaultSelector()
        self.wakeup_r, self.wakeup_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.scrape = tempfile.mkdtemp(prefix="aiogw-workers-")  # 0700: workers answer each other's /metrics

    def run(self) -> int:
        for sig in _SIGNALS:
            signal.signal(sig, _noted)  # the number reaches the wakeup pipe; that is all
        signal.set_wakeup_fd(self.wakeup_w, warn_on_full_buffer=False)
        self.selector.register(self.wakeup_r, selectors.EVENT_READ)
        gc.freeze()  # what start-up made stays shared with the workers, never copied by a collection
        try:
            self._spawn(0)  # alone: a new database's tables are made by one process
            while self.workers or not self.stopping:
                for key, _ in self.selector.select(self._timeout()):
                    if key.data is None:
                        self._signals()
                    else:
                        self._read(key.data)
                self._reap()
                self._tick()
        finally:
            signal.set_wakeup_fd(-1)
            self.selector.close()
            os.close(self.wakeup_r)
            os.close(self.wakeup_w)
            self.notifier.close()
            shutil.rmtree(self.scrape, ignore_errors=True)
        return self.status

    # --- the workers' lives ---------------------------------------------------------

    def _spawn(self, number: int) -> None:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # Blocked across the fork: a signal in between would run the supervisor's
        # handler in the child. The child sets its own, then unblocks.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            pid = os.fork()
            if pid == 0:
                mine.close()
                self._close_inherited()
                worker_process(self.config, number, theirs, self.beat_every, mask, self.scrape)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        theirs.close()
        mine.setblocking(False)
        worker = Worker(number, pid, mine, time.monotonic())
        self.workers[pid] = worker
        self.selector.register(mine, selectors.EVENT_READ, worker)
        log.info("started %s", worker.name(self.count))

    def _close_inherited(self) -> None:
        """In the child: the supervisor's descriptors are none of the worker's business."""
        signal.set_wakeup_fd(-1)
        for worker in self.workers.values():
            worker.sock.close()
        self.selector.close()
        os.close(self.wakeup_r)
        os.close(self.wakeup_w)
        if self.reserved is not None:
            self.reserved.close()

    def _reap(self) -> None:
        with contextlib.suppress(ChildProcessError):  # none left
            while (ended := os.waitpid(-1, os.WNOHANG))[0]:
                worker = self.workers.pop(ended[0], None)
                if worker is not None:
                    self._ended(worker, ended[1])

    def _unwatch(self, worker: Worker) -> None:
        with contextlib.suppress(KeyError):
            self.selector.unregister(worker.sock)

    def _ended(self, worker: Worker, status: int) -> None:
        self._unwatch(worker)
        worker.sock.close()
        name, how = worker.name(self.count), _how(status)
        if self.reload is not None:
            self.reload[0].discard(worker.pid)
            self._reload_done_if_all()
        clean = os.waitstatus_to_exitcode(status) in (0, *(-s for s in _STOPS))
        if self.stopping:
            if not clean:
                log.error("%s %s while stopping", name, how)
                self.status = self.status or 1
            else:
                log.info("%s stopped", name)
        elif not self.announced and not worker.ready:
            log.error("%s %s before it listened: the gateway does not start (its error is above)", name, how)
            code = os.waitstatus_to_exitcode(status)
            self._stop(signal.SIGTERM, status=code if code > 0 else 1)
        else:
            young = time.monotonic() - worker.started < _STABLE
            self.fails[worker.number] = self.fails[worker.number] + 1 if young else 0
            fails = self.fails[worker.number]
            pause = min(_MAX_PAUSE, _FIRST_PAUSE * 2 ** (fails - 1)) if fails else 0.0
            log.error("%s %s; starting it again%s", name, how, f" in {pause:g}s ({fails} in a row, each young)"
                      if pause else "")
            self.due[worker.number] = time.monotonic() + pause
            self.notifier.status(f"worker {worker.number}/{self.count} {how}; restarting it")

    def _read(self, worker: Worker) -> None:
        while True:
            try:
                data = worker.sock.recv(65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:  # it is gone (an end of file stays readable): waitpid says how
                self._unwatch(worker)
                return
            verb, _, rest = data.partition(b" ")
            if verb == b"beat":
                worker.beat = time.monotonic()
                if worker.stuck:
                    worker.stuck = False
                    log.warning("%s: its event loop answers again", worker.name(self.count))
            elif verb == b"ready":
                self._ready(worker)
            elif verb == b"reload":
                self._reloaded(worker, rest.decode(errors="replace"))

    def _ready(self, worker: Worker) -> None:
        worker.ready, worker.beat = True, time.monotonic()
        if self.stopping:
            return
        if worker.reload_due:  # forked with the config before the last reload
            worker.reload_due = False
            _kill(worker.pid, signal.SIGHUP)
        if not self.announced and worker.number == 0 and len(self.workers) == 1:
            for number in range(1, self.count):
                self._spawn(number)
        elif all(w.ready for w in self.workers.values()) and len(self.workers) == self.count:
            server = self.config.server
            if not self.announced:
                self.announced = True
                log.info("aiogw: %d workers listen on http://%s:%d%s/<route>/ (supervisor pid %d: SIGHUP reloads "
                         "the config, SIGTERM drains)", self.count, server.host, server.port, server.mount, os.getpid())
                self.notifier.ready(self._status())
            else:
                self.notifier.status(self._status())

    def _status(self) -> str:
        users = len(self.config.users) or "any"
        return f"serving {len(self.config.routes)} routes for {users} users with {self.count} workers"

    # --- signals ---------------------------------------------------------------------

    def _signals(self) -> None:
        try:
            received = os.read(self.wakeup_r, 512)
        except BlockingIOError:
            return
        for sig in received:
            if sig in _STOPS:
                self._stop(signal.Signals(sig))
            elif sig == signal.SIGHUP:
                self._hangup()
            # SIGCHLD: the loop reaps after every wake-up

    def _stop(self, sig: signal.Signals, status: int = 0) -> None:
        live = list(self.workers.values())
        if self.stopping:
            log.warning("aiogw stopping: %s again: the workers cut their open exchanges (%d left)", sig.name, len(live))
            for worker in live:
                tell(worker.sock, b"cut")
            return
        self.stopping, self.status = True, status
        self.due.clear()
        drain = self.config.server.drain_seconds
        if not status:
            log.info("aiogw stopping: %s to %d workers; each drains its open exchanges (up to %gs)", sig.name,
                     len(live), drain)
            self.notifier.stopping(f"stopping {len(live)} workers, each drains (up to {drain:g}s)")
        for worker in live:
            _kill(worker.pid, sig)

    def _hangup(self) -> None:
        if self.stopping:
            log.info("SIGHUP while stopping: no reload")
            return
        if self.reload is not None:
            self.reload_again = True  # after the one under way: the file may have changed since
            return
        source = self.config.source
        if self.announced:
            self.notifier.reloading(f"reloading {source}")
        try:
            fresh = self.overrides(load(None if source == "<defaults>" else source))
            self._check(fresh)
        except (ConfigError, OSError, GuardsUnavailable, ValueError) as exc:
            log.error("reload refused, no worker was told and the running config stays: %s", exc)
            for worker in self.workers.values():
                tell(worker.sock, b"refused")
            if self.announced:
                self.notifier.ready(f"reload refused: {exc}"[:200])
            return
        pending = [f"server.{f.name}" for f in dataclasses.fields(fresh.server)
                   if getattr(fresh.server, f.name) != getattr(self.asked, f.name)]
        if pending:
            log.warning("changed in %s but applied only at restart: %s", source, ", ".join(pending))
        if fresh.log != self.config.log:
            logs.setup(fresh.log)
        self.config = restartable(self.config, fresh)
        waiting = set()
        for worker in self.workers.values():
            if worker.ready:
                waiting.add(worker.pid)
                _kill(worker.pid, signal.SIGHUP)
            else:
                worker.reload_due = True
        log.info("reload of %s accepted; sent to %d workers", source, len(waiting))
        self.reload = (waiting, [])
        self._reload_done_if_all()

    def _check(self, fresh: Config) -> None:
        """What a worker's reload would refuse, found before any worker is told."""
        if (problem := unshared(fresh, self.count)) is not None:
            raise ConfigError(f"{fresh.source}: {problem}")
        if fresh.guards != self.config.guards:
            compile_guards(fresh)  # as each worker will; a pattern that does not compile stops it here

    def _reloaded(self, worker: Worker, result: str) -> None:
        if self.reload is None or worker.pid not in self.reload[0]:
            return  # a reload it applied on its own (a SIGHUP sent to it alone)
        self.reload[0].discard(worker.pid)
        if result != "ok":
            self.reload[1].append(f"{worker.name(self.count)}: {result.removeprefix('refused ')}")
        self._reload_done_if_all()

    def _reload_done_if_all(self) -> None:
        """Once every worker told its result (or died): READY=1. A worker whose loop is
        stuck never tells: the watchdog is withheld for it meanwhile."""
        assert self.reload is not None
        waiting, refused = self.reload
        if waiting:
            return
        if refused:
            log.error("reload refused by %s: the workers now run different configs; fix the file and reload again",
                      "; ".join(refused))
        else:
            log.info("reload applied in every worker")
        if self.announced:
            self.notifier.ready(self._status() if not refused else f"reload refused by {len(refused)} workers")
        self.reload = None
        if self.reload_again:
            self.reload_again = False
            self._hangup()

    # --- time ------------------------------------------------------------------------

    def _timeout(self) -> float:
        now = time.monotonic()
        moments = [now + self.beat_every, *self.due.values()]
        if self.announced and self.notifier.watchdog_interval:
            moments.append(self.next_ping)
        return max(0.0, min(moments) - now)

    def _tick(self) -> None:
        now = time.monotonic()
        for number, when in list(self.due.items()):
            if when <= now:
                del self.due[number]
                self._spawn(number)
        stale = self.beat_every * _STALE_BEATS
        stuck = [w for w in self.workers.values() if w.ready and now - w.beat > stale]
        for worker in stuck:
            if not worker.stuck:
                worker.stuck = True
                log.warning("%s: its event loop has not answered for %.1fs%s", worker.name(self.count),
                            now - worker.beat, "; systemd's watchdog is not pinged until it does"
                            if self.notifier.watchdog_interval else "")
        if self.announced and self.notifier.watchdog_interval and now >= self.next_ping:
            self.next_ping = now + self.notifier.watchdog_interval
            if not stuck:  # systemd restarts the unit when the pings stop: that is the point
                self.notifier.ping()


def _noted(signum: int, frame: object) -> None:
    """A Python handler must be set for the wakeup pipe to hear the signal."""


def _how(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    return f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # gone already: its exit is being reaped
        os.kill(pid, sig)
