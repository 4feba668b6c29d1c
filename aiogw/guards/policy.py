"""Which action a finding gets: per category and place, overridable per user.

Precedence, first that applies: the user's own setting, the config's `[guards]`
setting, the pattern's default action in the catalog, the built-in default below.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiogw.config import User
from aiogw.config_guards import GUARD_PLACES, GuardActions

# Built-in defaults: an injection in what a tool returned or in a tool's description
# is refused (the model would take it as trusted); credentials are refused anywhere;
# personal data is logged.
DEFAULTS: dict[tuple[str, str], str] = {
    **{("credential", place): "block" for place in GUARD_PLACES},
    **{("pii", place): "log" for place in GUARD_PLACES},
    ("injection", "tool_result"): "block",
    ("injection", "tool_definition"): "block",
    ("injection", "user"): "log",
    ("injection", "system"): "log",
    ("injection", "assistant"): "off",
}
DEFAULT_RESPONSE = "log"


class Actions:
    """The resolved actions of one user; built once, read per finding."""

    __slots__ = ("explicit", "response")

    def __init__(self, explicit: dict[tuple[str, str], str], response: str) -> None:
        self.explicit = explicit
        self.response = response

    def action(self, category: str, place: str, pattern_default: str | None) -> str:
        return self.explicit.get((category, place)) or pattern_default or DEFAULTS.get((category, place), "log")


class Policy:
    def __init__(self, configured: GuardActions, users: Iterable[User]) -> None:
        self.default = _resolve(configured, GuardActions())
        self.users = {u.name: _resolve(configured, u.guards) for u in users if u.guards != GuardActions()}

    def for_user(self, user: str | None) -> Actions:
        return self.users.get(user, self.default) if user is not None else self.default


def _resolve(configured: GuardActions, own: GuardActions) -> Actions:
    explicit = {(c, p): a for c, p, a in configured.places}
    explicit.update({(c, p): a for c, p, a in own.places})
    return Actions(explicit, own.response or configured.response or DEFAULT_RESPONSE)
