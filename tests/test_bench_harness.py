"""bench.harness's pure parts with plain data: how a suite expands into runs, how
rounds become medians and ratios, how a report renders; and the on/off tables that
bench.onoff builds on them (the bench itself runs for minutes and is not part of the suite)."""

from __future__ import annotations

import math

import pytest

from bench import harness, onoff
from bench.harness import Side, Workload


def _w(name: str, only: set[str] | None = None) -> Workload:
    return Workload(name, lambda t, d: {}, 1.0, only=frozenset(only) if only is not None else None)


def test_interleaved_suite_runs_every_side_on_every_workload_each_round_in_order():
    sides = [Side("direct", ("d",)), Side("passthrough", ("p",)), Side("aiogw", ("a",))]
    steps = harness.plan(2, [_w("small"), _w("huge", {"aiogw"})], sides)
    assert [(s.round, s.workload, s.side) for s in steps] == [
        (1, "small", "direct"), (1, "small", "passthrough"), (1, "small", "aiogw"), (1, "huge", "aiogw"),
        (2, "small", "direct"), (2, "small", "passthrough"), (2, "small", "aiogw"), (2, "huge", "aiogw"),
    ]
    assert {s.process for s in steps} == {0}


def test_alternating_suite_flips_the_order_each_round_and_pairs_every_process():
    sides = [Side("off", ("off-0", "off-1")), Side("on", ("on-0", "on-1"))]
    steps = harness.plan(4, [_w("small")], sides, alternate=True)
    assert [s.side for s in steps] == ["off", "on", "on", "off", "off", "on", "on", "off"]
    pairs = {(s.round, s.side): s.process for s in steps}
    assert {(pairs[(r, "off")], pairs[(r, "on")]) for r in range(1, 5)} == {(0, 0), (0, 1), (1, 0), (1, 1)}
    with pytest.raises(ValueError):
        harness.plan(1, [_w("small")], [*sides, Side("third", ("x",))], alternate=True)


def test_pairing_covers_every_pair_for_unequal_sides_too():
    for n_off, n_on in ((1, 1), (2, 2), (3, 3), (2, 3), (3, 1)):
        seen = {harness.pairing(i, n_off, n_on) for i in range(n_off * n_on)}
        assert seen == {(a, b) for a in range(n_off) for b in range(n_on)}, (n_off, n_on)


def test_summarise_takes_medians_but_sums_errors_and_keeps_the_worst_lag():
    rounds = [{"rps": 100.0, "errors": 0, "status_503": 2, "lag_max": 3.0, "lag_p99": 1.0},
              {"rps": 300.0, "errors": 5, "lag_max": 9.0, "lag_p99": 2.0},
              {"rps": 200.0, "errors": 1, "status_503": 1, "lag_max": 4.0, "lag_p99": 5.0}]
    got = harness.summarise(rounds)
    assert got == {"rps": 200.0, "errors": 6, "status_503": 3, "lag_max": 9.0, "lag_p99": 2.0}
    assert harness.median(rounds, "rps") == 200.0
    assert math.isnan(harness.median(rounds, "absent")) and math.isnan(harness.median(None, "rps"))


def test_ratios_pair_the_rounds_as_they_ran():
    on = [{"rps": 90.0}, {"rps": 50.0}]
    off = [{"rps": 100.0}, {"rps": 0.0}]
    first, second = harness.ratios(on, off, "rps")
    assert first == pytest.approx(0.9) and math.isnan(second)
    with pytest.raises(ValueError):
        harness.ratios(on, off[:1], "rps")


def test_settle_stops_when_two_runs_agree():
    figures = iter([400.0, 660.0, 725.0, 745.0, 750.0])
    assert harness.settle(lambda: next(figures)) == (4, 745.0)
    assert harness.settle(lambda: 1.0, most=3) == (2, 1.0)
    wild = iter([1.0, 2.0, 4.0])
    assert harness.settle(lambda: next(wild), most=3) == (3, 4.0)


def test_table_and_section_render_and_refuse_a_ragged_row():
    lines = harness.table(("target", "req/s"), [["aiogw", "1,000"]])
    assert lines == ["| target | req/s |", "|---|---:|", "| aiogw | 1,000 |"]
    with pytest.raises(ValueError):
        harness.table(("target", "req/s"), [["aiogw"]])
    text = harness.section("Title (`cmd`)", ["**date:** today"], lines)
    assert text.splitlines()[:4] == ["## Title (`cmd`)", "", "- **date:** today", ""]
    assert text.endswith("| aiogw | 1,000 |")
    assert harness.fmt(float("nan")) == "n/a" and harness.fmt(1234.5, 0) == "1,234"


def _run(rps: float, loop: float, other: float, ttfb: float = 5.0, gap: float = 9.0) -> dict[str, float]:
    return {"rps": rps, "cpu_loop_us": loop, "cpu_other_us": other, "ttfb_p50": ttfb, "gap_p99": gap}


def test_onoff_rate_table_reads_on_over_off_per_round_and_cpu_by_thread():
    got = {("small (1 KB)", "off"): [_run(1000, 400, 20), _run(1000, 400, 20), _run(800, 450, 50)],
           ("small (1 KB)", "on"): [_run(900, 450, 50), _run(800, 500, 50), _run(800, 450, 50)]}
    lines = onoff.rate_table(got, "audit", ["small (1 KB)"], by_thread=True)
    assert lines[0].startswith("| workload | audit off /s | audit on /s | ratio (per round) | CPU µs each off → on "
                               "(loop thread + others) |")
    row = lines[2]
    assert "| 90% (0.90, 0.80, 1.00) |" in row  # on ÷ off, each round with its own pair
    assert "| 420 → 500 (450 + 50) | 84% |" in row
    assert row.endswith("| 42% / 44% |")  # answers/s × CPU µs each: the share of a core


def test_onoff_latency_table_gives_both_sides_and_peak_rss():
    got = {("paced", "off"): [_run(1, 1, 1, ttfb=5.0, gap=9.0), _run(1, 1, 1, ttfb=6.0, gap=9.5)],
           ("paced", "on"): [_run(1, 1, 1, ttfb=5.5, gap=9.2), _run(1, 1, 1, ttfb=6.2, gap=9.4)]}
    lines = onoff.latency_table(got, ["paced"], {"off (before)": [80.4, 82.0], "on (now)": [79.0, 81.6]})
    assert lines[2] == "| paced | 5.50 → 5.85 | +0.35 | 9.25 → 9.30 | +0.05 |"
    assert "| off (before) | 80, 82 |" in lines and "| on (now) | 79, 82 |" in lines
