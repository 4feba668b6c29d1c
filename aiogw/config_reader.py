"""Typed reading of a config file's raw TOML, and the error every mistake becomes.

`aiogw.config` and the section readers it calls (`config_routes`, `config_guards`,
`client_settings`, `ops_settings`, `limits.settings`) share one `Reader`, so every
mistake names the file, the key and what was expected, the same way.
"""

from __future__ import annotations

import ipaddress
from typing import Any, NoReturn

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def ip_networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    """A list the config read with `Reader.networks`, as networks."""
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


class ConfigError(Exception):
    """A configuration file that cannot be served; the message says where and why."""


def _a(kind: type) -> str:
    name = {"str": "string", "int": "whole number", "bool": "boolean (true or false)"}.get(kind.__name__, kind.__name__)
    return ("an " if name[0] in "aeiou" else "a ") + name


class Reader:
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

    def networks(self, value: Any, key: str) -> tuple[str, ...]:
        """A list of addresses or networks (`10.0.0.0/8`), checked; kept as written."""
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(key, 'expected a list of addresses or networks, such as ["127.0.0.1", "10.0.0.0/8"]')
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                self.fail(key, f"{entry!r} is not an address or network, such as 10.0.0.0/8")
        return tuple(value)

    def int_in(self, table: dict[str, Any], key: str, default: int, lo: int, hi: int) -> int:
        value = self.get(table, key, int, default)
        if not lo <= value <= hi:
            self.fail(key, f"expected a whole number from {lo} to {hi}, got {value}")
        return value

    def number(self, table: dict[str, Any], key: str, default: float) -> float:
        value = table.get(key.rsplit(".", 1)[-1], default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            self.fail(key, f"expected a number of seconds >= 0 (0 = no limit), got {value!r}")
        return float(value)

    def name(self, table: dict[str, Any], key: str) -> str:
        value = self.get(table, key, str, None)
        if not value or not all(c.isalnum() or c in "-_." for c in value) or value in (".", ".."):
            self.fail(key, f"expected a name of letters, digits, '-', '_' or '.', got {value!r}")
        return value
