"""Builds the aiohttp application and runs it: routes, start-up, shutdown."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import os
import signal
from collections.abc import AsyncIterator, Iterable

from aiohttp import web, web_response

from aiogw import body, connections, health, logs
from aiogw.audit.writer import AuditWriter
from aiogw.config import Config, ConfigError
from aiogw.dialects import DIALECTS
from aiogw.guards.check import GuardCheck
from aiogw.guards.engine import Engine, GuardsUnavailable
from aiogw.guards.policy import Policy
from aiogw.guards.response import AnswerGuard
from aiogw.health import MetricsEndpoint
from aiogw.keys import KeyIndex
from aiogw.limits.check import Accountant, LimitCheck, UsageRequest
from aiogw.limits.ledger import Ledger
from aiogw.limits.prices import PriceTable
from aiogw.limits.store import LimitStore
from aiogw.logs import ExchangeLog
from aiogw.notify import Notifier
from aiogw.observe import GatewayMetrics, Observer
from aiogw.preflight import Check
from aiogw.proxy import Proxy, Sink
from aiogw.upstream import Upstream

log = logging.getLogger("aiogw")

# aiohttp names Python's and its own version in every response it makes (`Server:`),
# its own 400s for a malformed request included; the gateway says nothing of its stack.
# Responses relayed from a provider keep the provider's header.
web_response.SERVER_SOFTWARE = "aiogw"

PROXY = web.AppKey("proxy", Proxy)
CONFIG = web.AppKey("config", Config)  # the config the app was built from
STORE = web.AppKey("store", LimitStore)
RUNTIME = web.AppKey("runtime", "Runtime")
WATCH = web.AppKey("watch", connections.Watch)


class Runtime:
    """What a reload replaces or reconfigures, and the config now applied."""

    def __init__(
        self, config: Config, proxy: Proxy, observer: Observer, gauges: GatewayMetrics,
        endpoint: MetricsEndpoint, exchange_log: ExchangeLog, guards: tuple[GuardCheck, AnswerGuard] | None,
    ) -> None:
        self.config = config
        self.proxy = proxy
        self.observer = observer
        self.metrics = gauges
        self.endpoint = endpoint
        self.exchange_log = exchange_log
        self.guards = guards
        # Upstreams a reload replaced, each closing once idle, by the task that closes it.
        self.retiring: dict[asyncio.Task[None], Upstream] = {}
        self.reloading = asyncio.Lock()  # two quick reloads apply one after the other, in order


def build_app(config: Config, sinks: Iterable[Sink] = ()) -> web.Application:
    """The gateway as an aiohttp Application; nothing listens until it is run."""
    # aiohttp refuses larger bodies itself, before the handler, with a plain-text 413;
    # the proxy translates that into the provider's envelope.
    app = web.Application(client_max_size=config.server.max_body_bytes)
    keys = KeyIndex(config.state_path)
    upstreams = _upstreams(config, {})
    audit = AuditWriter(config.state_path, config.audit) if config.audit.enabled else None
    guards = build_guards(config)
    # Limits and accounting are always wired in, so a reload can switch them on; idle,
    # they cost two calls per request.
    ledger = Ledger(config.limits, {u.name: u.limits for u in config.users})
    accountant = Accountant(ledger, PriceTable(config.prices), deferred=audit is not None)
    store = LimitStore(config.state_path, ledger)
    limit_checks = [LimitCheck(accountant), UsageRequest(accountant)]
    answers = guards[1] if guards else None
    proxy = Proxy(config, keys, upstreams, sinks, audit, _checks(guards, limit_checks), answers, accountant)
    watch = connections.Watch(config.clients)
    gauges = GatewayMetrics(config.metrics, proxy, watch)
    exchange_log = ExchangeLog(config.log)
    observer = Observer(gauges, exchange_log)
    endpoint = MetricsEndpoint(gauges)
    runtime = Runtime(config, proxy, observer, gauges, endpoint, exchange_log, guards)
    _observe(runtime, config)
    if audit is not None:
        audit.settle = accountant.settle
        audit.on_batch = lambda seconds: gauges.audit_batch.observe((), seconds)
    app[PROXY] = proxy
    app[CONFIG] = config
    app[STORE] = store
    app[RUNTIME] = runtime
    app[WATCH] = watch
    watch.on_unparsed = proxy.unparsed

    async def readyz(request: web.Request) -> web.Response:
        return health.readyz(config.state_path, store, proxy)

    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", endpoint.handle)
    app.router.add_route("*", "/{tail:.*}", proxy.handle, expect_handler=body.no_expect_handler)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        keys.load()
        if audit is not None:
            await audit.start()
        await store.start()
        for upstream in upstreams.values():
            await upstream.start()
            _warn_credential(upstream)
        watch.start()
        yield
        await watch.stop()
        # The server has stopped and its handlers are done: every exchange is queued.
        retiring = dict(runtime.retiring)  # task -> the upstream a reload replaced
        for task in retiring:
            task.cancel()
        await asyncio.gather(*(u.close() for u in (*proxy.upstreams.values(), *retiring.values())))
        if audit is not None:
            await audit.close()  # first: it settles the spend it was left to charge
        await store.close()
        exchange_log.flush()

    app.cleanup_ctx.append(lifecycle)
    return app


def _upstreams(config: Config, running: dict[str, Upstream]) -> dict[str, Upstream]:
    """An upstream per route; one whose route is unchanged is kept (and its pool)."""
    out = {}
    for route in config.routes:
        old = running.get(route.name)
        if old is not None and old.route == route:
            out[route.name] = old
        else:
            out[route.name] = Upstream(route, DIALECTS[route.dialect], config.server.max_upstream_connections)
    return out


def _checks(guards: tuple[GuardCheck, AnswerGuard] | None, limit_checks: list[Check]) -> list[Check]:
    """The preflight, in order: guards, then limits and budget."""
    return ([guards[0]] if guards else []) + limit_checks


def _observe(runtime: Runtime, config: Config) -> None:
    """Metrics and log settings into the running parts; accounting on when anything needs it."""
    runtime.metrics.configure(config.metrics)
    runtime.endpoint.configure(config.metrics)
    runtime.exchange_log.configure(config.log)
    runtime.observer.metrics = runtime.metrics if config.metrics.enabled else None
    runtime.observer.line = runtime.exchange_log if runtime.exchange_log.on else None
    accountant = runtime.proxy.accountant
    assert accountant is not None
    reporting = runtime.observer.metrics is not None or runtime.observer.line is not None
    accountant.done = runtime.observer if reporting else None
    accountant.active = runtime.proxy.audit is not None or reporting or _limited(config)


def _warn_credential(upstream: Upstream) -> None:
    if upstream.credential is None and not upstream.passes_client_key:
        log.warning(
            "route %r has no provider credential: set %s, or its requests get a 500",
            upstream.route.name,
            upstream.route.credential.name,
        )


def build_guards(config: Config) -> tuple[GuardCheck, AnswerGuard] | None:
    """The request guard (first preflight check) and the answer guard, on one engine.

    Everything is compiled here, before the server listens: a bad pattern or a missing
    Hyperscan stops the start with a message, never a request.
    """
    if not config.guards.enabled:
        return None
    from aiogw.guards import catalog

    try:
        patterns = catalog.load(config.guards.patterns, config.guards.disabled)
    except catalog.CatalogError as exc:
        raise ConfigError(f"{config.source}: [guards]: {exc}") from None
    engine = Engine(patterns)
    policy = Policy(config.guards.actions, config.users)
    return GuardCheck(engine, policy), AnswerGuard(engine, policy)


# Seconds a handler the drain cut gets to record itself (its `finally`).
_CUT_GRACE = 2.0
# aiohttp needs a number for its keep-alive bound: `idle_timeout = 0` means a day.
_NO_IDLE_BOUND = 86_400.0


class ListenError(Exception):
    """The listening socket could not be opened (the port is taken, the address wrong)."""


async def start(config: Config, sinks: Iterable[Sink] = (), *, port: int | None = None) -> tuple[web.AppRunner, int]:
    """Start serving; returns the runner (for `cleanup()`) and the bound port."""
    app = build_app(config, sinks)
    # handler_cancellation: a client that leaves while the gateway still waits for the
    # upstream's first byte cancels the handler, which closes the upstream request.
    # The drain is `serve`'s own (drain_seconds); aiohttp's shutdown then only waits
    # for what the drain cut, twice this at most (it waits, cancels, waits).
    # auto_decompress=False: a compressed request body is inflated by `aiogw.body`, after
    # authentication and in slices, never by the protocol as it arrives.
    clients = config.clients
    runner = web.AppRunner(
        app, handler_cancellation=True, access_log=None, shutdown_timeout=_CUT_GRACE, auto_decompress=False,
        keepalive_timeout=clients.idle_timeout or _NO_IDLE_BOUND,
    )
    await runner.setup()  # starts the audit writer and the limits store
    site = connections.Site(
        runner, app[WATCH], config.server.host, config.server.port if port is None else port, backlog=4096,
        reuse_address=True,
    )
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()  # the writer's thread would otherwise keep the process alive
        raise ListenError(
            f"cannot listen on {config.server.host}:{config.server.port if port is None else port}: "
            f"{exc.strerror or exc}; stop what uses it or set [server] port (or --port)"
        ) from None
    server = site._server  # the asyncio Server: the only way to learn an ephemeral port
    bound = server.sockets[0].getsockname()[1] if server is not None and server.sockets else config.server.port
    return runner, bound


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


def _limited(config: Config) -> bool:
    return config.limits.any or any(u.limits.any for u in config.users)


async def reload(app: web.Application, config: Config) -> list[str]:
    """Apply a reloaded config (SIGHUP): routes, users, limits, guards and their policies,
    prices, audit policy and batching, metrics and log settings. New requests get all of
    it at once; an exchange in flight finishes on the upstream and answer guard it began
    with. Counters and spend are kept. Raises, changing nothing, when the new guards do
    not compile. Returns what it did not apply (it needs a restart)."""
    runtime = app[RUNTIME]
    async with runtime.reloading:
        return await _reload(runtime, config)


async def _reload(runtime: Runtime, config: Config) -> list[str]:
    proxy, running = runtime.proxy, runtime.config
    guards = runtime.guards
    if config.guards != running.guards:
        # Compiled in a thread: the loop keeps serving meanwhile.
        guards = await asyncio.get_running_loop().run_in_executor(None, build_guards, config)
    elif guards is not None and _guard_policies(config) != _guard_policies(running):
        guards = _guards_on(guards[0].engine, config)
    upstreams = _upstreams(config, proxy.upstreams)
    for upstream in upstreams.values():
        if upstream.session is None:
            await upstream.start()
            _warn_credential(upstream)
    # From here on, nothing awaits: the switch is one step for new requests.
    for upstream in proxy.upstreams.values():
        if upstream not in upstreams.values():
            task = asyncio.create_task(upstream.retire(), name=f"aiogw-retire-{upstream.route.name}")
            runtime.retiring[task] = upstream
            task.add_done_callback(lambda done: runtime.retiring.pop(done, None))
    accountant = proxy.accountant
    assert accountant is not None
    accountant.ledger.reconfigure(config.limits, {u.name: u.limits for u in config.users})
    accountant.prices = PriceTable(config.prices)
    limit_checks = [c for c in proxy.checks if isinstance(c, (LimitCheck, UsageRequest))]
    proxy.configure(config.user_names(), upstreams, _checks(guards, limit_checks), guards[1] if guards else None)
    runtime.guards = guards
    pending = [f"server.{f.name}" for f in dataclasses.fields(running.server)
               if getattr(running.server, f.name) != getattr(config.server, f.name)]
    if running.state_path != config.state_path:
        pending.append("state.path")
    if running.clients != config.clients:
        pending.append("clients")
    audit = config.audit
    if proxy.audit is not None and audit.enabled:
        proxy.audit.settings = audit
    elif audit.enabled != running.audit.enabled:
        pending.append("audit.enabled")
        audit = running.audit
    if config.log != running.log:
        logs.setup(config.log)
    runtime.config = dataclasses.replace(
        config, server=running.server, state_path=running.state_path, audit=audit, clients=running.clients
    )
    _observe(runtime, runtime.config)
    log.info("reload applied: %s", ", ".join(_changes(running, runtime.config)) or "nothing had changed")
    return pending


def _changes(old: Config, new: Config) -> list[str]:
    """What a reload changed, for its log line: routes and users by name (+added
    -removed ~changed; a user's change says whether its limits or guards)."""
    out = []
    was, now = {r.name: r for r in old.routes}, {r.name: r for r in new.routes}
    routes = ([f"+{n}" for n in now if n not in was] + [f"-{n}" for n in was if n not in now]
              + [f"~{n}" for n in now if n in was and now[n] != was[n]])
    if routes:
        out.append(f"routes ({' '.join(routes)})")
    was_u, now_u = {u.name: u for u in old.users}, {u.name: u for u in new.users}
    users = [f"+{n}" for n in now_u if n not in was_u] + [f"-{n}" for n in was_u if n not in now_u]
    # A user's limits are [limits] with its own keys over them: when [limits] changed,
    # "limits" below says it for everyone, and the users are not listed one by one.
    parts = ("limits", "guards") if old.limits == new.limits else ("guards",)
    for name, user in now_u.items():
        if name in was_u:
            what = [part for part in parts if getattr(user, part) != getattr(was_u[name], part)]
            if what:
                users.append(f"~{name} {'+'.join(what)}")
    if users:
        out.append(f"users ({', '.join(users)})")
    return out + [part for part in ("limits", "guards", "prices", "audit", "metrics", "log")
                  if getattr(old, part) != getattr(new, part)]


def _guard_policies(config: Config) -> tuple:
    return tuple((u.name, u.guards) for u in config.users)


def _guards_on(engine: Engine, config: Config) -> tuple[GuardCheck, AnswerGuard]:
    policy = Policy(config.guards.actions, config.users)
    return GuardCheck(engine, policy), AnswerGuard(engine, policy)


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
        log.info("aiogw stopping: %d exchanges open, up to %gs to finish", proxy.inflight, drain)
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
            await _drained(proxy, _CUT_GRACE, signals)
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
