"""Where the limits' Redis is: a `[limits] store` URL (checked by the config, in
aiogw.limits.settings) read into an Address for aiogw.limits.redis_link."""

from __future__ import annotations

import ssl
import urllib.parse
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Address:
    """Where to connect, read from a `[limits] store` URL."""

    host: str | None = None
    port: int = 6379
    path: str | None = None  # a unix socket
    tls: ssl.SSLContext | None = None
    username: str | None = None
    db: int = 0
    sentinels: tuple[tuple[str, int], ...] = ()
    service: str = ""

    @property
    def shown(self) -> str:
        if self.sentinels:
            return f"sentinel {','.join(f'{h}:{p}' for h, p in self.sentinels)} service {self.service}"
        return self.path or f"{self.host}:{self.port}"


def parse(url: str) -> Address:
    """The URL (validated by the config already) as an Address."""
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    scheme = parts.scheme
    tls = _tls(query) if scheme.startswith("rediss") else None
    user = urllib.parse.unquote(parts.username) if parts.username else None
    if scheme == "unix":
        return Address(path=parts.path, db=int(query.get("db", 0)), username=user)
    segments = [s for s in parts.path.split("/") if s]
    if scheme.endswith("+sentinel"):
        hosts = parts.netloc.rpartition("@")[2]
        sentinels = tuple((h.rpartition(":")[0] or h, int(h.rpartition(":")[2]) if ":" in h else 26379)
                          for h in hosts.split(","))
        if not segments:
            raise ValueError("a Sentinel URL names its service: redis+sentinel://HOST:PORT/SERVICE[/DB]")
        return Address(tls=tls, username=user, db=int(segments[1]) if len(segments) > 1 else 0,
                       sentinels=sentinels, service=segments[0])
    return Address(host=parts.hostname, port=parts.port or 6379, tls=tls, username=user,
                   db=int(segments[0]) if segments else 0)


def _tls(query: dict[str, str]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=query.get("ssl_ca_certs"))
    if query.get("ssl_cert_reqs", "required") == "none":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
