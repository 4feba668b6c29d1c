"""The gateway's process life: serve until a signal, reload on SIGHUP, drain at the end."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal

from aiohttp import web

from aiogw.app import CUT_GRACE, PROXY, RUNTIME, WATCH, reload, start
from aiogw.config import Config, ConfigError
from aiogw.guards.databases import GuardsUnavailable
from aiogw.notify import Notifier
from aiogw.proxy import Proxy

log = logging.getLogger("aiogw")


async def _on_hangup(app: web.Application, source: str, notifier: Notifier) -> None:
    """SIGHUP: read the config file again and apply it; a bad file is logged and changes
    nothing. What needs a restart is said in the log."""
    from aiogw.config import load

    runtime = app[RUNTIME]
    notifier.reloading()
    try:
        fresh = load(None if source == "<defaults>" else source)
        pending = await reload(app, fresh)
    except (ConfigError, OSError, GuardsUnavailable, ValueError) as exc:
        runtime.metrics.reloads.inc(("refused",))
        log.error("reload refused, the running config stays: %s", exc)
        notifier.ready(f"reload refused: {exc}"[:200])
        return
    runtime.metrics.reloads.inc(("applied",))
    log.info("reloaded %s", source)
    if pending:
        log.warning("changed in %s but applied only at restart: %s", source, ", ".join(pending))
    notifier.ready(_status(runtime.config))


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


async def serve(config: Config) -> None:
    """Run until SIGTERM or SIGINT, then drain: stop accepting, let open exchanges
    finish for up to `server.drain_seconds`, cut the rest, write the audit, return. A
    second signal during the drain cuts at once."""
    runner, port = await start(config)
    tune_gc()
    mount = config.server.mount
    log.info(
        "aiogw listening on http://%s:%d%s/<route>/ (routes: %s; pid %d, SIGHUP reloads the config)",
        config.server.host,
        port,
        mount,
        ", ".join(r.name for r in config.routes),
        os.getpid(),
    )
    app = runner.app
    proxy = app[PROXY]
    notifier = Notifier.from_env()
    notifier.ready(_status(config))  # listening, audit writer and limits store running
    watchdog = asyncio.create_task(notifier.watchdog(), name="aiogw-watchdog") if notifier.watchdog_interval else None
    signals = asyncio.Queue[int]()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, signals.put_nowait, sig)
    hangups: set[asyncio.Task[None]] = set()

    def hangup() -> None:
        task = asyncio.create_task(_on_hangup(app, config.source, notifier))
        hangups.add(task)
        task.add_done_callback(hangups.discard)

    loop.add_signal_handler(signal.SIGHUP, hangup)
    try:
        await signals.get()
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
        proxy.draining = True
        drain = config.server.drain_seconds
        n = proxy.inflight
        log.info("aiogw stopping: %d open exchange%s, up to %gs to finish", n, "" if n == 1 else "s", drain)
        notifier.stopping(f"draining {proxy.inflight} open exchanges (up to {drain:g}s)")
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
        if watchdog is not None:
            watchdog.cancel()
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
