"""The operator's settings: `[metrics]`, `[log]` and how the gateway drains on stop.

Read by `aiogw.config` with its reader, so mistakes are reported the same way: the
file, the key and what was expected.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from typing import Any

# Who may read /metrics when the config says nothing: the machine itself. A Prometheus
# elsewhere needs its address in `allow` or the token.
DEFAULT_METRICS_ALLOW = ("127.0.0.0/8", "::1/128")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("json", "text")


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    enabled: bool = True
    allow: tuple[str, ...] = DEFAULT_METRICS_ALLOW  # networks that may scrape without the token
    token: str | None = None  # `Authorization: Bearer <token>` admits from anywhere
    # Distinct values a label keeps before the rest count as "other": a model name is
    # the client's free text, and one series per typo would grow without end.
    max_label_values: int = 200

    def networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(a, strict=False) for a in self.allow)


@dataclass(frozen=True, slots=True)
class LogSettings:
    level: str = "info"
    format: str = "json"  # json: one object a line, for journald and log shippers; text: for people
    exchanges: bool = True  # one line per exchange on stdout

    @property
    def level_number(self) -> int:
        return getattr(logging, self.level.upper())


def read_metrics(r: Any, table: dict[str, Any], token: str | None) -> MetricsSettings:
    r.only(table, "metrics", {"enabled", "allow", "token", "max_label_values"})
    allow = table.get("allow", list(DEFAULT_METRICS_ALLOW))
    if not isinstance(allow, list) or not all(isinstance(a, str) for a in allow):
        r.fail("metrics.allow", 'expected a list of addresses or networks, such as ["127.0.0.1", "10.0.0.0/8"]')
    for a in allow:
        try:
            ipaddress.ip_network(a, strict=False)
        except ValueError:
            r.fail("metrics.allow", f"{a!r} is not an address or a network such as 10.0.0.0/8")
    return MetricsSettings(
        enabled=r.get(table, "metrics.enabled", bool, True),
        allow=tuple(allow),
        token=token,
        max_label_values=r.int_in(table, "metrics.max_label_values", 200, 1, 100_000),
    )


def read_log(r: Any, table: dict[str, Any]) -> LogSettings:
    r.only(table, "log", {"level", "format", "exchanges"})
    level = r.get(table, "log.level", str, "info").lower()
    if level not in LOG_LEVELS:
        r.fail("log.level", f"expected one of {', '.join(LOG_LEVELS)}, got {level!r}")
    fmt = r.get(table, "log.format", str, "json")
    if fmt not in LOG_FORMATS:
        r.fail("log.format", f"expected one of {', '.join(LOG_FORMATS)}, got {fmt!r}")
    return LogSettings(level=level, format=fmt, exchanges=r.get(table, "log.exchanges", bool, True))
