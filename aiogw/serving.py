"""The gateway's process life: serve until a signal, reload on SIGHUP, drain at the end;
alone, or as one of the worker processes of `aiogw.workers`."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import os
import signal
import socket
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from aiohttp import web

from aiogw import health
from aiogw.app import CUT_GRACE, PROXY, RUNTIME, WATCH, ListenError, reload, start
from aiogw.config import Config, ConfigError
from aiogw.guards.databases import GuardsUnavailable
from aiogw.notify import Notifier
from aiogw.proxy import Proxy
from aiogw.store.base import SchemaError, StateUnavailable
from aiogw.worker_metrics import Peers

log = logging.getLogger("aiogw")


class _Stops:
    """The stop requests: the first drains, a later one cuts.

    A worker counts its own SIGTERM and SIGINT once: systemd's stop of the unit's
    control group and a terminal's Ctrl-C reach every process, on top of the one the
    supervisor forwards, and that must not cut the drain. The supervisor's own second
    signal reaches it as `cut`."""

    def __init__(self, once: bool) -> None:
        self.queue = asyncio.Queue[int]()
        self.once = once
        self.asked = False

    def signal(self, sig: int) -> None:
        if not (self.once and self.asked):
            self.asked = True
            self.queue.put_nowait(sig)

    def cut(self) -> None:
        if not self.asked:  # the cut came before the stop signal: both at once
            self.signal(signal.SIGTERM)
        self.queue.put_nowait(signal.SIGTERM)


async def _on_hangup(app: web.Application, source: str, notifier: Notifier, link: Link | None) -> None:
    """SIGHUP: read the config file again and apply it; a bad file is logged and changes
    nothing. What needs a restart is said in the log."""
    from aiogw.config import load

    runtime = app[RUNTIME]
    notifier.reloading()
    try:
        fresh = load(None if source == "<defaults>" else source)
        if link is not None:
            # Under a supervisor, [server] is its to compare: it says once, for every
            # worker, what waits for a restart (and knows the command line's overrides).
            fresh = dataclasses.replace(fresh, server=runtime.config.server)
        pending = await reload(app, fresh)
    except (ConfigError, OSError, GuardsUnavailable, ValueError) as exc:
        runtime.metrics.reloads.inc(("refused",))
        log.error("reload refused, the running config stays: %s", exc)
        notifier.ready(f"reload refused: {exc}"[:200])
        if link is not None:
            link.reloaded(str(exc))
        return
    runtime.metrics.reloads.inc(("applied",))
    log.info("reloaded %s", source)
    if pending:
        log.warning("changed in %s but applied only at restart: %s", source, ", ".join(pending))
    notifier.ready(_status(runtime.config))
    if link is not None:
        link.reloaded(None)


def tune_gc() -> None:
    """Collect young objects less often, and never rescan what start-up made.

    The heap of a busy gateway is mostly parsed request bodies, each alive for the
    length of its exchange and then freed by reference counting, not by the cycle
    collector. With CPython's default thresholds (700, 10, 10) the collector walks
    those bodies over and over; on 200 KB agent requests that cost a third of the CPU
    (measured in bench). Cycles are still collected, just in larger, rarer passes.
    """
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def _status(config: Config) -> str:
    return f"serving {len(config.routes)} routes for {len(config.users) or 'any'} users"


def failure(exc: BaseException) -> str | None:
    """What to tell the operator when serving could not start, as `aiogw.cli` says it
    for a single process; None for anything else (a bug of ours, whose traceback is
    what helps)."""
    if isinstance(exc, ConfigError):  # a guard pattern that does not compile, found at start
        return f"config error: {exc}"
    if isinstance(exc, (ListenError, StateUnavailable, SchemaError, FileNotFoundError, ValueError)):
        return str(exc)
    if isinstance(exc, GuardsUnavailable):
        return (f"guards are enabled but cannot run: {exc}. Install hyperscan, or set [guards] enabled = false to run "
                "without them.")
    return None


async def serve(config: Config, *, worker: int = 0, link: Link | None = None, peers: Peers | None = None) -> None:
    """Run until SIGTERM or SIGINT, then drain: stop accepting, let open exchanges
    finish for up to `server.drain_seconds`, cut the rest, write the audit, return. A
    second signal during the drain cuts at once.

    `worker` and `link`: this process is worker `worker` of `server.workers` under a
    supervisor (aiogw.workers), which hears of it through `link` and speaks to systemd;
    without a link the process is the gateway and speaks to systemd itself. `peers`:
    the other workers, whose metrics a scrape of this one includes."""
    runner, port = await start(config, worker=worker)
    if peers is not None:
        runtime = runner.app[RUNTIME]
        await peers.listen(runtime.endpoint.metrics.exposition)
        runtime.endpoint.peers = peers
        runtime.exchange_log.worker = worker  # its exchange lines say which worker served them
    tune_gc()
    mount = config.server.mount
    log.info(
        "aiogw listening on http://%s:%d%s/<route>/ (routes: %s; pid %d, %s)",
        config.server.host,
        port,
        mount,
        ", ".join(r.name for r in config.routes),
        os.getpid(),
        "SIGHUP reloads the config" if link is None else
        f"SIGHUP to the supervisor, pid {os.getppid()}, reloads the config",
    )
    app = runner.app
    proxy = app[PROXY]
    notifier = Notifier.from_env() if link is None else Notifier(None)  # a worker's supervisor speaks for it
    notifier.ready(_status(config))  # listening, audit writer and limits store running
    stops = _Stops(once=link is not None)
    if link is not None:
        metrics = runner.app[RUNTIME].metrics
        beats = asyncio.create_task(link.attend(lambda: stops.signal(signal.SIGTERM), stops.cut,
                                                lambda: metrics.reloads.inc(("refused",))), name="aiogw-beat")
    else:
        beats = asyncio.create_task(notifier.watchdog(), name="aiogw-watchdog") if notifier.watchdog_interval else None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stops.signal, sig)
    hangups: set[asyncio.Task[None]] = set()

    def hangup() -> None:
        task = asyncio.create_task(_on_hangup(app, config.source, notifier, link))
        hangups.add(task)
        task.add_done_callback(hangups.discard)

    loop.add_signal_handler(signal.SIGHUP, hangup)
    if link is not None:
        link.ready()  # only now: the supervisor may signal it at once (a reload it missed, a stop)
    signals = stops.queue
    try:
        await signals.get()
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
        proxy.draining = True
        drain = config.server.drain_seconds
        n = proxy.inflight
        log.info("aiogw stopping: %d open exchange%s, up to %gs to finish", n, "" if n == 1 else "s", drain)
        notifier.stopping(f"draining {n} open exchange{'' if n == 1 else 's'} (up to {drain:g}s)")
        for site in list(runner.sites):
            await site.stop()  # no new connections; kept-alive ones get a 503 'draining'
        if not await _drained(proxy, drain, signals):
            if not signals.empty():
                proxy.cut_by = "cut by a second signal"
            log.warning("aiogw stopping: cutting %d open exchanges", proxy.inflight)
            # Cut now, not after aiohttp's own shutdown wait (it waits, cancels, waits
            # again: seconds past the drain period): each handler is cancelled, records
            # itself as cut by the shutdown and closes its upstream request.
            app[WATCH].cut()
            await _drained(proxy, CUT_GRACE, signals)
        await runner.cleanup()  # what is left, then the audit (it writes all)
        if peers is not None:
            await peers.close()
        if beats is not None:
            beats.cancel()
        log.info("aiogw stopped")


async def _drained(proxy: Proxy, seconds: float, signals: asyncio.Queue[int]) -> bool:
    """Wait until no exchange is open (True), the time is up or another signal came."""
    deadline = asyncio.get_running_loop().time() + seconds
    while proxy.inflight:
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0 or not signals.empty():
            return False
        # Polled: the hot path keeps a plain counter; a tenth of a second is nothing here.
        await asyncio.sleep(min(0.1, left))
    return True


# --- a worker's process, under aiogw.workers ------------------------------------------


def worker_process(config: Config, number: int, sock: socket.socket, beat_every: float, mask: set,
                   scrape: str) -> NoReturn:
    """A forked worker's whole life: signals as `serve` expects them, serve, exit. It
    never returns into the supervisor's stack (whose `finally` blocks are not its own).
    `mask`: the signal mask to restore, blocked by the supervisor across the fork;
    `scrape`: the run's folder where the workers answer each other's /metrics."""
    code = 1
    try:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)  # until serve's own: a stop before it listens ends it
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until serve's own: the supervisor resends a missed reload
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        _name_records(f"worker {number}/{config.server.workers}: ")
        health.identify(number)
        sock.setblocking(False)
        import uvloop

        peers = Peers(Path(scrape), number, config.server.workers)
        uvloop.run(serve(config, worker=number, link=Link(sock, beat_every), peers=peers))
        code = 0
    except BaseException as exc:  # whatever it is, this process ends here
        text = failure(exc)
        if text is not None:
            print(f"aiogw: {text}", file=sys.stderr)  # as one process says it, and exits 2
            code = 2
        else:
            traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)


def _name_records(prefix: str) -> None:
    """Every log line of this process starts with `prefix`: which worker said it."""
    make = logging.getLogRecordFactory()

    def named(*args: object, **kwargs: object) -> logging.LogRecord:
        record = make(*args, **kwargs)
        record.msg = prefix + str(record.msg)
        return record

    logging.setLogRecordFactory(named)


def restartable(running: Config, fresh: Config) -> Config:
    """The config a worker forked after a reload starts with: the reloaded file, with
    what `app.reload` leaves for a restart as the running workers have it, so it runs
    what its siblings run (keep in step with app._reload; tests/test_workers.py
    compares the two)."""
    audit = fresh.audit if fresh.audit.enabled == running.audit.enabled else running.audit
    return dataclasses.replace(
        fresh, server=running.server, state_path=running.state_path, audit=audit, clients=running.clients,
        state_url=running.state_url, state_password=running.state_password, state_timeout=running.state_timeout,
    )


def tell(sock: socket.socket, message: bytes) -> None:
    """One message to the other end of a worker's socketpair, never waiting: a full
    buffer (a peer that reads nothing) or a closed end loses it, and the next beat or
    the peer's exit says the rest."""
    try:
        sock.send(message)
    except OSError:
        pass


class Link:
    """A worker's end of its socketpair with the supervisor, which speaks to systemd
    for every worker: what `serve` would tell systemd goes there instead."""

    __slots__ = ("beat_every", "sock")

    def __init__(self, sock: socket.socket, beat_every: float) -> None:
        self.sock = sock
        self.beat_every = beat_every

    def ready(self) -> None:
        tell(self.sock, b"ready")

    def reloaded(self, refused: str | None) -> None:
        """A SIGHUP's result: None when applied, else why it was refused."""
        tell(self.sock, b"reload ok" if refused is None else b"reload refused " + refused.encode()[:8000])

    async def attend(self, stop: Callable[[], None], cut: Callable[[], None], refused: Callable[[], None]) -> None:
        """Until cancelled: beat from this loop (the supervisor withholds systemd's
        watchdog when the beats stop); `cut` when the supervisor says so, `refused` when
        it refused a reload, `stop` when it is gone (nothing would restart or stop this
        worker any more)."""
        loop = asyncio.get_running_loop()

        def readable() -> None:
            try:
                data = self.sock.recv(64)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if data == b"cut":
                cut()
            elif data == b"refused":
                refused()
            elif not data:
                loop.remove_reader(self.sock)
                log.warning("the supervisor is gone: stopping")
                stop()

        loop.add_reader(self.sock, readable)
        try:
            while True:
                tell(self.sock, b"beat")
                await asyncio.sleep(self.beat_every)
        finally:
            loop.remove_reader(self.sock)
