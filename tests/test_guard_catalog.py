"""The pattern catalog: every built-in pattern pinned by its examples and counter-examples,
and every way a configured pattern can be wrong refused with a message that says which
pattern, which field and what is expected."""

from __future__ import annotations

import pytest

from aiogw import config_guards
from aiogw.guards import catalog
from aiogw.guards.catalog import CATEGORIES, PLACES, CatalogError, Pattern
from aiogw.guards.engine import Engine

BUILTIN = catalog.load()


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(BUILTIN)


def _place(p: Pattern) -> str:
    return "tool_result" if "tool_result" in p.places else sorted(p.places)[0]


@pytest.mark.parametrize("pattern", BUILTIN, ids=lambda p: p.id)
def test_pattern_is_pinned_by_examples(engine, pattern):
    assert pattern.examples, f"{pattern.id}: no examples in catalog.toml"
    assert pattern.counter_examples, f"{pattern.id}: no counter_examples in catalog.toml"
    for text in pattern.examples:
        found = [m for m in engine.scan(_place(pattern), text) if m.pattern.id == pattern.id]
        assert found, f"{pattern.id} does not match its example {text!r}"
    for text in pattern.counter_examples:
        found = [text[m.start : m.end] for m in engine.scan(_place(pattern), text) if m.pattern.id == pattern.id]
        assert not found, f"{pattern.id} matches its counter-example {text!r}: {found}"


def test_catalog_shape():
    ids = [p.id for p in BUILTIN]
    assert len(ids) == len(set(ids))
    assert {p.category for p in BUILTIN} == set(CATEGORIES)
    for p in BUILTIN:
        assert p.description and p.subcategory
        assert p.places <= set(PLACES)
        if p.category == "injection":  # system prompts carry the operator's own instructions
            assert "system" not in p.places and "response" not in p.places
    subs = {p.subcategory for p in BUILTIN}
    assert {
        "aws_access_key",
        "github_token",
        "anthropic_key",
        "openai_key",
        "google_api_key",
        "slack_token",
        "stripe_key",
        "private_key",
        "jwt",
        "generic_secret",
        "email",
        "payment_card",
        "iban",
        "us_ssn",
        "phone",
        "ip_address",
        "ignore_instructions",
        "role_override",
        "system_prompt_exfiltration",
        "hidden_instructions",
        "tool_abuse",
        "data_exfiltration",
    } <= subs


def test_constants_agree_with_config():
    assert catalog.ACTIONS == config_guards.GUARD_ACTIONS
    assert CATEGORIES == config_guards.GUARD_CATEGORIES
    assert set(config_guards.GUARD_PLACES) <= set(PLACES) and "response" in PLACES


def test_load_is_read_once():
    assert catalog.load() is not catalog.load()  # a fresh tuple…
    assert catalog.load()[0] is catalog.load()[0]  # …of the same parsed patterns


def test_user_pattern_defaults():
    extra = {"id": "acme_ticket", "category": "pii", "expression": r"\bACME-\d{6}\b"}
    loaded = catalog.load([extra])
    p = loaded[-1]
    assert p == Pattern(id="acme_ticket", category="pii", subcategory="acme_ticket", expression=r"\bACME-\d{6}\b")
    assert p.places == frozenset(PLACES) and p.action is None and p.flags == frozenset()
    assert Engine([p]).scan("user", "see ACME-123456 please")[0].pattern.id == "acme_ticket"


def test_user_pattern_all_fields():
    extra = {
        "id": "internal_host",
        "category": "credential",
        "subcategory": "internal",
        "expression": r"corp\.acme",
        "flags": ["caseless"],
        "places": ["user", "tool_result"],
        "action": "log",
        "validator": "entropy",
        "min_entropy": 2.5,
        "description": "internal hostnames",
        "examples": ["CORP.acme"],
        "counter_examples": [],
    }
    p = catalog.load([extra])[-1]
    assert p.flags == {"caseless"} and p.places == {"user", "tool_result"} and p.action == "log"
    assert p.min_entropy == 2.5 and p.validator == "entropy" and p.examples == ("CORP.acme",)


def test_disabled_removes_patterns():
    loaded = catalog.load(disabled=["email_address", "phone_international"])
    assert {p.id for p in loaded}.isdisjoint({"email_address", "phone_international"})
    assert len(loaded) == len(BUILTIN) - 2


def _error(extra=(), disabled=()) -> str:
    with pytest.raises(CatalogError) as info:
        catalog.load(extra, disabled)
    return str(info.value)


@pytest.mark.parametrize(
    "raw,words",
    [
        (
            {"id": "x1", "category": "secrets", "expression": "abc"},
            ["'x1'", "category", "injection | credential | pii"],
        ),
        ({"id": "x1", "category": "pii", "expression": "abc", "validator": "crc64"}, ["'x1'", "validator", "luhn"]),
        ({"id": "x1", "category": "pii", "expression": "abc", "places": ["inbox"]}, ["'x1'", "places", "tool_result"]),
        ({"id": "x1", "category": "pii", "expression": "abc", "places": []}, ["'x1'", "places", "non-empty"]),
        ({"id": "x1", "category": "pii", "expression": "abc", "flags": ["icase"]}, ["'x1'", "flags", "caseless"]),
        ({"id": "x1", "category": "pii", "expression": "abc", "flags": ["ucp"]}, ["'x1'", "flags", "utf8"]),
        ({"id": "x1", "category": "pii", "expression": "café"}, ["'x1'", "flags", "non-ASCII", "utf8"]),
        ({"id": "x1", "category": "pii", "expression": "abc", "action": "deny"}, ["'x1'", "action", "block | redact"]),
        ({"id": "x1", "category": "pii", "expression": "abc", "min_entropy": 12}, ["'x1'", "min_entropy", "(0, 8]"]),
        ({"id": "x1", "category": "pii", "expression": "abc", "min_entropy": True}, ["'x1'", "min_entropy"]),
        ({"id": "x1", "category": "pii", "expression": "abc", "max_length": 0}, ["'x1'", "max_length", "positive"]),
        ({"id": "x1", "category": "pii", "expression": "abc", "prefilter": "c"}, ["'x1'", "prefilter", "max_length"]),
        ({"id": "x1", "category": "pii", "expression": "abc", "span": "all"}, ["'x1'", "span", "match | value"]),
        ({"id": "x1", "category": "pii", "expression": "abc", "catgory": "pii"}, ["'x1'", "unknown field", "catgory"]),
        ({"id": "x1", "category": "pii", "expression": ""}, ["'x1'", "expression", "non-empty"]),
        ({"id": "x1", "category": "pii"}, ["'x1'", "expression", "missing"]),
        ({"id": "x1", "expression": "abc"}, ["'x1'", "category", "missing"]),
        ({"category": "pii", "expression": "abc"}, ["guards.patterns[0]", "id"]),
        ({"id": "has space", "category": "pii", "expression": "abc"}, ["guards.patterns[0]", "id"]),
        (
            {"id": "x1", "category": "pii", "expression": "abc", "examples": "abc"},
            ["'x1'", "examples", "list of strings"],
        ),
        ("not a table", ["guards.patterns[0]", "table"]),
    ],
)
def test_invalid_user_pattern(raw, words):
    message = _error([raw])
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


def test_expression_hyperscan_cannot_compile():
    message = _error([{"id": "broken", "category": "pii", "expression": "(unclosed"}])
    assert "'broken'" in message and "expression" in message and "Hyperscan" in message
    message = _error([{"id": "lookbehind", "category": "pii", "expression": "(?<=a)b"}])
    assert "'lookbehind'" in message and "expression" in message
    message = _error([{"id": "empty", "category": "pii", "expression": "a*"}])
    assert "'empty'" in message and "expression" in message


def test_duplicate_ids():
    assert "duplicate" in _error([{"id": "github_token", "category": "credential", "expression": "x"}])
    message = _error(
        [{"id": "a1", "category": "pii", "expression": "x"}, {"id": "a1", "category": "pii", "expression": "y"}]
    )
    assert "'a1'" in message and "duplicate" in message


def test_unknown_disabled_id():
    message = _error(disabled=["email_address", "no_such_pattern"])
    assert "guards.disabled" in message and "'no_such_pattern'" in message and "email_address" not in message
