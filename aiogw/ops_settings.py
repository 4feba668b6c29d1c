"""The operator's settings: `[metrics]`, `[log]` and how the gateway drains on stop.

Read by `aiogw.config` with its reader, so mistakes are reported the same way: the
file, the key and what was expected.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from aiogw.config_reader import Network, ip_networks

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

    def networks(self) -> tuple[Network, ...]:
        return ip_networks(self.allow)


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
    allow = r.networks(table.get("allow", list(DEFAULT_METRICS_ALLOW)), "metrics.allow")
    return MetricsSettings(
        enabled=r.get(table, "metrics.enabled", bool, True),
        allow=allow,
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
