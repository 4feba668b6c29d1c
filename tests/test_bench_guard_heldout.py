"""bench.guard_heldout: the held-out set loads whole, and the table counts it as the
docstring says (a value found when a match of its category covers it)."""

from __future__ import annotations

from bench import guard_heldout
from bench.guard_quality import Report
from tests.guard_corpus.build import Doc


def test_the_held_out_set_loads_with_every_planted_value_in_its_text():
    docs = guard_heldout.docs()
    assert len({d.id for d in docs}) == len(docs) > 1000
    assert {d.category for d in docs} == {"credential", "pii", "injection", None}
    planted = [d for d in docs if d.category in ("credential", "pii")]
    assert all(d.span is not None and d.span[0] >= 0 for d in planted)
    assert all(d.span is None for d in docs if d.category in ("injection", None))


def test_the_table_counts_subcategories_by_their_category_hit():
    docs = [Doc("a", "user", "x", "k", "heldout", "pii", "phone", (0, 1)),
            Doc("b", "user", "x", "k", "heldout", "pii", "phone", (0, 1)),
            Doc("c", "user", "x", "k", "heldout", None)]
    report = Report(benign=1)
    report.categories["pii"].total, report.categories["pii"].found = 2, 1
    report.misses.append(docs[1])
    report.false_positives.append((docs[2], []))
    report.fp_by_category["pii"] = 1
    text = "\n".join(guard_heldout.table(report, docs))
    assert "| **pii** | *all* (≥ 95%) | **50.0%** | 1 / 2 | 100.00% (1) |" in text
    assert "| | phone | 50.0% | 1 / 2 | |" in text
    assert "| **benign** | *any category* | | | **100.00%** (1 / 1) |" in text
