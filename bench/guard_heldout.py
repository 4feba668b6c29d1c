"""Guard recall and false positives on the held-out set (issue 20, item 4): documents in
tests/guard_heldout/ written by someone who had not seen the patterns, never used to
tune them. Every pattern of the catalog on, as a gateway with every category set to
`block` would scan each document in its place.

    python -m bench.guard_heldout [--misses] [--no-write]

A credential or a personal value counts as found when a match of its category
overlaps the planted value (the set's subcategories are its own names, not the
catalog's); an injection when a match of its category is anywhere in the document. A benign document is a false positive of each
category that matches anything in it. Writes the `bench.guard_heldout` section of
bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import subprocess
from collections import defaultdict
from collections.abc import Sequence

from aiogw.guards import catalog
from aiogw.guards.engine import Engine
from bench import harness
from bench.guard_quality import Report, Row, evaluate
from bench.targets import ROOT
from tests import guard_heldout
from tests.guard_corpus.build import Doc


def docs() -> list[Doc]:
    """The held-out records as the corpus's documents (the planted value's span)."""
    out = []
    for r in guard_heldout.load():
        value = r.get("value")
        span = None
        if value:
            at = r["text"].find(value)
            span = (at, at + len(value)) if at >= 0 else None
        out.append(Doc(r["id"], r["place"], r["text"], r["kind"], "heldout", r["category"], r["subcategory"], span))
    return out


# Issue 20's targets on held-out data: recall per category (injection: as high as it
# goes, 80% the bar to aim for), false positives ≤ 0.5% per category.
AIMS = {"credential": "≥ 98%", "pii": "≥ 95%", "injection": "aim 80%"}


def table(report: Report, held: Sequence[Doc]) -> list[str]:
    """Recall per category and per the set's own subcategories (its names, not the
    catalog's: a value counts for its subcategory when a match of its category covers
    it), and the benign documents each category hit."""
    missed = {doc.id for doc in report.misses}
    subs: dict[tuple[str, str], Row] = defaultdict(Row)
    for doc in held:
        if doc.category is not None:
            row = subs[(doc.category, doc.subcategory or "")]
            row.total += 1
            row.found += doc.id not in missed
    lines = ["| category | subcategory | recall | found / total | benign docs it hit (≤ 0.5%) |",
             "|---|---|---:|---:|---:|"]
    for cat in catalog.CATEGORIES:
        row = report.categories.get(cat, Row())
        fp = report.fp_by_category.get(cat, 0)
        lines.append(f"| **{cat}** | *all* ({AIMS[cat]}) | **{row.recall:.1%}** | {row.found} / {row.total} | "
                     f"{fp / report.benign if report.benign else 0:.2%} ({fp}) |")
        lines += [f"| | {sub} | {srow.recall:.1%} | {srow.found} / {srow.total} | |"
                  for (c, sub), srow in sorted(subs.items()) if c == cat]
    lines.append(f"| **benign** | *any category* | | | **{report.fp_rate:.2%}** ({len(report.false_positives)} / "
                 f"{report.benign}) |")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.guard_heldout", description=__doc__.split("\n\n")[0])
    p.add_argument("--misses", action="store_true",
                   help="list the ids of what was missed and of the benign documents hit (never their text)")
    p.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md as it is")
    args = p.parse_args(argv)
    held = docs()
    report = evaluate(Engine(catalog.load()), held)
    by_kind: dict[str, int] = defaultdict(int)
    for doc in held:
        by_kind[doc.category or "benign"] += 1
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True, cwd=ROOT,
                            check=False).stdout.strip()
    facts = [f"**date:** {harness.now()}, aiogw at {commit}; {len(catalog.load())} patterns",
             "**set:** tests/guard_heldout/ (" + ", ".join(f"{k} {n}" for k, n in sorted(by_kind.items())) + ")"]
    text = harness.section(f"Guards on the held-out set (`{harness.command('bench.guard_heldout', argv)}`)",
                           facts, table(report, held))
    harness.write("bench.guard_heldout", text, not args.no_write)
    if args.misses:
        print("\n### Missed\n")
        for doc in report.misses:
            print(f"- {doc.id} ({doc.subcategory}, {doc.place}, {doc.kind})")
        print("\n### Benign documents hit\n")
        for doc, matches in report.false_positives:  # which patterns, not the text: the set stays held out
            print(f"- {doc.id} ({doc.kind}, {doc.place}): {', '.join(sorted({m.pattern.id for m in matches}))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
