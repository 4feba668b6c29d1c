"""What an exchange cost: the shipped price table (prices.toml), the config's additions,
and the arithmetic.

A model is found by its exact id, then by an alias, then with a date suffix removed
(`claude-sonnet-4-5-20250929`, `gpt-4.1-2025-04-14`) or a `models/` prefix (Gemini).
A model found nowhere is charged `prices.default` and flagged, never free.
Long-context tiers apply to the whole request once its prompt (input plus cache reads
and writes) is above the tier's threshold, as Anthropic and Google bill them.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any

from aiogw.dialects.base import Usage
from aiogw.limits.settings import DEFAULT_UNKNOWN_PRICE, PriceSettings

_DATE_SUFFIX = re.compile(r"-(?:\d{8}|\d{4}-\d{2}-\d{2})$")


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens. Unset cache prices fall back: a cache write to the input
    price, a 1-hour write to the 5-minute one, a cache read to the input price."""

    input: float
    output: float
    cache_write: float | None = None
    cache_write_1h: float | None = None
    cache_read: float | None = None
    long_context: tuple[int, Price] | None = None

    def cost(self, usage: Usage) -> float:
        if self.long_context is not None:
            above, tier = self.long_context
            if usage.input + usage.cache_read + usage.cache_write > above:
                return tier.cost(usage)
        write = self.cache_write if self.cache_write is not None else self.input
        write_1h = self.cache_write_1h if self.cache_write_1h is not None else write
        read = self.cache_read if self.cache_read is not None else self.input
        return (
            usage.input * self.input
            + usage.output * self.output
            + (usage.cache_write - usage.cache_write_1h) * write
            + usage.cache_write_1h * write_1h
            + usage.cache_read * read
        ) / 1_000_000


def _price(entry: dict[str, Any]) -> Price:
    long = entry.get("long_context")
    tier = None
    if long is not None:
        tier = (int(long["above"]), _price({k: v for k, v in long.items() if k != "above"}))
    return Price(
        input=float(entry["input"]),
        output=float(entry["output"]),
        cache_write=entry.get("cache_write"),
        cache_write_1h=entry.get("cache_write_1h"),
        cache_read=entry.get("cache_read"),
        long_context=tier,
    )


def shipped() -> dict[str, dict[str, Any]]:
    """The table that comes with aiogw (aiogw/limits/prices.toml)."""
    text = resources.files("aiogw.limits").joinpath("prices.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)["models"]


class PriceTable:
    def __init__(self, settings: PriceSettings | None = None) -> None:
        models = shipped()
        if settings is not None:
            models.update(settings.models)
        self.default = _price(settings.default if settings is not None else DEFAULT_UNKNOWN_PRICE)
        self._by_id: dict[str, Price] = {}
        for entry in models.values():
            price = _price(entry)
            for alias in entry.get("aliases", ()):
                self._by_id.setdefault(alias, price)
        for name, entry in models.items():  # an id beats another model's alias
            self._by_id[name] = _price(entry)
        self._cache: dict[str, Price | None] = {}

    def lookup(self, model: str | None) -> Price | None:
        """The model's price, or None when the table does not know it."""
        if not model:
            return None
        try:
            return self._cache[model]
        except KeyError:
            pass
        name = model.removeprefix("models/")
        found = self._by_id.get(name)
        if found is None:
            found = self._by_id.get(_DATE_SUFFIX.sub("", name))
        if len(self._cache) < 10_000:  # model names come from clients: bounded
            self._cache[model] = found
        return found

    def cost(self, model: str | None, usage: Usage) -> tuple[float, bool]:
        """(USD, whether the model's price was known)."""
        price = self.lookup(model)
        if price is None:
            return self.default.cost(usage), False
        return price.cost(usage), True
