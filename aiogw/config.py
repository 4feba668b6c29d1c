"""Configuration: one TOML file read once into frozen, validated values.

Every mistake is reported as a `ConfigError` naming the file, the key and what was
expected, so `aiogw check-config` can tell an operator exactly what to fix. This is the
only module that reads the environment: provider credentials are resolved here, once.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

from aiogw.client_settings import ClientLimits, read_clients
from aiogw.limits.settings import DEFAULT_UNKNOWN_PRICE, Limits, PriceSettings, read_limits, read_prices
from aiogw.ops_settings import LogSettings, MetricsSettings, read_log, read_metrics

DIALECTS = ("anthropic", "openai", "gemini")
DEFAULT_MOUNT = "/llm-gateway"
OWN_PATHS = ("healthz", "readyz", "metrics")  # served at the root, whatever the mount


class ConfigError(Exception):
    """A configuration file that cannot be served; the message says where and why."""


@dataclass(frozen=True, slots=True)
class Credential:
    """Where a route's provider key comes from. `secret` is None when it is unset."""

    source: str  # "env" | "file" | "client"
    name: str = ""  # the variable or file it came from, for messages
    secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Upstream timeouts in seconds; 0 means no limit.

    `first_byte` covers a whole non-streaming generation (the provider sends headers
    only when it is done), so it is long; `idle` is the silence allowed between two
    chunks of a stream (providers ping every few seconds while they think).
    """

    connect: float = 10.0
    first_byte: float = 600.0
    idle: float = 300.0
    total: float = 0.0


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    dialect: str
    upstream: str  # scheme://host[:port][/base-path], no trailing slash
    credential: Credential
    timeouts: Timeouts
    # "METHOD /path" patterns (fnmatch, on the decoded path) forwarded on top of the
    # dialect's own endpoints; nothing else reaches the upstream under the route's key.
    allow: tuple[str, ...] = ()


GUARD_CATEGORIES = ("injection", "credential", "pii")
GUARD_PLACES = ("system", "user", "assistant", "tool_result", "tool_definition")
GUARD_ACTIONS = ("block", "redact", "log", "off")


@dataclass(frozen=True, slots=True)
class GuardActions:
    """Actions set explicitly in a config, as ((category, place, action), ...) and the
    action for the model's answers; what is not set falls back (see guards.policy)."""

    places: tuple[tuple[str, str, str], ...] = ()
    response: str | None = None


@dataclass(frozen=True, slots=True)
class GuardSettings:
    enabled: bool = True
    actions: GuardActions = GuardActions()
    patterns: tuple[dict[str, Any], ...] = ()  # user patterns, validated by the catalog
    disabled: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class User:
    name: str
    guards: GuardActions = GuardActions()
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


@dataclass(frozen=True, slots=True)
class Config:
    source: str
    server: Server
    state_path: Path
    routes: tuple[Route, ...]
    users: tuple[User, ...]
    audit: AuditSettings = AuditSettings()
    guards: GuardSettings = GuardSettings()
    limits: Limits = field(default_factory=Limits)
    prices: PriceSettings = field(default_factory=lambda: PriceSettings(DEFAULT_UNKNOWN_PRICE, {}))
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    log: LogSettings = field(default_factory=LogSettings)
    clients: ClientLimits = field(default_factory=ClientLimits)

    def route(self, name: str) -> Route | None:
        for route in self.routes:
            if route.name == name:
                return route
        return None

    def user_names(self) -> frozenset[str]:
        return frozenset(user.name for user in self.users)


TIMEOUT_KEYS = {f"{slot}_timeout" for slot in Timeouts.__slots__}

DEFAULT_ROUTES = (
    ("anthropic", "anthropic", "https://api.anthropic.com", "ANTHROPIC_API_KEY"),
    ("openai", "openai", "https://api.openai.com", "OPENAI_API_KEY"),
    ("google", "gemini", "https://generativelanguage.googleapis.com", "GEMINI_API_KEY"),
)


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
    r = _Reader(source)
    r.only(raw, "", {
        "server", "state", "upstream", "routes", "users", "audit", "guards", "limits", "prices", "metrics", "log",
        "clients",
    })
    server_raw = r.table(raw, "server")
    r.only(server_raw, "server", {"host", "port", "mount", "max_body_bytes", "max_upstream_connections", "drain_seconds"})
    mount = r.get(server_raw, "server.mount", str, DEFAULT_MOUNT).rstrip("/")
    if mount and (not mount.startswith("/") or "?" in mount or "%" in mount):
        r.fail("server.mount", f"expected a path such as {DEFAULT_MOUNT!r}, got {mount!r}")
    server = Server(
        host=r.get(server_raw, "server.host", str, "127.0.0.1"),
        port=r.int_in(server_raw, "server.port", 8080, 0, 65535),
        mount=mount,
        max_body_bytes=r.int_in(server_raw, "server.max_body_bytes", 32 * 1024 * 1024, 1024, 1 << 31),
        max_upstream_connections=r.int_in(server_raw, "server.max_upstream_connections", 16_384, 1, 1 << 20),
        drain_seconds=r.number(server_raw, "server.drain_seconds", 30.0, "drain_seconds"),
    )
    state_raw = r.table(raw, "state")
    r.only(state_raw, "state", {"path"})
    state_path = Path(r.get(state_raw, "state.path", str, "var/aiogw.db"))
    if not state_path.is_absolute():
        state_path = base_dir / state_path

    upstream_raw = r.table(raw, "upstream")
    r.only(upstream_raw, "upstream", TIMEOUT_KEYS)
    defaults = _timeouts(r, upstream_raw, "upstream", Timeouts())
    routes_raw = raw.get("routes", [])
    if not isinstance(routes_raw, list) or not routes_raw:
        r.fail("routes", "expected at least one [[routes]] table")
    routes = tuple(_route(r, item, f"routes[{i}]", defaults, env) for i, item in enumerate(routes_raw))
    names = [route.name for route in routes]
    for name in names:
        if names.count(name) > 1:
            r.fail("routes", f"route name {name!r} is used twice; each route needs its own URL segment")
        if not mount and name in OWN_PATHS:
            r.fail("routes", f"route name {name!r} is the gateway's own /{name} while server.mount is empty; rename it")

    users_raw = raw.get("users", [])
    if not isinstance(users_raw, list):
        r.fail("users", "expected [[users]] tables")
    limits = read_limits(r, r.table(raw, "limits"), "limits")
    users = []
    for i, item in enumerate(users_raw):
        where = f"users[{i}]"
        if not isinstance(item, dict):
            r.fail(where, "expected a table")
        r.only(item, where, {"name", "guards", "limits"})
        users.append(User(
            name=r.name(item, f"{where}.name"),
            guards=_guard_actions(r, r.table(item, "guards"), f"{where}.guards"),
            limits=read_limits(r, r.table(item, "limits"), f"{where}.limits", limits),
        ))
    if len({u.name for u in users}) != len(users):
        r.fail("users", "a user name is listed twice")
    for where, lim in (("limits", limits), *((f"users[{i}] ({u.name}).limits", u.limits) for i, u in enumerate(users))):
        for name in lim.routes or ():
            if not any(c in name for c in "*?[") and name not in names:
                r.fail(f"{where}.routes", f"no route named {name!r}; the routes are {', '.join(names)}")
    return Config(
        source, server, state_path, routes, tuple(users), _audit(r, r.table(raw, "audit")),
        _guards(r, r.table(raw, "guards")), limits, read_prices(r, r.table(raw, "prices")),
        _metrics(r, r.table(raw, "metrics"), env), read_log(r, r.table(raw, "log")),
        read_clients(r, r.table(raw, "clients")),
    )


def _metrics(r: _Reader, table: dict[str, Any], env: dict[str, str]) -> MetricsSettings:
    """`token` comes as the credentials do, from the environment or a file, never inline."""
    token = None
    if "token" in table:
        cred = _credential(r, table["token"], "metrics.token", env)
        if cred.source == "client":
            r.fail("metrics.token", 'expected { env = "VAR" } or { file = "/path" }')
        if cred.secret is None:
            r.fail("metrics.token", f"{cred.source} {cred.name} is empty or not set; set it, or remove metrics.token")
        token = cred.secret
    return read_metrics(r, table, token)


def _guards(r: _Reader, table: dict[str, Any]) -> GuardSettings:
    r.only(table, "guards", {"enabled", "patterns", "disabled", "response", *GUARD_CATEGORIES})
    patterns = table.get("patterns", [])
    if not isinstance(patterns, list) or not all(isinstance(p, dict) for p in patterns):
        r.fail("guards.patterns", "expected [[guards.patterns]] tables")
    disabled = table.get("disabled", [])
    if not isinstance(disabled, list) or not all(isinstance(d, str) for d in disabled):
        r.fail("guards.disabled", "expected a list of pattern ids")
    actions = {k: v for k, v in table.items() if k in (*GUARD_CATEGORIES, "response")}
    return GuardSettings(
        enabled=r.get(table, "guards.enabled", bool, True),
        actions=_guard_actions(r, actions, "guards"),
        patterns=tuple(patterns),
        disabled=tuple(disabled),
    )


def _guard_actions(r: _Reader, table: dict[str, Any], where: str) -> GuardActions:
    """`category = "action"` or `category = { place = "action", ... }`, and `response`."""
    r.only(table, where, {*GUARD_CATEGORIES, "response"})
    places = []
    for category in GUARD_CATEGORIES:
        value = table.get(category)
        if value is None:
            continue
        if isinstance(value, str):
            value = dict.fromkeys(GUARD_PLACES, value)
        if not isinstance(value, dict):
            r.fail(f"{where}.{category}", 'expected an action ("block") or a table of places ({ tool_result = "block" })')
        for place, action in value.items():
            if place not in GUARD_PLACES:
                r.fail(f"{where}.{category}.{place}", f"unknown place; expected one of {', '.join(GUARD_PLACES)}")
            if action not in GUARD_ACTIONS:
                r.fail(f"{where}.{category}.{place}", f"expected one of {', '.join(GUARD_ACTIONS)}, got {action!r}")
            places.append((category, place, action))
    response = table.get("response")
    if response is not None and response not in ("block", "log", "off"):
        r.fail(f"{where}.response", f"expected block, log or off, got {response!r}")
    return GuardActions(tuple(places), response)


def _audit(r: _Reader, table: dict[str, Any]) -> AuditSettings:
    r.only(table, "audit", set(AuditSettings.__slots__))
    policy = r.get(table, "audit.policy", str, "full")
    if policy not in ("full", "redacted", "metadata"):
        r.fail("audit.policy", f"expected full, redacted or metadata, got {policy!r}")
    interval = r.number(table, "audit.flush_interval", 0.25, "flush_interval")
    if not 0.001 <= interval <= 60:
        r.fail("audit.flush_interval", f"expected 0.001 to 60 seconds, got {interval}")
    return AuditSettings(
        enabled=r.get(table, "audit.enabled", bool, True),
        policy=policy,
        queue_size=r.int_in(table, "audit.queue_size", 10_000, 1, 10_000_000),
        queue_bytes=r.int_in(table, "audit.queue_bytes", 256 * 1024 * 1024, 1024 * 1024, 1 << 40),
        batch_size=r.int_in(table, "audit.batch_size", 256, 1, 100_000),
        flush_interval=interval,
    )


def _route(r: _Reader, item: Any, where: str, defaults: Timeouts, env: dict[str, str]) -> Route:
    if not isinstance(item, dict):
        r.fail(where, "expected a table")
    r.only(item, where, {"name", "dialect", "upstream", "credential", "allow", *TIMEOUT_KEYS})
    name = r.name(item, f"{where}.name")
    dialect = r.get(item, f"{where}.dialect", str, None)
    if dialect not in DIALECTS:
        r.fail(f"{where}.dialect", f"expected one of {', '.join(DIALECTS)}, got {dialect!r}")
    upstream = r.get(item, f"{where}.upstream", str, None).rstrip("/")
    parts = urlsplit(upstream)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        r.fail(f"{where}.upstream", f"expected an http(s) base URL such as https://api.anthropic.com, got {upstream!r}")
    return Route(
        name=name,
        dialect=dialect,
        upstream=upstream,
        credential=_credential(r, item.get("credential"), f"{where}.credential", env),
        timeouts=_timeouts(r, item, where, defaults),
        allow=_allow(r, item.get("allow", []), f"{where}.allow"),
    )


# Never forwarded, whatever a route allows: TRACE reflects the request (the provider key
# the gateway added) back to the client; CONNECT would make the gateway a tunnel.
NEVER_FORWARDED = frozenset({"TRACE", "CONNECT"})
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _allow(r: _Reader, value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        r.fail(where, 'expected a list such as ["GET /v1/files", "GET /v1/files/*"]')
    out = []
    for item in value:
        method, _, path = item.strip().partition(" ")
        method, path = method.upper(), path.strip()
        if method in NEVER_FORWARDED:
            r.fail(where, f"{item!r}: {method} is never forwarded")
        if (method not in _METHODS and method != "*") or not path.startswith("/"):
            r.fail(where, f"{item!r}: expected METHOD /path, such as 'GET /v1/files/*' (METHOD may be *)")
        out.append(f"{method} {path}")
    return tuple(out)


def _credential(r: _Reader, value: Any, where: str, env: dict[str, str]) -> Credential:
    if value == "client":
        return Credential("client")
    if isinstance(value, dict) and len(value) == 1 and "env" in value and isinstance(value["env"], str):
        return Credential("env", value["env"], env.get(value["env"]) or None)
    if isinstance(value, dict) and len(value) == 1 and "file" in value and isinstance(value["file"], str):
        try:
            secret = Path(value["file"]).read_text(encoding="utf-8").strip()
        except OSError as exc:
            r.fail(where, f"cannot read credential file {value['file']!r}: {exc.strerror}")
        return Credential("file", value["file"], secret or None)
    r.fail(where, 'expected { env = "VAR" }, { file = "/path" } or "client"')


def _timeouts(r: _Reader, table: dict[str, Any], where: str, base: Timeouts) -> Timeouts:
    """`connect_timeout`, `first_byte_timeout`, ... in [upstream] or in one route."""
    values = {}
    for slot in Timeouts.__slots__:
        name = f"{slot}_timeout"
        values[slot] = r.number(table, f"{where}.{name}", getattr(base, slot), name)
    return Timeouts(**values)


def _a(kind: type) -> str:
    name = {"str": "string", "int": "whole number", "bool": "boolean (true or false)"}.get(kind.__name__, kind.__name__)
    return ("an " if name[0] in "aeiou" else "a ") + name


class _Reader:
    """Typed access to the raw TOML with errors that name the file and the key."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, expected: str) -> NoReturn:
        raise ConfigError(f"{self.source}: {key}: {expected}")

    def only(self, table: dict[str, Any], where: str, allowed: set[str]) -> None:
        for key in table:
            if key not in allowed:
                self.fail(
                    f"{where}.{key}" if where else key, f"unknown key; expected one of {', '.join(sorted(allowed))}"
                )

    def table(self, raw: dict[str, Any], key: str) -> dict[str, Any]:
        value = raw.get(key, {})
        if not isinstance(value, dict):
            self.fail(key, "expected a table")
        return value

    def get(self, table: dict[str, Any], key: str, kind: type, default: Any) -> Any:
        value = table.get(key.rsplit(".", 1)[-1], default)
        if value is None:
            self.fail(key, f"required; expected {_a(kind)}")
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            self.fail(key, f"expected {_a(kind)}, got {value!r}")
        return value

    def int_in(self, table: dict[str, Any], key: str, default: int, lo: int, hi: int) -> int:
        value = self.get(table, key, int, default)
        if not lo <= value <= hi:
            self.fail(key, f"expected a whole number from {lo} to {hi}, got {value}")
        return value

    def number(self, table: dict[str, Any], key: str, default: float, local: str) -> float:
        value = table.get(local, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            self.fail(key, f"expected a number of seconds >= 0 (0 = no limit), got {value!r}")
        return float(value)

    def name(self, table: dict[str, Any], key: str) -> str:
        value = self.get(table, key, str, None)
        if not value or not all(c.isalnum() or c in "-_." for c in value) or value in (".", ".."):
            self.fail(key, f"expected a name of letters, digits, '-', '_' or '.', got {value!r}")
        return value
