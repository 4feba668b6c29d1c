"""Configuration: one TOML file read once into frozen, validated values.

Every mistake is reported as a `ConfigError` naming the file, the key and what was
expected, so `aiogw check-config` can tell an operator exactly what to fix. This is the
only module that reads the environment: provider credentials are resolved at load, once.

The sections have modules of their own, each reading its tables with the one `Reader`:
`config_routes` ([upstream], [[routes]], credentials), `config_guards` ([guards]),
`limits.settings`, `client_settings` and `ops_settings`. This one reads the rest and
puts them together into one `Config`.
"""

from __future__ import annotations

import os
import tomllib
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiogw.client_settings import ClientLimits, read_clients
from aiogw.config_guards import GuardActions, GuardSettings, read_guard_actions, read_guards
from aiogw.config_reader import ConfigError, Reader
from aiogw.config_routes import (
    DEFAULT_ROUTES,
    TIMEOUT_KEYS,
    Route,
    Timeouts,
    read_route,
    read_secret,
    read_timeouts,
)
from aiogw.limits.settings import (
    DEFAULT_UNKNOWN_PRICE,
    STORE_KEYS,
    Limits,
    PriceSettings,
    SharedStore,
    read_limits,
    read_prices,
    read_store,
)
from aiogw.ops_settings import LogSettings, MetricsSettings, read_log, read_metrics

DEFAULT_MOUNT = "/llm-gateway"
OWN_PATHS = ("healthz", "readyz", "metrics")  # served at the root, whatever the mount


@dataclass(frozen=True, slots=True)
class User:
    name: str
    guards: GuardActions = field(default_factory=GuardActions)
    limits: Limits = field(default_factory=Limits)  # the [limits] defaults with this user's own keys over them


@dataclass(frozen=True, slots=True)
class Server:
    host: str = "127.0.0.1"
    port: int = 8080
    mount: str = DEFAULT_MOUNT
    max_body_bytes: int = 32 * 1024 * 1024
    # Per upstream: the default (100) would queue agents behind each other once a
    # hundred streams are open; each stream holds one connection for its whole life.
    max_upstream_connections: int = 16_384
    # On SIGTERM: how long open exchanges (an agent's stream) may run on before they are
    # cut. Keep systemd's TimeoutStopSec above it.
    drain_seconds: float = 30.0
    # Worker processes on the one port, each its own event loop (aiogw.workers); more
    # than one needs [limits] store when any limit is set.
    workers: int = 1
    # Balancers whose X-Forwarded-For names the client (aiogw.forwarded): networks.
    trusted_proxies: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AuditSettings:
    enabled: bool = True
    policy: str = "full"  # full | redacted | metadata
    # Records waiting for the writer before new requests are refused (fail-closed).
    # 10,000 is minutes of agent traffic at a batch a quarter second; each waits with
    # its request and response in memory, so this also bounds the gateway's memory.
    queue_size: int = 10_000
    # The same bound in bytes of queued bodies and answers: agents' requests are large.
    queue_bytes: int = 256 * 1024 * 1024
    batch_size: int = 256
    flush_interval: float = 0.25  # seconds
    # Batches the database could not take, on local disk until it returns (audit.spool).
    spool_bytes: int = 1024 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Config:
    source: str
    server: Server
    state_path: Path
    routes: tuple[Route, ...]
    users: tuple[User, ...]
    audit: AuditSettings = AuditSettings()
    guards: GuardSettings = field(default_factory=GuardSettings)
    limits: Limits = field(default_factory=Limits)
    prices: PriceSettings = field(default_factory=lambda: PriceSettings(DEFAULT_UNKNOWN_PRICE, {}))
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    log: LogSettings = field(default_factory=LogSettings)
    clients: ClientLimits = field(default_factory=ClientLimits)
    # [state] url: PostgreSQL instead of the SQLite file at state_path (which then only
    # names where the gateway's local files go: the audit's spill file). The password
    # comes from { env } or { file }, never from the URL, and is never shown.
    state_url: str | None = None
    state_password: str | None = field(default=None, repr=False)
    state_timeout: float = 30.0  # [state] timeout: seconds an audit batch's statement may take
    # [limits] store: Redis, shared by every worker and instance; None: this process's memory.
    limits_store: SharedStore | None = None

    def route(self, name: str) -> Route | None:
        for route in self.routes:
            if route.name == name:
                return route
        return None

    def user_names(self) -> frozenset[str]:
        return frozenset(user.name for user in self.users)

    @property
    def limits_counted(self) -> bool:
        """Whether some limit needs counters (rates, concurrency, budgets), which the
        processes serving its users must share."""
        return self.limits.counted or any(u.limits.counted for u in self.users)


def unshared(config: Config, workers: int) -> str | None:
    """Why `workers` processes cannot serve this config's limits (counted in each
    process's memory, each would admit the whole limit), or None when they can."""
    return unshared_limits(workers) if workers > 1 and config.limits_store is None and config.limits_counted else None


def unshared_limits(workers: int) -> str:
    """Why limits in one process's memory cannot serve `workers` processes."""
    return (f"{workers} worker processes with limits need a store they share, or each would admit the whole limit "
            "(the real limit would be the limit times the workers): set [limits] store = \"redis://HOST:PORT/DB\", "
            "or run one worker")


CONFIG_ENV = "AIOGW_CONFIG"


def config_path_from_env(env: dict[str, str] | None = None) -> str | None:
    """The config file `AIOGW_CONFIG` names, for a command run without --config (so the
    key and audit commands find the gateway's database without being told each time)."""
    value = (os.environ if env is None else env).get(CONFIG_ENV, "").strip()
    return value or None


def load(path: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None) -> Config:
    """Read and validate a config file; with no path, the defaults (real providers)."""
    env = dict(os.environ) if env is None else env
    if path is None:
        raw: dict[str, Any] = {
            "routes": [
                {"name": n, "dialect": d, "upstream": u, "credential": {"env": v}} for n, d, u, v in DEFAULT_ROUTES
            ]
        }
        return _build(raw, "<defaults>", Path.cwd(), env)
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the config file: {exc.strerror}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    return _build(raw, str(file), file.resolve().parent, env)


def _build(raw: dict[str, Any], source: str, base_dir: Path, env: dict[str, str]) -> Config:
    r = Reader(source)
    r.only(raw, "", {
        "server", "state", "upstream", "routes", "users", "audit", "guards", "limits", "prices", "metrics", "log",
        "clients",
    })
    server_raw = r.table(raw, "server")
    r.only(server_raw, "server", {"host", "port", "mount", "max_body_bytes", "max_upstream_connections", "drain_seconds",
                               "workers", "trusted_proxies"})
    mount = r.get(server_raw, "server.mount", str, DEFAULT_MOUNT).rstrip("/")
    if mount and (not mount.startswith("/") or "?" in mount or "%" in mount):
        r.fail("server.mount", f"expected a path such as {DEFAULT_MOUNT!r}, got {mount!r}")
    server = Server(
        host=r.get(server_raw, "server.host", str, "127.0.0.1"),
        port=r.int_in(server_raw, "server.port", 8080, 0, 65535),
        mount=mount,
        max_body_bytes=r.int_in(server_raw, "server.max_body_bytes", 32 * 1024 * 1024, 1024, 1 << 31),
        max_upstream_connections=r.int_in(server_raw, "server.max_upstream_connections", 16_384, 1, 1 << 20),
        drain_seconds=r.number(server_raw, "server.drain_seconds", 30.0),
        workers=r.int_in(server_raw, "server.workers", 1, 1, 64),
        trusted_proxies=r.networks(server_raw.get("trusted_proxies", []), "server.trusted_proxies"),
    )
    state_raw = r.table(raw, "state")
    r.only(state_raw, "state", {"path", "url", "password", "timeout"})
    state_path = Path(r.get(state_raw, "state.path", str, "var/aiogw.db"))
    if not state_path.is_absolute():
        state_path = base_dir / state_path
    state_url, state_password = _state_url(r, state_raw, env)
    state_timeout = r.number(state_raw, "state.timeout", 30.0)
    if not 0.1 <= state_timeout <= 600:
        r.fail("state.timeout", f"expected 0.1 to 600 seconds, got {state_timeout}")

    upstream_raw = r.table(raw, "upstream")
    r.only(upstream_raw, "upstream", TIMEOUT_KEYS)
    defaults = read_timeouts(r, upstream_raw, "upstream", Timeouts())
    routes_raw = raw.get("routes", [])
    if not isinstance(routes_raw, list) or not routes_raw:
        r.fail("routes", "expected at least one [[routes]] table")
    routes = tuple(read_route(r, item, f"routes[{i}]", defaults, env) for i, item in enumerate(routes_raw))
    names = [route.name for route in routes]
    for name in names:
        if names.count(name) > 1:
            r.fail("routes", f"route name {name!r} is used twice; each route needs its own URL segment")
        if not mount and name in OWN_PATHS:
            r.fail("routes", f"route name {name!r} is the gateway's own /{name} while server.mount is empty; rename it")

    users_raw = raw.get("users", [])
    if not isinstance(users_raw, list):
        r.fail("users", "expected [[users]] tables")
    limits_raw = dict(r.table(raw, "limits"))
    store_raw = {key: limits_raw.pop(key) for key in STORE_KEYS if key in limits_raw}
    limits = read_limits(r, limits_raw, "limits")
    limits_store = read_store(r, store_raw, read_secret(r, store_raw["password"], "limits.password", env)
                              if "password" in store_raw else None)
    users = []
    for i, item in enumerate(users_raw):
        where = f"users[{i}]"
        if not isinstance(item, dict):
            r.fail(where, "expected a table")
        r.only(item, where, {"name", "guards", "limits"})
        users.append(User(
            name=r.name(item, f"{where}.name"),
            guards=read_guard_actions(r, r.table(item, "guards"), f"{where}.guards"),
            limits=read_limits(r, r.table(item, "limits"), f"{where}.limits", limits),
        ))
    if len({u.name for u in users}) != len(users):
        r.fail("users", "a user name is listed twice")
    for where, lim in (("limits", limits), *((f"users[{i}] ({u.name}).limits", u.limits) for i, u in enumerate(users))):
        for name in lim.routes or ():
            if not any(c in name for c in "*?[") and name not in names:
                r.fail(f"{where}.routes", f"no route named {name!r}; the routes are {', '.join(names)}")
    config = Config(
        source, server, state_path, routes, tuple(users), _audit(r, r.table(raw, "audit")),
        read_guards(r, r.table(raw, "guards")), limits, read_prices(r, r.table(raw, "prices")),
        _metrics(r, r.table(raw, "metrics"), env), read_log(r, r.table(raw, "log")),
        read_clients(r, r.table(raw, "clients")), state_url, state_password, state_timeout, limits_store,
    )
    if (problem := unshared(config, server.workers)) is not None:
        r.fail("server.workers", problem)
    return config


def _state_url(r: Reader, table: dict[str, Any], env: dict[str, str]) -> tuple[str | None, str | None]:
    """[state] url and password: a PostgreSQL URL without a password in it, the password
    from { env = ... } or { file = ... } like a provider key."""
    if "url" not in table:
        if "password" in table:
            r.fail("state.password", "a password needs [state] url (SQLite takes none)")
        return None, None
    url = r.get(table, "state.url", str, None)
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres") or (not parts.hostname and "host=" not in parts.query):
        r.fail("state.url", "expected postgresql://USER@HOST[:PORT]/DATABASE (TLS options such as ?sslmode=verify-full "
               "may follow); for SQLite, set [state] path instead")
    if parts.password is not None or "password" in dict(urllib.parse.parse_qsl(parts.query)):
        r.fail("state.url", "the URL holds a password: move it to [state] password = { env = \"VAR\" } or "
               "{ file = \"/path\" }, so the config file holds no secret")
    password = read_secret(r, table["password"], "state.password", env) if "password" in table else None
    return url, password


def _metrics(r: Reader, table: dict[str, Any], env: dict[str, str]) -> MetricsSettings:
    """`token` comes as the credentials do, from the environment or a file, never inline."""
    token = (read_secret(r, table["token"], "metrics.token", env, "; set it, or remove metrics.token")
             if "token" in table else None)
    return read_metrics(r, table, token)


def _audit(r: Reader, table: dict[str, Any]) -> AuditSettings:
    r.only(table, "audit", set(AuditSettings.__slots__))
    policy = r.get(table, "audit.policy", str, "full")
    if policy not in ("full", "redacted", "metadata"):
        r.fail("audit.policy", f"expected full, redacted or metadata, got {policy!r}")
    interval = r.number(table, "audit.flush_interval", 0.25)
    if not 0.001 <= interval <= 60:
        r.fail("audit.flush_interval", f"expected 0.001 to 60 seconds, got {interval}")
    return AuditSettings(
        enabled=r.get(table, "audit.enabled", bool, True),
        policy=policy,
        queue_size=r.int_in(table, "audit.queue_size", 10_000, 1, 10_000_000),
        queue_bytes=r.int_in(table, "audit.queue_bytes", 256 * 1024 * 1024, 1024 * 1024, 1 << 40),
        batch_size=r.int_in(table, "audit.batch_size", 256, 1, 100_000),
        flush_interval=interval,
        spool_bytes=r.int_in(table, "audit.spool_bytes", 1024 * 1024 * 1024, 1024 * 1024, 1 << 44),
    )

