"""The guards' pattern catalog: `catalog.toml` (shipped with the package) plus the
patterns a config adds, validated into frozen `Pattern` values.

`load(extra, disabled)` reads the built-in catalog once per process, appends the user's
patterns (from config: `id`, `category` and `expression` required; `subcategory`
defaults to the id), removes the disabled ids and returns the tuple the engine
compiles. Every field is checked; a bad one raises `CatalogError` naming the pattern,
the field and what is expected — an unknown category or validator, a duplicate id, an
expression Hyperscan cannot compile.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from aiogw.guards.validators import VALIDATORS

PLACES = ("system", "user", "assistant", "tool_result", "tool_definition", "response")
CATEGORIES = ("injection", "credential", "pii")
ACTIONS = ("block", "redact", "log", "off")  # the values config.GUARD_ACTIONS accepts
FLAGS = ("caseless", "dotall", "multiline", "utf8", "ucp")
# What a match covers (see catalog.toml): the whole match; the value of an assignment;
# the match without guard characters; a standalone number; an email address grown left
# from its @; a PEM block grown to its END line.
SPANS = ("match", "value", "token", "number", "email", "block")

_FIELDS = frozenset(
    (
        "id",
        "category",
        "subcategory",
        "description",
        "expression",
        "prefilter",
        "flags",
        "places",
        "action",
        "validator",
        "min_entropy",
        "max_length",
        "span",
        "examples",
        "counter_examples",
    )
)
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")


class CatalogError(ValueError):
    """A pattern in the catalog or in the config is invalid; the message says which,
    which field, and what is expected."""


@dataclass(frozen=True, slots=True)
class Pattern:
    id: str
    category: str
    subcategory: str
    expression: str
    description: str = ""
    flags: frozenset[str] = frozenset()
    places: frozenset[str] = frozenset(PLACES)
    action: str | None = None  # None: the category's default action
    validator: str | None = None
    min_entropy: float | None = None
    max_length: int | None = None  # longer matches are dropped
    prefilter: str | None = None  # what Hyperscan scans for instead; hits confirmed with `expression`
    span: str = "match"
    examples: tuple[str, ...] = field(default=(), compare=False)
    counter_examples: tuple[str, ...] = field(default=(), compare=False)


def load(extra: Sequence[Mapping[str, Any]] = (), disabled: Collection[str] = ()) -> tuple[Pattern, ...]:
    """The built-in patterns, then `extra` (user patterns), minus `disabled` ids."""
    patterns = list(_builtin())
    seen = {p.id for p in patterns}
    for i, raw in enumerate(extra):
        p = _pattern(raw, f"guards.patterns[{i}]", builtin=False)
        if p.id in seen:
            raise CatalogError(
                f"guard pattern {p.id!r}: id: duplicate; ids must be unique (built-in or configured); "
                f"to replace a built-in pattern, disable it and add yours under a new id"
            )
        seen.add(p.id)
        _check_compiles(p)
        patterns.append(p)
    unknown = sorted(set(disabled) - seen)
    if unknown:
        raise CatalogError(
            f"guards.disabled: unknown pattern id(s) {', '.join(map(repr, unknown))}; "
            f"expected ids of the catalog or of guards.patterns"
        )
    off = frozenset(disabled)
    return tuple(p for p in patterns if p.id not in off)


@functools.cache
def _builtin() -> tuple[Pattern, ...]:
    raw = tomllib.loads(resources.files(__package__).joinpath("catalog.toml").read_text(encoding="utf-8"))
    patterns: list[Pattern] = []
    seen: set[str] = set()
    for i, item in enumerate(raw.get("pattern", ())):
        p = _pattern(item, f"catalog.toml pattern #{i + 1}", builtin=True)
        if p.id in seen:
            raise CatalogError(f"guard pattern {p.id!r}: id: duplicate in catalog.toml")
        seen.add(p.id)
        patterns.append(p)
    return tuple(patterns)


def _pattern(raw: Mapping[str, Any], where: str, *, builtin: bool) -> Pattern:
    if not isinstance(raw, Mapping):
        raise CatalogError(f"{where}: expected a table with id, category and expression, got {type(raw).__name__}")
    pid = raw.get("id")
    if not isinstance(pid, str) or not _ID.fullmatch(pid):
        raise CatalogError(
            f"{where}: id: expected 1-64 letters, digits or _ . : - (starting with a letter or digit), got {pid!r}"
        )
    name = f"guard pattern {pid!r}"

    def fail(key: str, expected: str) -> CatalogError:
        return CatalogError(f"{name}: {key}: expected {expected}, got {raw.get(key)!r}")

    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise CatalogError(
            f"{name}: unknown field(s) {', '.join(unknown)}; expected some of {', '.join(sorted(_FIELDS))}"
        )
    required = ("category", "expression", "subcategory", "description") if builtin else ("category", "expression")
    for key in required:
        if key not in raw:
            raise CatalogError(f"{name}: {key}: missing (required)")

    category = raw["category"]
    if category not in CATEGORIES:
        raise fail("category", " | ".join(CATEGORIES))
    subcategory = raw.get("subcategory", pid)
    if not isinstance(subcategory, str) or not _ID.fullmatch(subcategory):
        raise fail("subcategory", "a name like aws_access_key")
    expression = raw["expression"]
    if not isinstance(expression, str) or not expression:
        raise fail("expression", "a non-empty Hyperscan regular expression")
    prefilter = raw.get("prefilter")
    if prefilter is not None and (not isinstance(prefilter, str) or not prefilter):
        raise fail("prefilter", "a non-empty Hyperscan regular expression")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise fail("description", "a string")

    flags = _names(raw.get("flags", []), FLAGS, lambda: fail("flags", f"a list of {', '.join(FLAGS)}"))
    if "ucp" in flags and "utf8" not in flags:
        raise CatalogError(f"{name}: flags: 'ucp' needs 'utf8' as well")
    if not (expression + (prefilter or "")).isascii() and "utf8" not in flags:
        raise CatalogError(f"{name}: flags: the expression has non-ASCII characters; add 'utf8' to flags")
    places = _names(
        raw.get("places", list(PLACES)), PLACES, lambda: fail("places", f"a non-empty list of {', '.join(PLACES)}")
    )
    if not places:
        raise fail("places", f"a non-empty list of {', '.join(PLACES)}")

    action = raw.get("action")
    if action is not None and action not in ACTIONS:
        raise fail("action", " | ".join(ACTIONS))
    validator = raw.get("validator")
    if validator is not None and validator not in VALIDATORS:
        raise fail("validator", f"one of {', '.join(sorted(VALIDATORS))}")
    min_entropy = raw.get("min_entropy")
    if min_entropy is not None:
        if isinstance(min_entropy, bool) or not isinstance(min_entropy, int | float) or not 0 < min_entropy <= 8:
            raise fail("min_entropy", "bits per character, a number in (0, 8]")
        min_entropy = float(min_entropy)
    max_length = raw.get("max_length")
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1):
        raise fail("max_length", "a positive number of characters")
    if prefilter is not None and max_length is None:
        raise CatalogError(f"{name}: prefilter: needs max_length (how far back its hits are confirmed)")
    span = raw.get("span", "match")
    if span not in SPANS:
        raise fail("span", " | ".join(SPANS))
    examples = raw.get("examples", [])
    counter = raw.get("counter_examples", [])
    for key, value in (("examples", examples), ("counter_examples", counter)):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise fail(key, "a list of strings")

    return Pattern(
        id=pid,
        category=category,
        subcategory=subcategory,
        expression=expression,
        description=description,
        flags=flags,
        places=places,
        action=action,
        validator=validator,
        min_entropy=min_entropy,
        max_length=max_length,
        prefilter=prefilter,
        span=span,
        examples=tuple(examples),
        counter_examples=tuple(counter),
    )


def _names(value: Any, allowed: Sequence[str], fail: Any) -> frozenset[str]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v in allowed for v in value):
        raise fail()
    if len(set(value)) != len(value):
        raise fail()
    return frozenset(value)


def _check_compiles(p: Pattern) -> None:
    """A user pattern must compile on its own; without hyperscan there is nothing to
    check here (the engine refuses to start and says why)."""
    from aiogw.guards import databases  # here: databases imports this module

    problem = databases.compile_problem(p)
    if problem:
        raise CatalogError(f"guard pattern {p.id!r}: expression: Hyperscan cannot compile it: {problem}")
