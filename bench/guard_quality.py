"""Guard quality: recall per category and subcategory, false positives on benign text,
and scan speed, measured on the labeled corpus in tests/guard_corpus/.

    python -m bench.guard_quality            # markdown tables for bench/RESULTS.md
    python -m bench.guard_quality --misses   # also list what was missed / wrongly hit

A positive counts as found when a match of its category (for the subcategory column:
of its subcategory) overlaps the planted value, or anywhere in the document when the
value's place is not known (hand-written injections). A benign document is a false
positive when anything matches in it. Documents are scanned in their own place
(tool_result, user, system, assistant, response) like the gateway scans them.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiogw.guards import catalog
from aiogw.guards.engine import Engine, Match
from tests.guard_corpus import build

TARGETS = {"credential": 0.98, "pii": 0.95, "injection": 0.90}
MAX_FP_RATE = 0.005


@dataclass
class Row:
    found: int = 0
    total: int = 0

    @property
    def recall(self) -> float:
        return self.found / self.total if self.total else 1.0


@dataclass
class Report:
    categories: dict[str, Row] = field(default_factory=lambda: defaultdict(Row))
    subcategories: dict[tuple[str, str], Row] = field(default_factory=lambda: defaultdict(Row))
    benign: int = 0
    false_positives: list[tuple[build.Doc, list[Match]]] = field(default_factory=list)
    fp_by_category: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    misses: list[build.Doc] = field(default_factory=list)

    @property
    def fp_rate(self) -> float:
        return len(self.false_positives) / self.benign if self.benign else 0.0


def _hit(doc: build.Doc, matches: Sequence[Match], key: str) -> bool:
    for m in matches:
        if getattr(m.pattern, key) != getattr(doc, key):
            continue
        if doc.span is None or (m.start < doc.span[1] and doc.span[0] < m.end):
            return True
    return False


def evaluate(engine: Engine, docs: Sequence[build.Doc]) -> Report:
    report = Report()
    for doc in docs:
        matches = engine.scan(doc.place, doc.text)
        if doc.category is None:
            report.benign += 1
            if matches:
                report.false_positives.append((doc, matches))
                for cat in {m.pattern.category for m in matches}:
                    report.fp_by_category[cat] += 1
            continue
        cat_row = report.categories[doc.category]
        sub_row = report.subcategories[(doc.category, doc.subcategory)]
        cat_row.total += 1
        sub_row.total += 1
        if _hit(doc, matches, "category"):
            cat_row.found += 1
        else:
            report.misses.append(doc)
        if _hit(doc, matches, "subcategory"):
            sub_row.found += 1
    return report


def speed_text(size: int) -> str:
    """About `size` characters of what a coding agent sends: this repository's own
    Python source interleaved with the hand-written benign tool output (ASCII only)."""
    root = Path(__file__).resolve().parents[1]
    code = [p.read_text(encoding="utf-8") for p in sorted((root / "aiogw").rglob("*.py"))]
    tools = [d.text for d in build.handwritten_benign() if d.place == "tool_result"]
    pool = [t for pair in zip(code, tools * (len(code) // len(tools) + 1), strict=False) for t in pair if t.isascii()]
    parts, n, i = [], 0, 0
    while n < size:
        parts.append(pool[i % len(pool)])
        n += len(parts[-1]) + 2
        i += 1
    return "\n\n".join(parts)[:size]


def speed(engine: Engine, size: int, rounds: int = 15) -> tuple[float, float]:
    """Best-of-`rounds` milliseconds for (the Hyperscan scan alone, a whole
    `Engine.scan`) of `speed_text(size)` as a tool result (the largest pattern set)."""
    text = speed_text(size)
    data = text.encode()
    db = engine.databases["tool_result"]

    def best(fn) -> float:
        times = []
        for _ in range(rounds):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return min(times) * 1000

    raw = best(lambda: db.scan(data, match_event_handler=_ignore))
    full = best(lambda: engine.scan("tool_result", text))
    return raw, full


def _ignore(*_: object) -> None:
    return None


def markdown(
    report: Report,
    held_out: Report,
    *,
    compile_s: float,
    speeds: dict[str, tuple[int, float, float]],
    command: str,
    seed: int,
) -> str:
    lines = [
        "## Guards: detection quality and scan speed",
        "",
        f"- **command:** `{command}` (corpus seed {seed}; `tests/guard_corpus/`)",
        f"- **machine:** Python {platform.python_version()}, {platform.machine()}, {platform.system()}",
        f"- **benign documents:** {report.benign}; any match is a false positive",
        f"- **compile:** {compile_s:.2f} s for the whole catalog ({len(catalog.load())} patterns)",
        "",
        "| category | subcategory | recall | found / total | FP rate (benign docs hit) |",
        "|---|---|---:|---:|---:|",
    ]
    for cat in catalog.CATEGORIES:
        row = report.categories.get(cat, Row())
        fp = report.fp_by_category.get(cat, 0)
        target = TARGETS[cat]
        verdict = "ok" if row.recall >= target else "MISS"
        lines.append(
            f"| **{cat}** | *all* (target ≥ {target:.0%}: {verdict}) | **{row.recall:.1%}** | "
            f"{row.found} / {row.total} | {fp / report.benign:.2%} ({fp}) |"
        )
        for (c, sub), srow in sorted(report.subcategories.items()):
            if c == cat:
                lines.append(f"| | {sub} | {srow.recall:.1%} | {srow.found} / {srow.total} | |")
    n_fp = len(report.false_positives)
    verdict = "ok" if report.fp_rate <= MAX_FP_RATE else "MISS"
    lines.append(
        f"| **benign** | *all* (target ≤ {MAX_FP_RATE:.1%}: {verdict}) | | | "
        f"**{report.fp_rate:.2%}** ({n_fp} / {report.benign}) |"
    )
    lines += [
        "",
        "Held-out documents, written after the catalog was frozen and never used to tune it "
        "(`holdout_*.txt`; no targets, a check on how the patterns generalise):",
        "",
        "| set | subcategory | recall / FP | found / total |",
        "|---|---|---:|---:|",
    ]
    inj = held_out.categories.get("injection", Row())
    lines.append(f"| injection | *all* | {inj.recall:.1%} | {inj.found} / {inj.total} |")
    for (_, sub), srow in sorted(held_out.subcategories.items()):
        lines.append(f"| | {sub} | {srow.recall:.1%} | {srow.found} / {srow.total} |")
    lines.append(
        f"| benign | hard negatives hit | {held_out.fp_rate:.1%} | "
        f"{len(held_out.false_positives)} / {held_out.benign} |"
    )
    lines += [
        "",
        f"Scan speed on ASCII code and tool output scanned as a tool result (all {len(catalog.load())} patterns), "
        "best of 15:",
        "",
        "| text | Hyperscan scan | whole `Engine.scan` (+ validation) | per 200 KB (whole) |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {label} | {raw:.3f} ms | {full:.3f} ms | {full * 200 / kb:.3f} ms |"
        for label, (kb, raw, full) in speeds.items()
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Guard recall / false-positive table (markdown).")
    parser.add_argument("--seed", type=int, default=build.SEED)
    parser.add_argument("--misses", action="store_true", help="list misses and false positives")
    args = parser.parse_args(argv)

    docs = build.corpus(args.seed)
    t = time.perf_counter()
    engine = Engine(catalog.load())
    compile_s = time.perf_counter() - t
    report = evaluate(engine, docs)
    held_out = evaluate(engine, build.holdout())
    speeds = {}
    for size in (200_000, 2_000_000):
        raw, full = speed(engine, size)
        speeds[f"{size // 1000} KB"] = (size // 1000, raw, full)
    command = "python -m bench.guard_quality" + (f" --seed {args.seed}" if args.seed != build.SEED else "")
    print(markdown(report, held_out, compile_s=compile_s, speeds=speeds, command=command, seed=args.seed))
    if args.misses:
        print("\n### Missed positives\n")
        for doc in report.misses + held_out.misses:
            print(f"- {doc.id} ({doc.subcategory}, {doc.place}): {doc.text[:160]!r}")
        print("\n### False positives\n")
        for doc, matches in report.false_positives + held_out.false_positives:
            hits = ", ".join(f"{m.pattern.id}={doc.text[m.start : m.end][:60]!r}" for m in matches)
            print(f"- {doc.id} ({doc.kind}, {doc.place}): {hits}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
