"""Builds the aiohttp application and runs it: routes, start-up, shutdown."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path

from aiohttp import web, web_response

from aiogw import body, connections, health, logs, pipeline
from aiogw.audit.recorder import Recorder
from aiogw.audit.writer import AuditWriter
from aiogw.config import Config, ConfigError, unshared_limits
from aiogw.dialects import DIALECTS
from aiogw.exchange import Exchange
from aiogw.finish import Finisher
from aiogw.health import MetricsEndpoint
from aiogw.keys import KeyIndex
from aiogw.limits.accounting import Accountant, ChargeNow
from aiogw.limits.ledger import Ledger
from aiogw.limits.persistence import LimitStore
from aiogw.limits.prices import PriceTable
from aiogw.limits.settings import SharedStore
from aiogw.limits.shared import SharedLedger
from aiogw.logs import ExchangeLog
from aiogw.observe import GatewayMetrics, Observer
from aiogw.pipeline import Guards, Parts, compile_guards
from aiogw.proxy import Proxy
from aiogw.stage import Stages
from aiogw.store import make_store
from aiogw.store.base import StateUnavailable
from aiogw.unauthenticated import KeylessRecords
from aiogw.upstream import Upstream

Sink = Callable[[Exchange], None]

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
        self, config: Config, proxy: Proxy, parts: Parts, guards: Guards | None, observer: Observer,
        gauges: GatewayMetrics, endpoint: MetricsEndpoint, exchange_log: ExchangeLog,
        audit: tuple[Recorder, AuditWriter] | None, sinks: tuple[Sink, ...],
    ) -> None:
        self.config = config
        self.proxy = proxy
        self.parts = parts
        self.guards = guards
        self.observer = observer
        self.metrics = gauges
        self.endpoint = endpoint
        self.exchange_log = exchange_log
        self.audit = audit
        self.sinks = sinks
        # Upstreams a reload replaced, each closing once idle, by the task that closes it.
        self.retiring: dict[asyncio.Task[None], Upstream] = {}
        self.reloading = asyncio.Lock()  # two quick reloads apply one after the other, in order


def local_files(config: Config, worker: int) -> Path:
    """Where one process's own files go (the audit's spool and spill file, named after
    it): `[state] path` for worker 0 (and a single process), `<path>.w<N>` for worker N,
    so no two processes append to one file."""
    path = config.state_path
    return path if worker == 0 else path.with_name(f"{path.name}.w{worker}")


def orphan_spools(config: Config) -> list[Path]:
    """Audit spools of workers numbered past `[server] workers` (there were more at an
    earlier start): worker 0 takes them over, so no record waits in one for ever."""
    path = config.state_path
    out = []
    for spool in sorted(path.parent.glob(f"{path.name}.w*.audit-spool")):
        number = spool.name[len(path.name) + 2:].partition(".")[0]
        if number.isdigit() and int(number) >= config.server.workers:
            out.append(spool)
    return out


def build_app(config: Config, sinks: Iterable[Sink] = (), *, worker: int = 0) -> web.Application:
    """The gateway as an aiohttp Application; nothing listens until it is run. `sinks`
    see every finished exchange, after the finisher (usage, cost, findings known).
    `worker`: this process's number among `[server] workers` (aiogw.workers)."""
    # aiohttp refuses larger bodies itself, before the handler, with a plain-text 413;
    # the proxy translates that into the provider's envelope.
    app = web.Application(client_max_size=config.server.max_body_bytes)
    state = make_store(config.state_path, config.state_url, config.state_password, config.state_timeout)  # opened by lifecycle
    keys = KeyIndex(state)
    upstreams = _upstreams(config, {})
    audit = (
        (Recorder(config.audit), AuditWriter(state, local_files(config, worker), config.audit,
                                             orphan_spools(config) if worker == 0 else ()))
        if config.audit.enabled else None
    )
    writer = audit[1] if audit is not None else None
    guards = compile_guards(config)
    ledger = Ledger(config.limits, {u.name: u.limits for u in config.users})
    shared = SharedLedger(config.limits_store, ledger, state) if config.limits_store is not None else None
    accountant = Accountant(ledger, PriceTable(config.prices), shared)
    store = LimitStore(state, ledger)
    per_minute = config.clients.unauthenticated_records_per_minute
    parts = Parts(Finisher(config.audit), accountant, ChargeNow(accountant), KeylessRecords(per_minute) if per_minute else None)
    proxy = Proxy(config, keys, upstreams, Stages((), keeps_answer=False))  # the stages: _apply, below
    watch = connections.Watch(config.clients)
    gauges = GatewayMetrics(config.metrics, proxy, watch, parts.finisher, audit, parts.keyless, shared)
    exchange_log = ExchangeLog(config.log)
    observer = Observer(gauges, exchange_log)
    endpoint = MetricsEndpoint(gauges)
    runtime = Runtime(config, proxy, parts, guards, observer, gauges, endpoint, exchange_log, audit, tuple(sinks))
    _apply(runtime, config, upstreams)
    if writer is not None:
        writer.on_batch = lambda seconds: gauges.audit_batch.observe((), seconds)
    app[PROXY] = proxy
    app[CONFIG] = config
    app[STORE] = store
    app[RUNTIME] = runtime
    app[WATCH] = watch
    watch.on_unparsed = proxy.unparsed

    async def readyz(request: web.Request) -> web.Response:
        return health.readyz(config.state_path, store, proxy, parts.finisher, writer, shared)

    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", endpoint.handle)
    app.router.add_route("*", "/{tail:.*}", proxy.handle, expect_handler=body.no_expect_handler)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        # The folder of [state] path holds the SQLite file, or with PostgreSQL the spool:
        # made now, so that a database away later finds it (a gateway that could not
        # spool would hold its records in memory and lose them at shutdown).
        try:
            config.state_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateUnavailable(f"cannot make the folder of [state] path {config.state_path.parent}: "
                                   f"{exc.strerror or exc}; make it, writable by the gateway's user") from None
        await state.open()  # SchemaError, StateUnavailable: the gateway does not start
        if config.limits_counted or shared is not None:
            if not await state.claim_limits(shared is not None):
                await state.close()
                raise StateUnavailable(
                    f"another gateway with limits in its own memory uses the state database {state.where}; {_UNSHARED}"
                    if shared is None else
                    f"a gateway with limits in its own memory uses the state database {state.where}: it and this one "
                    "would each count the limits. Give it the same [limits] store, or stop it, first")
        if shared is not None:
            try:
                await shared.start()  # before anything else runs: its credentials refused stop the start
            except BaseException:
                await state.close()
                raise
        await keys.load()
        if writer is not None:
            await writer.start()
        parts.finisher.start()
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
        await parts.finisher.close()  # first: it charges the spend and builds the records
        if writer is not None:
            await writer.close()
        if shared is not None:
            await shared.close()
        await store.close()
        await state.close()
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


def _apply(runtime: Runtime, config: Config, upstreams: dict[str, Upstream]) -> None:
    """The config into the running parts, the stages built from it, and new requests
    switched to both at once (nothing here awaits)."""
    runtime.metrics.configure(config.metrics)
    runtime.endpoint.configure(config.metrics)
    runtime.exchange_log.configure(config.log)
    observer = runtime.observer
    observer.metrics = runtime.metrics if config.metrics.enabled else None
    observer.line = runtime.exchange_log if runtime.exchange_log.on else None
    reporting = observer.metrics is not None or observer.line is not None
    parts = runtime.parts
    recorder, writer = runtime.audit if runtime.audit is not None else (None, None)
    if recorder is not None and writer is not None:
        recorder.settings = writer.settings = config.audit
    # Usage is read and charged when something reads it: the audit, the metrics, the
    # log line, or limits (a user without limits is then charged in the finisher too).
    accounting = recorder is not None or reporting or pipeline.limits_any(config)
    parts.finisher.configure(
        config.audit, settle=parts.accountant.settle if accounting else None, report=observer if reporting else None,
        recorder=recorder, writer=writer, sinks=runtime.sinks,
    )
    runtime.proxy.configure(config.user_names(), upstreams, pipeline.build(config, parts, runtime.guards))


def _warn_credential(upstream: Upstream) -> None:
    if upstream.credential is None and not upstream.passes_client_key:
        log.warning(
            "route %r has no provider credential: set %s, or its requests get a 500",
            upstream.route.name,
            upstream.route.credential.name,
        )


# Seconds a handler the drain cut gets to record itself (its `finally`).
CUT_GRACE = 2.0
# aiohttp needs a number for its keep-alive bound: `idle_timeout = 0` means a day.
_NO_IDLE_BOUND = 86_400.0


class ListenError(Exception):
    """The listening socket could not be opened (the port is taken, the address wrong)."""


async def start(
    config: Config, sinks: Iterable[Sink] = (), *, port: int | None = None, worker: int = 0
) -> tuple[web.AppRunner, int]:
    """Start serving; returns the runner (for `cleanup()`) and the bound port. With
    several workers each listens on the one port (SO_REUSEPORT: the kernel spreads the
    connections over them)."""
    app = build_app(config, sinks, worker=worker)
    # handler_cancellation: a client that leaves while the gateway still waits for the
    # upstream's first byte cancels the handler, which closes the upstream request.
    # The drain is `serve`'s own (drain_seconds); aiohttp's shutdown then only waits
    # for what the drain cut, twice this at most (it waits, cancels, waits).
    # auto_decompress=False: a compressed request body is inflated by `aiogw.body`, after
    # authentication and in slices, never by the protocol as it arrives.
    clients = config.clients
    runner = web.AppRunner(
        app, handler_cancellation=True, access_log=None, shutdown_timeout=CUT_GRACE, auto_decompress=False,
        keepalive_timeout=clients.idle_timeout or _NO_IDLE_BOUND,
    )
    await runner.setup()  # starts the audit writer and the limits store
    site = connections.Site(
        runner, app[WATCH], config.server.host, config.server.port if port is None else port, backlog=4096,
        reuse_address=True, reuse_port=config.server.workers > 1,
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


# Why several gateways cannot each keep limits in memory, and what to do.
_UNSHARED = ("each would count the limits on its own (the real limit would be the limit times the gateways): set "
             "[limits] store = \"redis://HOST:PORT/DB\" in every gateway's config, or run one gateway")


async def reload(app: web.Application, config: Config) -> list[str]:
    """Apply a reloaded config (SIGHUP): routes, users, limits, guards and their policies,
    prices, audit policy and batching, metrics and log settings. New requests get all of
    it at once; an exchange in flight finishes on the upstream and answer guard it began
    with. Counters and spend are kept. Raises, changing nothing, when the new guards do
    not compile. Returns what it did not apply (it needs a restart)."""
    runtime = app[RUNTIME]
    async with runtime.reloading:
        if runtime.parts.accountant.shared is None and config.limits_counted:
            # Limits in this process's memory: right only for one process on this database.
            if runtime.config.server.workers > 1:
                raise ConfigError(f"{config.source}: {unshared_limits(runtime.config.server.workers)}")
            if not await app[STORE].store.claim_limits(False):
                raise ConfigError(f"{config.source}: another gateway with limits in its own memory uses the state "
                                  f"database; {_UNSHARED}")
        return await _reload(runtime, config)


async def _reload(runtime: Runtime, config: Config) -> list[str]:
    proxy, running = runtime.proxy, runtime.config
    guards = runtime.guards
    if config.guards != running.guards:
        # Compiled in a thread: the loop keeps serving meanwhile.
        guards = await asyncio.get_running_loop().run_in_executor(None, compile_guards, config)
    elif guards is not None and _guard_policies(config) != _guard_policies(running):
        guards = pipeline.guards_on(guards.request.engine, config)
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
    accountant = runtime.parts.accountant
    accountant.ledger.reconfigure(config.limits, {u.name: u.limits for u in config.users})
    accountant.prices = PriceTable(config.prices)
    runtime.guards = guards
    pending = [f"server.{f.name}" for f in dataclasses.fields(running.server)
               if getattr(running.server, f.name) != getattr(config.server, f.name)]
    if running.state_path != config.state_path:
        pending.append("state.path")
    if (running.state_url, running.state_password, running.state_timeout) != (
            config.state_url, config.state_password, config.state_timeout):
        pending.append("state.url")
    if running.clients != config.clients:
        pending.append("clients")
    limits_store = _limits_store(running.limits_store, config.limits_store, pending)
    if accountant.shared is not None and limits_store is not None:
        accountant.shared.settings = limits_store  # on_store_failure, reservation_seconds: now
    audit = config.audit
    if audit.enabled != running.audit.enabled:
        pending.append("audit.enabled")
        audit = running.audit
    if config.log != running.log:
        logs.setup(config.log)
    runtime.config = dataclasses.replace(
        config, server=running.server, state_path=running.state_path, audit=audit, clients=running.clients,
        state_url=running.state_url, state_password=running.state_password, state_timeout=running.state_timeout,
        limits_store=limits_store,
    )
    _apply(runtime, runtime.config, upstreams)
    log.info("reload applied: %s", ", ".join(changes(running, runtime.config)) or "nothing had changed")
    return pending


def _limits_store(running: SharedStore | None, fresh: SharedStore | None, pending: list[str]) -> SharedStore | None:
    """The [limits] store a reload leaves running: another Redis (or none, or one where
    there was none) needs a restart; what admission does while it is away does not."""
    if running is None or fresh is None or (running.url, running.password) != (fresh.url, fresh.password):
        if running != fresh:
            pending.append("limits.store")
        return running
    return fresh


def changes(old: Config, new: Config) -> list[str]:
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
    return out + [part for part in ("limits", "limits_store", "guards", "prices", "audit", "metrics", "log")
                  if getattr(old, part) != getattr(new, part)]


def _guard_policies(config: Config) -> tuple:
    return tuple((u.name, u.guards) for u in config.users)
