"""`[upstream]` and `[[routes]]`: where each route forwards, under which key, with
which timeouts, and which extra endpoints it lets through.

Credentials are resolved here, once, from the environment `aiogw.config.load` hands
over or from a file; nothing reads the environment on a request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiogw.config_reader import Reader

DIALECTS = ("anthropic", "openai", "gemini")


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


TIMEOUT_KEYS = {f"{slot}_timeout" for slot in Timeouts.__slots__}

DEFAULT_ROUTES = (
    ("anthropic", "anthropic", "https://api.anthropic.com", "ANTHROPIC_API_KEY"),
    ("openai", "openai", "https://api.openai.com", "OPENAI_API_KEY"),
    ("google", "gemini", "https://generativelanguage.googleapis.com", "GEMINI_API_KEY"),
)


def read_route(r: Reader, item: Any, where: str, defaults: Timeouts, env: dict[str, str]) -> Route:
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
        credential=read_credential(r, item.get("credential"), f"{where}.credential", env),
        timeouts=read_timeouts(r, item, where, defaults),
        allow=_allow(r, item.get("allow", []), f"{where}.allow"),
    )


# Never forwarded, whatever a route allows: TRACE reflects the request (the provider key
# the gateway added) back to the client; CONNECT would make the gateway a tunnel.
NEVER_FORWARDED = frozenset({"TRACE", "CONNECT"})
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _allow(r: Reader, value: Any, where: str) -> tuple[str, ...]:
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


def read_credential(r: Reader, value: Any, where: str, env: dict[str, str]) -> Credential:
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


def read_secret(r: Reader, value: Any, where: str, env: dict[str, str], unset: str = "") -> str:
    """A secret the gateway itself uses (the metrics token, the database password): from
    { env = "VAR" } or { file = "/path" } like a provider key, never inline and never
    "client"; unset or empty is an error, `unset` saying what else may be done."""
    if not isinstance(value, dict):  # "client" and inline text: neither is a secret of the gateway's
        r.fail(where, 'expected { env = "VAR" } or { file = "/path" }, so the config file holds no secret')
    credential = read_credential(r, value, where, env)
    if credential.secret is None:
        r.fail(where, f"{credential.source} {credential.name} is empty or not set{unset}")
    return credential.secret


def read_timeouts(r: Reader, table: dict[str, Any], where: str, base: Timeouts) -> Timeouts:
    """`connect_timeout`, `first_byte_timeout`, ... in [upstream] or in one route."""
    values = {slot: r.number(table, f"{where}.{slot}_timeout", getattr(base, slot)) for slot in Timeouts.__slots__}
    return Timeouts(**values)

