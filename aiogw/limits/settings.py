"""The `[limits]` and `[prices]` tables of the config, read into frozen dataclasses.

    [limits]                       # defaults for every user; omitted = unlimited
    requests_per_minute = 600
    tokens_per_minute = 2000000
    max_concurrent = 32
    daily_budget_usd = 50.0
    monthly_budget_usd = 500.0
    models = ["claude-*", "gpt-5*"]   # allowed models (globs); omitted = any
    routes = ["anthropic"]            # allowed routes; omitted = any
    store = "redis://10.0.0.5:6379/0" # shared by every worker and instance; omitted = this process's memory
    password = { env = "AIOGW_REDIS_PASSWORD" }
    on_store_failure = "open"         # or "closed": what admission does while Redis is away
    reservation_seconds = 30          # how long a dead process's requests keep their slots and budget

A user's `limits = { ... }` replaces the keys it names and keeps the defaults' others.

    [prices]
    default = { input = 3.0, output = 15.0 }   # USD per million tokens, unknown models
    [prices.models."my-finetune"]              # added to (or replacing) the shipped table
    input = 1.0
    output = 4.0
"""

from __future__ import annotations

import math
import urllib.parse
from dataclasses import dataclass, field, fields, replace
from typing import Any

STORE_KEYS = ("store", "password", "on_store_failure", "reservation_seconds", "leases")
STORE_SCHEMES = ("redis", "rediss", "unix", "redis+sentinel", "rediss+sentinel")
LIMIT_KEYS = ("requests_per_minute", "tokens_per_minute", "max_concurrent", "daily_budget_usd", "monthly_budget_usd")
PRICE_KEYS = ("input", "output", "cache_write", "cache_write_1h", "cache_read")


@dataclass(frozen=True, slots=True)
class Limits:
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    max_concurrent: int | None = None
    daily_budget_usd: float | None = None
    monthly_budget_usd: float | None = None
    models: tuple[str, ...] | None = None
    routes: tuple[str, ...] | None = None

    @property
    def any(self) -> bool:
        return any(getattr(self, f.name) is not None for f in fields(self))

    @property
    def counted(self) -> bool:
        """Whether a limit needs counters (rates, concurrency, budgets), which processes
        must share; allowed models and routes need none."""
        return any(getattr(self, key) is not None for key in LIMIT_KEYS)


@dataclass(frozen=True, slots=True)
class SharedStore:
    """`[limits] store`: the Redis that every worker and instance keeps its limits in."""

    url: str
    password: str | None = field(default=None, repr=False)
    # "open": while Redis is away each process admits on its own counters (a limit then
    # holds per process); "closed": every request of a limited user is refused (503).
    on_failure: str = "open"
    # A request's reservation (its concurrency slot, its estimated cost) lives this long
    # unless its process renews it: what a process that died holds, and for how long.
    reservation_seconds: int = 30
    # A busy user's admissions made on a share of its limits leased to the process
    # (aiogw.limits.lease), not one round trip each; False: every admission asks Redis.
    leases: bool = True


@dataclass(frozen=True, slots=True)
class PriceSettings:
    # Charged for a model the table does not know: never free, and flagged.
    default: dict[str, float]
    models: dict[str, dict[str, Any]]


DEFAULT_UNKNOWN_PRICE = {"input": 15.0, "output": 75.0}


def read_limits(r: Any, table: dict[str, Any], where: str, base: Limits | None = None) -> Limits:
    """`table` over `base` (the defaults), key by key. `r` is the config's reader."""
    r.only(table, where, {*LIMIT_KEYS, "models", "routes"})
    out = base or Limits()
    changes: dict[str, Any] = {}
    for key in ("requests_per_minute", "tokens_per_minute", "max_concurrent"):
        if key in table:
            value = table[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                r.fail(f"{where}.{key}", f"expected a whole number of 1 or more, got {value!r} (to stop a user, "
                       "revoke its keys or take it out of [[users]]; to lift the limit, leave the key out)")
            changes[key] = value
    for key in ("daily_budget_usd", "monthly_budget_usd"):
        if key in table:
            value = table[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or math.isnan(value):
                r.fail(f"{where}.{key}", f"expected an amount in USD >= 0, got {value!r}")
            changes[key] = float(value)
    for key in ("models", "routes"):
        if key in table:
            value = table[key]
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                r.fail(f"{where}.{key}", 'expected a list of names or glob patterns, such as ["claude-*"]')
            changes[key] = tuple(value)
    return replace(out, **changes)


def read_store(r: Any, table: dict[str, Any], password: str | None) -> SharedStore | None:
    """`store`, `password` (read by the caller, as the other secrets) and
    `on_store_failure` of [limits]; None without a store."""
    on_failure = r.get(table, "limits.on_store_failure", str, "open")
    if on_failure not in ("open", "closed"):
        r.fail("limits.on_store_failure", f"expected \"open\" or \"closed\", got {on_failure!r}")
    if "store" not in table:
        for key in STORE_KEYS[1:]:
            if key in table:
                r.fail(f"limits.{key}", "needs [limits] store = \"redis://HOST:PORT/DB\"")
        return None
    url = r.get(table, "limits.store", str, None)
    problem = _store_url_problem(url)
    if problem is not None:
        r.fail("limits.store", problem)
    return SharedStore(url, password, on_failure, r.int_in(table, "limits.reservation_seconds", 30, 5, 3600),
                       r.get(table, "limits.leases", bool, True))


_STORE_FORMS = ("expected redis://HOST[:PORT][/DB], rediss:// (TLS), unix:///PATH[?db=N] or "
                "redis+sentinel://HOST:PORT[,HOST:PORT]/SERVICE[/DB]")
_STORE_QUERY = {"redis": set(), "rediss": {"ssl_ca_certs", "ssl_cert_reqs"}, "unix": {"db"}}


def _store_url_problem(url: str) -> str | None:
    """What is wrong with a `[limits] store` URL, or None: everything the gateway would
    trip on when it connects is said here, by check-config."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme
    if scheme not in STORE_SCHEMES or not (parts.netloc or parts.path):
        return _STORE_FORMS
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    if parts.password is not None or any(k == "password" for k, _ in query):
        return ("the URL holds a password: move it to [limits] password = { env = \"VAR\" } or { file = \"/path\" }, "
                "so the config file holds no secret")
    known = _STORE_QUERY[scheme.removesuffix("+sentinel")]
    for key, value in query:
        if key not in known:
            return f"unknown URL option {key!r}; {scheme}:// takes {', '.join(sorted(known)) or 'none'}"
        if key == "ssl_cert_reqs" and value not in ("required", "none"):
            return f"ssl_cert_reqs is 'required' (the default) or 'none', not {value!r}"
        if key == "db" and not value.isdigit():
            return f"db is a database number, not {value!r}"
    segments = [seg for seg in parts.path.split("/") if seg]
    if scheme == "unix":
        return None if parts.path.startswith("/") else "expected unix:///ABSOLUTE/PATH/redis.sock[?db=N]"
    hosts = [parts.netloc.rpartition("@")[2]] if not scheme.endswith("+sentinel") else \
        parts.netloc.rpartition("@")[2].split(",")
    for host in hosts:
        name, _, port = host.rpartition(":") if host.count(":") == 1 else (host, "", "")
        if not (name or host) or (port and not (port.isdigit() and 0 < int(port) < 65536)):
            return f"{host!r} is not HOST[:PORT] with a port of 1 to 65535"
    if scheme.endswith("+sentinel"):
        if not segments:
            return "a Sentinel URL names the master's service: redis+sentinel://HOST:PORT/SERVICE[/DB]"
        segments = segments[1:]
    if len(segments) > 1 or (segments and not segments[0].isdigit()):
        return f"the path is a database number, such as /0, not {parts.path!r}"
    return None


def read_prices(r: Any, table: dict[str, Any]) -> PriceSettings:
    r.only(table, "prices", {"default", "models"})
    default = _price(r, table.get("default", DEFAULT_UNKNOWN_PRICE), "prices.default")
    models_raw = r.table(table, "models")
    models = {}
    for name, entry in models_raw.items():
        where = f'prices.models."{name}"'
        if not isinstance(entry, dict):
            r.fail(where, "expected a table of prices, such as { input = 3.0, output = 15.0 }")
        r.only(entry, where, {*PRICE_KEYS, "aliases", "long_context", "provider"})
        models[name] = _model(r, entry, where)
    return PriceSettings(default, models)


def _model(r: Any, entry: dict[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = _price(r, {k: v for k, v in entry.items() if k in PRICE_KEYS}, where)
    aliases = entry.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        r.fail(f"{where}.aliases", "expected a list of model ids")
    out["aliases"] = tuple(aliases)
    long = entry.get("long_context")
    if long is not None:
        if not isinstance(long, dict) or not isinstance(long.get("above"), int) or long["above"] <= 0:
            r.fail(f"{where}.long_context", "expected { above = TOKENS, input = ..., output = ... }")
        r.only(long, f"{where}.long_context", {*PRICE_KEYS, "above"})
        out["long_context"] = {"above": long["above"], **_price(r, {k: v for k, v in long.items() if k != "above"},
                                                                  f"{where}.long_context")}
    return out


def _price(r: Any, table: Any, where: str) -> dict[str, float]:
    if not isinstance(table, dict):
        r.fail(where, "expected a table of prices in USD per million tokens, such as { input = 3.0, output = 15.0 }")
    r.only(table, where, set(PRICE_KEYS))
    out = {}
    for key, value in table.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            r.fail(f"{where}.{key}", f"expected USD per million tokens >= 0, got {value!r}")
        out[key] = float(value)
    if "input" not in out or "output" not in out:
        r.fail(where, "needs at least input and output (USD per million tokens)")
    return out
