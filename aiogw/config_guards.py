"""`[guards]` and a user's own `guards`: which action each category of finding takes
in each place of a request, and the operator's own patterns.

Only the shape is checked here; the patterns themselves are validated by
`aiogw.guards.catalog`, and what is not set falls back as `aiogw.guards.policy` says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiogw.config_reader import Reader

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


def read_guards(r: Reader, table: dict[str, Any]) -> GuardSettings:
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
        actions=read_guard_actions(r, actions, "guards"),
        patterns=tuple(patterns),
        disabled=tuple(disabled),
    )


def read_guard_actions(r: Reader, table: dict[str, Any], where: str) -> GuardActions:
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

