"""Detection quality on the labeled corpus (tests/guard_corpus/): recall per category
and the false-positive rate on benign coding-agent traffic must meet their targets.

The table itself (per subcategory, with the held-out set and scan speed) comes from
`python -m bench.guard_quality`; this test only holds the line.
"""

from __future__ import annotations

from collections import Counter

import pytest

from aiogw.guards import catalog
from aiogw.guards.engine import Engine
from bench.guard_quality import MAX_FP_RATE, TARGETS, Report, evaluate
from tests.guard_corpus import build


@pytest.fixture(scope="module")
def corpus() -> list[build.Doc]:
    return build.corpus()


@pytest.fixture(scope="module")
def report(corpus) -> Report:
    return evaluate(Engine(catalog.load()), corpus)


def test_corpus_is_deterministic_and_large_enough(corpus):
    again = build.corpus()
    assert [(d.id, d.text) for d in again] == [(d.id, d.text) for d in corpus]
    kinds = Counter((d.category, d.source) for d in corpus)
    assert kinds[(None, "handwritten")] >= 150 and sum(n for (c, _), n in kinds.items() if c is None) >= 2000
    assert sum(n for (c, _), n in kinds.items() if c is not None) >= 500
    assert kinds[("injection", "handwritten")] >= 100


def test_planted_values_are_where_the_labels_say(corpus):
    for doc in corpus:
        if doc.span is not None:
            s, e = doc.span
            assert 0 <= s < e <= len(doc.text), doc.id


@pytest.mark.parametrize("category", list(TARGETS))
def test_recall_meets_target(report, category):
    row = report.categories[category]
    missed = [d.id for d in report.misses if d.category == category]
    assert row.total > 0
    assert row.recall >= TARGETS[category], f"{category}: {row.found}/{row.total}; missed {missed[:20]}"


def test_every_subcategory_is_found_most_of_the_time(report):
    weak = {sub: f"{row.found}/{row.total}" for (_, sub), row in report.subcategories.items() if row.recall < 0.8}
    assert not weak


def test_false_positive_rate(report):
    hits = [(doc.id, sorted({m.pattern.id for m in ms})) for doc, ms in report.false_positives]
    assert report.benign >= 2000
    assert report.fp_rate <= MAX_FP_RATE, hits
