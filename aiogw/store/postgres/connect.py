"""Reaching the server: the URL read once, the pool, and failures said plainly.

`Target` is what a URL names (host, port, database, user) and `where` is the URL
without its password: both go into messages and logs, never the password. A failure to
connect becomes `StateUnavailable` naming the target, the reason in words and what to
check, without a traceback. `TRANSIENT` is what a batch that failed may be retried
after: the server away, restarting, full or busy, never something a record holds.
`failure` says, as one line for a command, what went wrong once connected.
"""

from __future__ import annotations

import logging
import socket
import ssl as ssl_mod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode

import asyncpg
from asyncpg import exceptions as pg

from aiogw.store.base import StateUnavailable

# A server that has not answered a connect in this time is away: the writer's retry
# (with back-off) is better than a batch hanging for asyncpg's default of 60 s.
CONNECT_TIMEOUT = 10.0
# The pool: one connection for the audit writer, one for the limits' flush, one for a
# key reload, one for a command or the console; each is a server process (~10 MB) on a
# server many gateways share, so it stays small. min 1: open() proves the server answers.
POOL_MIN, POOL_MAX = 1, 4
# Where asyncpg's own parser takes the URL's parts from its query string as well.
_QUERY_KEYS = {"host", "port", "user", "dbname", "database", "password"}


class ConnectionLost(ConnectionError):
    """asyncpg's InterfaceError about a connection that closed under a call: the server
    went away. A ConnectionError, so it is in `TRANSIENT` (an InterfaceError is also
    what a wrong query raises, which must not be retried)."""


# asyncpg's pool logs every failed attempt to restore its floor of connections, with a
# traceback, each second while the server is away: the audit writer, the limits and the
# key index say that the database is away and back, once each.
logging.getLogger("asyncpg.pool").setLevel(logging.ERROR)

TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable, name not found, TLS; ConnectionLost too
    TimeoutError,  # a connect or statement timeout (asyncio's TimeoutError on 3.11)
    pg.PostgresConnectionError,  # class 08: the connection is gone, the commit's outcome unknown
    pg.OperatorInterventionError,  # class 57: shutting down, starting up, a crash, a cancel
    pg.TransactionRollbackError,  # class 40: serialization failure, deadlock
    pg.InsufficientResourcesError,  # class 53: disk full, out of memory, too many connections
    pg.PostgresSystemError,  # class 58: the server's I/O error
    pg.ReadOnlySQLTransactionError,  # a standby after a failover refuses writes for a while
    pg.LockNotAvailableError,  # lock_timeout: a DDL (a partition made or dropped) in the way
)


@dataclass(frozen=True, slots=True)
class Target:
    """What the URL names, as said in messages; None: the part was not given."""

    host: str | None
    port: str | None
    database: str | None
    user: str | None
    password: str | None

    def described(self) -> str:
        host = self.host or "the default (the local socket, else localhost)"
        port = self.port or "5432"
        user = self.user or "the default (the OS user)"
        database = self.database or (f"the default ({self.user})" if self.user else "the default (named as the user)")
        return f"host {host}, port {port}, database {database}, user {user}"


def parse(url: str) -> Target:
    """The parts of a postgresql:// URL (libpq's form; several hosts stay one string)."""
    _, _, rest = url.partition("://")
    netloc, _, tail = rest.partition("/")
    path, _, query = tail.partition("?")
    if "?" in netloc:  # postgresql://host?user=x: no path
        netloc, _, query = netloc.partition("?")
    userinfo, at, hosts = netloc.rpartition("@")
    user = password = None
    if at:
        name, colon, secret = userinfo.partition(":")
        user = unquote(name) or None
        password = unquote(secret) if colon else None
    host, port = _host_port(hosts)
    database = unquote(path) or None
    params = dict(parse_qsl(query, keep_blank_values=True))
    return Target(
        host=params.get("host", host),
        port=params.get("port", port),
        database=params.get("dbname", params.get("database", database)),
        user=params.get("user", user),
        password=params.get("password", password),
    )


def _host_port(hosts: str) -> tuple[str | None, str | None]:
    if not hosts:
        return None, None
    if "," in hosts:  # several hosts: said as given
        return unquote(hosts), None
    if hosts.startswith("["):  # [::1]:5432
        host, _, port = hosts[1:].partition("]")
        return host, port.lstrip(":") or None
    host, _, port = hosts.partition(":")
    return unquote(host) or None, port or None


def without_password(url: str) -> str:
    """The URL for messages and logs: no password in its user part nor its query."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "(not a postgresql:// URL)"
    netloc, slash, tail = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    if at:
        netloc = userinfo.partition(":")[0] + "@" + hosts
    path, q, query = tail.partition("?")
    if "?" in netloc:
        netloc, q, query = netloc.partition("?")
    if query:
        kept = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "password"]
        query = urlencode(kept, quote_via=quote)
        q = "?" if query else ""
    return f"{scheme}://{netloc}{slash}{path}{q}{query}"


def connect_options(url: str, password: str | None, ssl: object) -> dict[str, Any]:
    """asyncpg's keyword arguments for a connection to `url`."""
    options: dict[str, Any] = {
        "dsn": url,
        "timeout": CONNECT_TIMEOUT,
        "server_settings": {"application_name": "aiogw"},
    }
    if password is not None:
        options["password"] = password
    if ssl is not None:
        options["ssl"] = ssl
    return options


async def open_pool(url: str, where: str, password: str | None, ssl: object) -> asyncpg.Pool:
    """A small pool, its first connection made: StateUnavailable when it cannot be."""
    options = connect_options(url, password, ssl)
    return await reach(url, where, password, lambda: asyncpg.create_pool(
        min_size=POOL_MIN, max_size=POOL_MAX, command_timeout=None, **options))


async def reach(url: str, where: str, password: str | None, make: Callable[[], Awaitable[Any]]) -> Any:
    """`make()` (a pool or a connection), its failure said as StateUnavailable."""
    if not url.startswith(("postgresql://", "postgres://")):
        raise StateUnavailable(f"[state] url {where} is not a PostgreSQL URL: write it as "
                               "postgresql://USER@HOST:PORT/DATABASE")
    try:
        return await make()
    except Exception as exc:  # anything: what the server or the network said, in words
        target = parse(url)
        reason, check = explain(exc, target)
        secrets = [s for s in (password, target.password) if s]
        text = (f"cannot connect to the PostgreSQL state database {where} ({target.described()}): "
                f"{reason}. Check {check}")
        for secret in secrets:  # a server or a parser may echo what it was given
            text = text.replace(secret, "***")
        raise StateUnavailable(text) from None


def explain(exc: BaseException, t: Target) -> tuple[str, str]:
    """(what failed, what to check) for a failure to connect."""
    said = _said(exc)
    if isinstance(exc, pg.InvalidPasswordError):
        return (f"the server refused the password of user {t.user or '(default)'}",
                "the password ([state] password, or --from/--to-password-env for `aiogw state copy`) and that the role may log in")
    if isinstance(exc, pg.InvalidAuthorizationSpecificationError):  # no such role, pg_hba.conf
        return (f"the server does not let this user in ({said})",
                "that the role exists, and pg_hba.conf allows it from this host to this database")
    if isinstance(exc, pg.InvalidCatalogNameError):
        return (f"there is no such database ({said})",
                "the database name in [state] url, or create it: createdb -O <role> <name>")
    if isinstance(exc, pg.CannotConnectNowError):
        return f"the server is starting up or shutting down ({said})", "that the server has finished starting"
    if isinstance(exc, pg.TooManyConnectionsError):
        return f"the server has no connection left ({said})", "max_connections and what else holds connections"
    if isinstance(exc, pg.ConnectionDoesNotExistError | pg.ConnectionFailureError) or lost(exc):  # once connected
        return (f"the connection closed under it ({said})",
                "that the server is up (it may have stopped or restarted) and reachable from here")
    if isinstance(exc, ConnectionRefusedError):
        return "the connection was refused", "that PostgreSQL runs and listens on that host and port"
    if isinstance(exc, socket.gaierror):
        return f"the host name cannot be resolved ({said})", "the host name in [state] url"
    if isinstance(exc, ssl_mod.SSLError | ssl_mod.CertificateError):
        return f"TLS failed ({said})", "the server's certificate and the TLS options of [state]"
    if isinstance(exc, TimeoutError):
        return (f"no answer within {CONNECT_TIMEOUT:g} s",
                "that the host is reachable from here (a firewall drops the connection?) and the server is up")
    if isinstance(exc, OSError):
        return f"the network failed ({said})", "the host and port in [state] url, and that the server is up"
    if isinstance(exc, pg.ClientConfigurationError | ValueError):
        return f"the URL cannot be read ({said})", "[state] url: postgresql://USER@HOST:PORT/DATABASE"
    if isinstance(exc, pg.PostgresError):
        return f"the server said: {said}", "the server's log"
    return f"{type(exc).__name__}: {said}", "[state] url and the server's log"


def failure(exc: BaseException, where: str) -> str | None:
    """A command's one line for an error the server or the connection raised once the
    store was open: the server stopped or restarted, the network, a statement the server
    refused (a role without a privilege); None for anything else, whose traceback
    helps. A BrokenPipeError is the command's own output closed (`| head`), not ours."""
    if isinstance(exc, BrokenPipeError):
        return None
    away = isinstance(exc, TRANSIENT) or lost(exc)
    if not away and not isinstance(exc, pg.PostgresError):
        return None
    reason, check = explain(exc, parse(where))
    again = ", then run the command again" if away else ""
    return f"the PostgreSQL state database {where} failed during the command: {reason}. Check {check}{again}"


def _said(exc: BaseException) -> str:
    """The exception's own text on one line, bounded (an OSError of several addresses
    is long)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:300] + "…"


def lost(exc: BaseException) -> bool:
    """Whether an asyncpg InterfaceError says the connection closed under a call."""
    return isinstance(exc, pg.InterfaceError) and "closed" in str(exc) and "pool" not in str(exc)
