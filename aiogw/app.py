"""Builds the aiohttp application and runs it: routes, start-up, shutdown."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
from collections.abc import AsyncIterator, Iterable

from aiohttp import web

from aiogw.audit.writer import AuditWriter
from aiogw.config import Config
from aiogw.dialects import DIALECTS
from aiogw.guards.check import GuardCheck
from aiogw.guards.policy import Policy
from aiogw.guards.response import AnswerGuard
from aiogw.keys import KeyIndex
from aiogw.limits.check import Accountant, LimitCheck, UsageRequest
from aiogw.limits.ledger import Ledger
from aiogw.limits.prices import PriceTable
from aiogw.limits.store import LimitStore
from aiogw.preflight import Check
from aiogw.proxy import Proxy, Sink
from aiogw.upstream import Upstream

log = logging.getLogger("aiogw")

PROXY = web.AppKey("proxy", Proxy)
CONFIG = web.AppKey("config", Config)  # the config the app was built from
STORE = web.AppKey("store", LimitStore)


def build_app(config: Config, sinks: Iterable[Sink] = ()) -> web.Application:
    """The gateway as an aiohttp Application; nothing listens until it is run."""
    # aiohttp refuses larger bodies itself, before the handler, with a plain-text 413;
    # the proxy translates that into the provider's envelope.
    app = web.Application(client_max_size=config.server.max_body_bytes)
    keys = KeyIndex(config.state_path)
    upstreams = {
        route.name: Upstream(route, DIALECTS[route.dialect], config.server.max_upstream_connections)
        for route in config.routes
    }
    audit = AuditWriter(config.state_path, config.audit) if config.audit.enabled else None
    guards = build_guards(config)
    # The preflight, in order: guards, then limits and budget.
    checks: list[Check] = [guards[0]] if guards else []
    # Limits and accounting are always wired in, so a reload can switch them on; idle,
    # they cost two calls per request.
    ledger = Ledger(config.limits, {u.name: u.limits for u in config.users})
    accountant = Accountant(ledger, PriceTable(config.prices), _accounting(config), deferred=audit is not None)
    if audit is not None:
        audit.settle = accountant.settle
    store = LimitStore(config.state_path, ledger)
    checks += [LimitCheck(accountant), UsageRequest(accountant)]
    proxy = Proxy(config, keys, upstreams, sinks, audit, checks, guards[1] if guards else None, accountant)
    app[PROXY] = proxy
    app[CONFIG] = config
    app[STORE] = store
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_route("*", "/{tail:.*}", proxy.handle)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        keys.load()
        if audit is not None:
            await audit.start()
        await store.start()
        for upstream in upstreams.values():
            await upstream.start()
            if upstream.credential is None and not upstream.passes_client_key:
                log.warning(
                    "route %r has no provider credential: set %s, or its requests get a 500",
                    upstream.route.name,
                    upstream.route.credential.name,
                )
        yield
        # The server has stopped and its handlers are done: every exchange is queued.
        await asyncio.gather(*(upstream.close() for upstream in upstreams.values()))
        if audit is not None:
            await audit.close()  # first: it settles the spend it was left to charge
        await store.close()

    app.cleanup_ctx.append(lifecycle)
    return app


def build_guards(config: Config) -> tuple[GuardCheck, AnswerGuard] | None:
    """The request guard (first preflight check) and the answer guard, on one engine.

    Everything is compiled here, before the server listens: a bad pattern or a missing
    Hyperscan stops the start with a message, never a request.
    """
    if not config.guards.enabled:
        return None
    from aiogw.guards import catalog
    from aiogw.guards.engine import Engine

    engine = Engine(catalog.load(config.guards.patterns, config.guards.disabled))
    policy = Policy(config.guards.actions, config.users)
    return GuardCheck(engine, policy), AnswerGuard(engine, policy)


async def _healthz(request: web.Request) -> web.Response:
    """The process answers: nothing more (a liveness probe)."""
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    """Whether to send this gateway traffic (a readiness probe): it listens (it answers),
    its audit writer runs and keeps up, its limits store runs, its state is writable."""
    app = request.app
    proxy, state = app[PROXY], app[CONFIG].state_path
    checks = {
        "state_writable": os.access(state.parent, os.W_OK) and (not state.exists() or os.access(state, os.W_OK)),
        "limits_store": app[STORE].alive,
    }
    if proxy.audit is not None:
        checks["audit_writer"] = proxy.audit.alive
        checks["audit_keeping_up"] = not proxy.audit.saturated
    ready = all(checks.values())
    return web.json_response({"status": "ready" if ready else "not ready", "checks": checks}, status=200 if ready else 503)


async def start(config: Config, sinks: Iterable[Sink] = (), *, port: int | None = None) -> tuple[web.AppRunner, int]:
    """Start serving; returns the runner (for `cleanup()`) and the bound port."""
    app = build_app(config, sinks)
    # handler_cancellation: a client that leaves while the gateway still waits for the
    # upstream's first byte cancels the handler, which closes the upstream request.
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=30.0)
    await runner.setup()
    site = web.TCPSite(
        runner, config.server.host, config.server.port if port is None else port, backlog=4096, reuse_address=True
    )
    await site.start()
    server = site._server  # the asyncio Server: the only way to learn an ephemeral port
    bound = server.sockets[0].getsockname()[1] if server is not None and server.sockets else config.server.port
    return runner, bound


def _on_hangup(app: web.Application, config: Config) -> None:
    """SIGHUP: read the config file again and apply its users, limits and prices; a bad
    file is logged and changes nothing. What needs a restart is said in the log."""
    from aiogw.config import ConfigError, load

    try:
        fresh = load(None if config.source == "<defaults>" else config.source)
    except (ConfigError, OSError) as exc:
        log.error("reload refused, the running config stays: %s", exc)
        return
    pending = reload(app, fresh)
    log.info("reloaded users, limits and prices from %s", config.source)
    if pending:
        log.warning("changed in %s but applied only at restart: %s", config.source, ", ".join(pending))


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


def _accounting(config: Config) -> bool:
    """Whether exchanges are read back for usage and cost: for the audit, or for limits."""
    return config.audit.enabled or config.limits.any or any(u.limits.any for u in config.users)


def reload(app: web.Application, config: Config) -> list[str]:
    """Apply what a reloaded config (SIGHUP) can change while serving: the user list,
    limits and prices. Counters and spend are kept. Returns what it did not apply."""
    proxy = app[PROXY]
    proxy.users = config.user_names()
    accountant = proxy.accountant
    assert accountant is not None
    accountant.ledger.reconfigure(config.limits, {u.name: u.limits for u in config.users})
    accountant.prices = PriceTable(config.prices)
    accountant.active = proxy.audit is not None or _accounting(config)
    running = app[CONFIG]
    return [part for part in ("server", "state_path", "routes", "audit", "guards")
            if getattr(running, part) != getattr(config, part)]


async def serve(config: Config) -> None:
    """Run until SIGTERM or SIGINT, then stop accepting and close cleanly."""
    runner, port = await start(config)
    tune_gc()
    mount = config.server.mount
    log.info(
        "aiogw listening on http://%s:%d%s/<route>/ (routes: %s)",
        config.server.host,
        port,
        mount,
        ", ".join(r.name for r in config.routes),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, _on_hangup, runner.app, config)
    try:
        await stop.wait()
    finally:
        log.info("aiogw stopping")
        await runner.cleanup()
