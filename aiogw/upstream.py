"""One upstream per route: its client session, timeouts, header hygiene, credential swap.

The session never decompresses (`auto_decompress=False`): the relay hands the client
the upstream's bytes with the upstream's Content-Encoding, and only the audit tap
decodes them, off the hot path. For that to stay possible the gateway asks upstream
only for codings it can decode itself (gzip, deflate).
"""

from __future__ import annotations

import asyncio
from urllib.parse import unquote

import aiohttp
from aiohttp import payload
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from aiogw import routing
from aiogw.config_routes import Route, Timeouts
from aiogw.dialects import Dialect
from aiogw.errors import UpstreamTimeout, UpstreamUnreachable
from aiogw.untrusted import is_utf8, text

# Never forwarded in either direction (RFC 9110 §7.6.1), plus what aiohttp recomputes.
HOP_BY_HOP = frozenset(
    (
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        # The client's expectation is answered here (aiohttp sends its 100 Continue);
        # forwarded, it would make the upstream client wait for a 100 of its own.
        "expect",
    )
)
# Where agents put keys. The gateway key must never travel upstream, so all of these
# are dropped on credential routes, and the route's provider key is added instead.
KEY_HEADERS = frozenset(("authorization", "x-api-key", "x-goog-api-key"))
# Never forwarded on a credential route either: Azure's key header, and cookies (no
# provider API reads them; a client may have put anything there, its gateway key too).
_NEVER_UPSTREAM = frozenset(("api-key", "cookie", "proxy-authorization"))
# What a balancer adds names hosts of the operator's network (aiogw.forwarded reads
# it); the provider has no use for it, on any route.
_FORWARDING = frozenset(
    ("forwarded", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-forwarded-port", "x-real-ip")
)
GATEWAY_KEY_HEADER = "x-aiogw-key"
_DECODABLE = frozenset(("gzip", "deflate", "identity"))


class RequestBody(payload.BytesPayload):
    """The client's body bytes, sent as they are.

    aiohttp warns (ResourceWarning) for bytes bodies over 1 MiB, suggesting a file-like
    object, which would be read back in an executor, chunk by chunk. For bytes already
    in memory one transport write is the cheapest way out, and agents' bodies are often
    over 1 MiB, so this skips that check and nothing else.
    """

    def __init__(self, value: bytes) -> None:
        payload.Payload.__init__(self, value)
        self._size = len(value)


def find_gateway_key(headers: CIMultiDictProxy[str], query: str) -> str | None:
    """The key where the agent's SDK put it: x-api-key, Bearer, x-goog-api-key or ?key=."""
    key = headers.get("x-api-key") or headers.get("x-goog-api-key")
    if key:
        return key
    auth = headers.get("authorization")
    if auth and auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    if "key=" in query:
        for item in query.split("&"):
            if item.startswith("key="):
                return item[4:]
    return None


def strip_key_param(query: str, gateway_key: str | None = None, keep_key: bool = False) -> str:
    """Drop Gemini's `?key=` (however its name is spelt: `KEY=`, `%6bey=`) and any
    parameter that carries the gateway key, so it never reaches the upstream URL."""
    if not query:
        return query
    lowered = query.lower()
    if "key" not in lowered and "%" not in lowered and not (gateway_key and gateway_key in query):
        return query
    kept = []
    for item in query.split("&"):
        name, _, value = item.partition("=")
        if not keep_key and unquote(name).strip().lower() == "key":
            continue
        if gateway_key and (gateway_key in item or gateway_key in unquote(value)):
            continue
        kept.append(item)
    return "&".join(kept)


def accept_encoding(value: str) -> str:
    """Keep only codings the audit tap can decode; 'identity' if none are left."""
    kept = [part for part in value.split(",") if part.split(";", 1)[0].strip().lower() in _DECODABLE]
    return ",".join(kept).strip() or "identity"


class CredentialEcho(UpstreamUnreachable):
    """The upstream's response carried the route's provider key back (an upstream that
    reflects its request, as TRACE does): it is never relayed."""

    kind = "upstream:credential_echo"

    def __init__(self) -> None:
        super().__init__(
            "the upstream's response carried the gateway's provider key; the gateway withheld it. Tell the operator"
        )


def response_headers(headers: CIMultiDictProxy[str], secret: str | None = None) -> CIMultiDict[str]:
    """The upstream's response headers minus hop-by-hop ones; Content-Encoding stays.
    Raises CredentialEcho when one carries `secret` (the route's provider key)."""
    out: CIMultiDict[str] = CIMultiDict()
    drop = _connection_tokens(headers)
    for name, value in headers.items():
        if secret is not None and secret in value:
            raise CredentialEcho()
        lower = name.lower()
        if lower not in HOP_BY_HOP and lower not in drop:
            # A header byte that was not UTF-8 (kept by aiohttp as a surrogate) could not
            # be written back out: it is relayed as its escape (`\\xff`) rather than failing the answer.
            out.add(name, value if value.isascii() or is_utf8(value) else text(value, len(value)))
    return out


def _connection_tokens(headers: CIMultiDictProxy[str]) -> frozenset[str]:
    value = headers.get("connection")
    if not value:
        return frozenset()
    return frozenset(token.strip().lower() for token in value.split(","))


class Upstream:
    """A route's way out: base URL, provider credential and one keep-alive session."""

    __slots__ = (
        "_max_connections", "allowed", "base", "credential", "dialect", "inflight", "route", "secret", "secret_bytes",
        "session", "timeouts",
    )

    def __init__(self, route: Route, dialect: Dialect, max_connections: int) -> None:
        self.route = route
        self.dialect = dialect
        self.base = route.upstream
        secret = route.credential.secret
        self.credential = dialect.credential(secret) if secret else None
        # The provider key, to make sure no response ever carries it back (too short a
        # one would match by chance).
        self.secret = secret if secret and len(secret) >= 8 else None
        self.secret_bytes = self.secret.encode() if self.secret else None
        self.allowed = routing.allow_list(dialect.allowed + route.allow)
        self.timeouts: Timeouts = route.timeouts
        self.session: aiohttp.ClientSession | None = None
        self._max_connections = max_connections
        self.inflight = 0  # requests routed here and not yet done (see Proxy.handle)

    def allows(self, method: str, path: str) -> bool:
        """A method and decoded path the route forwards beyond its dialect's endpoints."""
        return self.allowed is not None and self.allowed.match(f"{method} {path}") is not None

    @property
    def passes_client_key(self) -> bool:
        return self.route.credential.source == "client"

    async def start(self) -> None:
        t = self.timeouts
        connector = aiohttp.TCPConnector(
            limit=self._max_connections, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=30
        )
        self.session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            # Send only what the agent sent: no default User-Agent, Accept or, above all,
            # Accept-Encoding that would make upstream compress for a client that can't decode.
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            cookie_jar=aiohttp.DummyCookieJar(),
            # sock_read is the first-byte timeout until headers arrive; `send` then
            # switches it to the idle timeout for the rest of the body.
            timeout=aiohttp.ClientTimeout(
                total=t.total or None, sock_connect=t.connect or None, sock_read=t.first_byte or None
            ),
        )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def retire(self, poll: float = 0.5) -> None:
        """Close once the requests still using it are done (a reload replaced it)."""
        # Polled: rare (a reload), and the hot path stays a plain integer count.
        while self.inflight:  # noqa: ASYNC110
            await asyncio.sleep(poll)
        await self.close()

    def headers(self, incoming: CIMultiDictProxy[str], gateway_key: str | None = None) -> CIMultiDict[str]:
        """Request headers for upstream: hop-by-hop, gateway and key headers removed, and
        any header that carries the gateway key, wherever the client put it."""
        out: CIMultiDict[str] = CIMultiDict()
        drop = _connection_tokens(incoming)
        keep_keys = self.passes_client_key
        for name, value in incoming.items():
            lower = name.lower()
            if lower in HOP_BY_HOP or lower in drop or lower.startswith("x-aiogw-") or lower in _FORWARDING:
                continue
            if not keep_keys and (lower in KEY_HEADERS or lower in _NEVER_UPSTREAM):
                continue
            if gateway_key and gateway_key in value:
                continue
            if lower == "content-encoding":
                # aiohttp's server decoded a compressed request body (the guards read it):
                # what goes upstream is the decoded bytes, so they must not be labelled
                # as compressed.
                continue
            if lower == "accept-encoding":
                value = accept_encoding(value)
            out.add(name, value)
        if self.credential is not None and not keep_keys:
            out[self.credential[0]] = self.credential[1]
        return out

    async def send(
        self, method: str, path: str, query: str, headers: CIMultiDict[str], body: bytes | None,
        gateway_key: str | None = None,
    ) -> aiohttp.ClientResponse:
        """Send the request and return once the response headers are in."""
        assert self.session is not None, "Upstream.start() was not awaited"
        # A route that passes the client's own provider key keeps `?key=` (that is the
        # provider key); the gateway key is dropped from the URL on every route.
        query = strip_key_param(query, gateway_key, keep_key=self.passes_client_key)
        url = URL(self.base + path + ("?" + query if query else ""), encoded=True)
        try:
            data = RequestBody(body) if body is not None else None
            resp = await self.session.request(method, url, headers=headers, data=data, allow_redirects=False)
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise UpstreamTimeout(
                f"the upstream of route {self.route.name!r} did not answer in time; try again later"
            ) from None
        except aiohttp.ClientError as exc:
            raise UpstreamUnreachable(
                f"cannot reach the upstream of route {self.route.name!r} ({type(exc).__name__}); try again later"
            ) from None
        conn = resp.connection
        if conn is not None and conn.protocol is not None:
            # From here on, the allowed silence is the idle timeout between chunks.
            conn.protocol.read_timeout = self.timeouts.idle or None
            conn.protocol.start_timeout()
        return resp
