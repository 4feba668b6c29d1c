"""Turn the bench's measurements into the `bench.run` section of bench/RESULTS.md."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bench import harness
from bench.targets import TARGETS

CORE_TARGET = 0.85  # aiogw-core req/s ÷ pass-through req/s, small and large bodies
ADDED_GAP_TARGET_MS = 0.2  # aiogw-core's inter-chunk gap p99 minus the direct one
AUDIT_TARGET = 0.85  # aiogw-audit ÷ aiogw-core: small, large, streams
LAG_TARGET_MS = 5.0  # loop lag p99 with the audit on
GUARD_ADDED_MS = 1.0  # guards' added latency p50 on a 200 KB request
GUARD_TARGET = 0.90  # aiogw ÷ aiogw-audit throughput
# A run is "capped by the fake upstream" when the pass-through idles while the fake is busy.
CAPPED_PROXY_CPU = 85.0
CAPPED_FAKE_CPU = 85.0

SMALL, LARGE, HUGE = "small (1 KB)", "large (200 KB)", "huge (2 MB)"


@dataclass
class Row:
    """One workload × target: the median of its rounds, plus each round kept for the record."""

    workload: str
    target: str
    values: dict[str, float] = field(default_factory=dict)
    rounds: list[dict[str, float]] = field(default_factory=list)


_f = harness.fmt


def _div(a: float, b: float) -> float:
    return a / b if b else float("nan")


def _table(header: Sequence[str], lines: Sequence[Sequence[str]]) -> str:
    return "\n".join(harness.table(header, lines))


def _errors(values: dict[str, float]) -> str:
    codes = sorted((k[7:], int(n)) for k, n in values.items() if k.startswith("status_"))
    detail = ", ".join(f"{n} × {code}" for code, n in codes)
    return f"{int(values.get('errors', 0))}" + (f" ({detail})" if detail else "")


def _per_round(a: Row, b: Row, key: str) -> str:
    return ", ".join(_f(_div(x.get(key, 0.0), y.get(key, 0.0))) for x, y in zip(a.rounds, b.rounds, strict=True))


class Tables:
    """The rows of one run, indexed by (workload, target)."""

    def __init__(self, http: Sequence[Row], streams: Sequence[Row], latency: Sequence[Row], paced: Sequence[Row],
                 idle: Sequence[Row]) -> None:
        self.http = {(r.workload, r.target): r for r in http}
        self.streams = {r.target: r for r in streams}
        self.latency = {(r.workload, r.target): r for r in latency}
        self.paced = {(r.workload, r.target): r for r in paced}
        self.idle = {r.target: r for r in idle}

    def row(self, workload: str, target: str) -> Row | None:
        """"streams", "idle", "<workload> paced", or a wrk workload."""
        if workload == "streams":
            return self.streams.get(target)
        if workload == "idle":
            return self.idle.get(target)
        if workload.endswith(" paced"):
            return self.paced.get((workload.removesuffix(" paced"), target))
        return self.http.get((workload, target))

    def v(self, workload: str, target: str, key: str) -> float:
        r = self.row(workload, target)
        return r.values.get(key, float("nan")) if r is not None else float("nan")


def http_table(t: Tables) -> str:
    lines = []
    for workload in (SMALL, LARGE):
        for target in TARGETS:
            r = t.row(workload, target)
            if r is None:
                continue
            v = r.values
            lines.append([
                workload, target, _f(v["rps"], 0), _f(v["drain_s"], 1), _f(v["sustained"], 0), _f(v["p50"]),
                _f(v["p99"]), _f(_div(v["sustained"], t.v(workload, "passthrough", "sustained"))),
                _f(_div(v["sustained"], t.v(workload, "aiogw-core", "sustained"))),
                _f(_div(v["sustained"], t.v(workload, "direct", "sustained"))),
                _f(v["cpu_us"], 0), _f(v["server_cpu"], 0), _f(v["fake_cpu"], 0), _errors(v),
            ])
    header = ("workload", "target", "req/s", "audit drain s", "sustained req/s", "p50 ms", "p99 ms",
              "vs pass-through", "vs aiogw-core", "vs direct", "server CPU µs/req", "server CPU %", "fake CPU %",
              "errors (by status)")
    return _table(header, lines)


def stream_table(t: Tables) -> str:
    lines = []
    for target in TARGETS:
        r = t.row("streams", target)
        if r is None:
            continue
        v = r.values
        lines.append([
            target, _f(v["streams_per_s"], 1), _f(_div(v["streams_per_s"], t.v("streams", "aiogw-core", "streams_per_s"))),
            _f(v["ttfb_p50"]), _f(v["ttfb_p99"]), _f(v["gap_p50"]), _f(v["gap_p99"]),
            _f(v["ttfb_p50"] - t.v("streams", "direct", "ttfb_p50")),
            _f(v["gap_p99"] - t.v("streams", "direct", "gap_p99")),
            _f(v["gap_p99"] - t.v("streams", "passthrough", "gap_p99")), _f(v["server_cpu"], 0), str(int(v["failed"])),
        ])
    header = ("target", "streams/s", "vs aiogw-core", "TTFB p50 ms", "TTFB p99 ms", "gap p50 ms", "gap p99 ms",
              "added TTFB p50 ms", "added gap p99 ms", "gap p99 vs pass-through ms", "server CPU %", "failed")
    return _table(header, lines)


LAG_LOADS = (("idle", "idle"), (f"{SMALL} paced", "small, paced"), (f"{LARGE} paced", "large, paced"),
             ("streams", "streams"), (SMALL, "small, saturated"), (LARGE, "large, saturated"))


def lag_table(t: Tables) -> str:
    lines = []
    for target in TARGETS:
        if t.row("idle", target) is None:
            continue
        cells = [target]
        for workload, _ in LAG_LOADS:
            p50, p99, mx = (t.v(workload, target, k) for k in ("lag_p50", "lag_p99", "lag_max"))
            cells.append(f"{_f(p50)} / {_f(p99)} / {_f(mx, 1)}")
        lines.append(cells)
    return _table(("target", *(f"{label}: p50 / p99 / max ms" for _, label in LAG_LOADS)), lines)


def paced_table(t: Tables, paced: dict[str, tuple[int, int]]) -> str:
    lines = []
    for workload, (conns, pause) in paced.items():
        for target in TARGETS:
            r = t.row(f"{workload} paced", target)
            if r is None:
                continue
            v = r.values
            lines.append([f"{workload}: {conns} connections, {pause} ms pause", target, _f(v["rps"], 0),
                          _f(v["p50"]), _f(v["p99"]), _f(v["server_cpu"], 0), _f(v["lag_p99"]), _errors(v)])
    return _table(("load", "target", "req/s", "p50 ms", "p99 ms", "server CPU %", "lag p99 ms", "errors"), lines)


def guard_table(t: Tables) -> str:
    lines = []
    for label, workload in (("200 KB", LARGE), ("2 MB", HUGE)):
        off, on = t.latency.get((label, "aiogw-audit")), t.latency.get((label, "aiogw"))
        if off is None or on is None:
            continue
        lo, ln = off.values, on.values
        lines.append([
            label, _f(lo["p50"]), _f(ln["p50"]), _f(ln["p50"] - lo["p50"]),
            _f(t.v(workload, "aiogw-audit", "sustained"), 0), _f(t.v(workload, "aiogw", "sustained"), 0),
            _f(_div(t.v(workload, "aiogw", "sustained"), t.v(workload, "aiogw-audit", "sustained"))),
            _f(t.v(workload, "aiogw", "cpu_us") - t.v(workload, "aiogw-audit", "cpu_us"), 0),
            _errors(ln), _errors(t.row(workload, "aiogw").values) if t.row(workload, "aiogw") else "n/a",
        ])
    header = ("body", "guards off p50 ms (one at a time)", "guards on p50 ms", "added p50 ms",
              "guards off sustained req/s (loaded)", "guards on sustained req/s", "throughput ratio", "added CPU µs/req",
              "guards-on errors, one at a time", "guards-on errors, loaded")
    return _table(header, lines)


def verdicts(t: Tables) -> list[str]:
    lines = []
    # 1. The core against the pass-through.
    for workload in (SMALL, LARGE):
        core, pt = t.row(workload, "aiogw-core"), t.row(workload, "passthrough")
        ratio = _div(core.values["rps"], pt.values["rps"])
        line = (f"- **{'PASS' if ratio >= CORE_TARGET else 'MISS'}** aiogw-core, {workload}: {ratio:.0%} of the "
                f"pass-through's throughput (target ≥ {CORE_TARGET:.0%}; per round: {_per_round(core, pt, 'rps')}). "
                f"CPU per request: aiogw-core {core.values['cpu_us']:,.0f} µs, pass-through "
                f"{pt.values['cpu_us']:,.0f} µs.")
        if pt.values["server_cpu"] < CAPPED_PROXY_CPU and pt.values["fake_cpu"] > CAPPED_FAKE_CPU:
            line += (f" The fake upstream capped this workload (pass-through at {pt.values['server_cpu']:.0f} % CPU, "
                     f"fake at {pt.values['fake_cpu']:.0f} %): the CPU ratio is the fairer figure.")
        lines.append(line + _error_note(core))
    lines.append(_gap_verdict(t))
    # 2. The audit log's cost, its writer's drain after the run included.
    for workload, key in ((SMALL, "sustained"), (LARGE, "sustained"), ("streams", "streams_per_s")):
        audit, core = t.row(workload, "aiogw-audit"), t.row(workload, "aiogw-core")
        ratio = _div(audit.values[key], core.values[key])
        line = (f"- **{'PASS' if ratio >= AUDIT_TARGET else 'MISS'}** aiogw-audit, {workload}: {ratio:.0%} of "
                f"aiogw-core's throughput (target ≥ {AUDIT_TARGET:.0%}; per round: {_per_round(audit, core, key)}).")
        if key == "sustained":
            line += (f" Over the run alone (before the writer's {audit.values['drain_s']:.1f} s drain): "
                     f"{_div(audit.values['rps'], core.values['rps']):.0%}. CPU per request: "
                     f"{audit.values['cpu_us']:,.0f} µs against {core.values['cpu_us']:,.0f} µs.")
        lines.append(line + _error_note(audit))
    # 3. The default configuration, for the record.
    for workload, key in ((SMALL, "sustained"), (LARGE, "sustained"), ("streams", "streams_per_s")):
        gw = t.row(workload, "aiogw")
        lines.append(f"- **INFO** aiogw (defaults: all on), {workload}: "
                     f"{_div(gw.values[key], t.v(workload, 'aiogw-core', key)):.0%} of aiogw-core, "
                     f"{_div(gw.values[key], t.v(workload, 'passthrough', key)):.0%} of the pass-through."
                     + _error_note(gw))
    # 4. Loop lag with the audit on: with headroom (paced, streams), and saturated.
    for target in ("aiogw-audit", "aiogw"):
        if t.row("idle", target) is None:
            continue
        for label, loads in (("paced loads and streams", (f"{SMALL} paced", f"{LARGE} paced", "streams")),
                             ("saturated (64 connections)", (SMALL, LARGE))):
            worst = {w: t.v(w, target, "lag_p99") for w in loads}
            ok = all(v <= LAG_TARGET_MS for v in worst.values())
            figures = ", ".join(f"{w} {v:.2f} ms" for w, v in worst.items())
            core = ", ".join(f"{t.v(w, 'aiogw-core', 'lag_p99'):.2f}" for w in worst)
            lines.append(f"- **{'PASS' if ok else 'MISS'}** loop lag p99, {target}, {label}: {figures} (target ≤ "
                         f"{LAG_TARGET_MS:g} ms; aiogw-core under the same loads: {core} ms; idle floor "
                         f"{t.v('idle', target, 'lag_p99'):.2f} ms).")
    # 5. The guards' cost.
    for label, workload in (("200 KB", LARGE), ("2 MB", HUGE)):
        off, on = t.latency.get((label, "aiogw-audit")), t.latency.get((label, "aiogw"))
        if off is None or on is None or t.row(workload, "aiogw") is None:
            continue
        added = on.values["p50"] - off.values["p50"]
        ratio = _div(t.v(workload, "aiogw", "sustained"), t.v(workload, "aiogw-audit", "sustained"))
        ok = ratio >= GUARD_TARGET and (label != "200 KB" or added <= GUARD_ADDED_MS)
        target = f"≤ {GUARD_ADDED_MS:g} ms added and " if label == "200 KB" else ""
        lines.append(f"- **{'PASS' if ok else 'MISS'}** guards, {label} body: +{added:.2f} ms at p50 one request "
                     f"at a time, {ratio:.0%} of guards-off throughput under load (target {target}≥ "
                     f"{GUARD_TARGET:.0%}; per round: {_per_round(t.row(workload, 'aiogw'), t.row(workload, 'aiogw-audit'), 'sustained')})."
                     + _error_note(on) + _error_note(t.row(workload, "aiogw")))
    return lines


def _error_note(row: Row) -> str:
    v = row.values
    if not v.get("errors") and not v.get("failed"):
        return ""
    if "failed" in v:
        return f" Failed streams: {int(v['failed'])}."
    return f" Errors over the rounds: {_errors(v)}; only 200s count as throughput (403: a guard block, 503: audit queue full)."


def _gap_verdict(t: Tables) -> str:
    st = t.streams
    core, direct, pt = st["aiogw-core"], st["direct"], st["passthrough"]
    added = core.values["gap_p99"] - direct.values["gap_p99"]
    per_round = ", ".join(_f(g["gap_p99"] - d["gap_p99"]) for g, d in zip(core.rounds, direct.rounds, strict=True))
    floor = [d["gap_p99"] for d in direct.rounds]
    spread = max(floor) - min(floor)
    ok = "PASS" if added <= ADDED_GAP_TARGET_MS else "MISS"
    if len(floor) > 1 and abs(added) < spread:
        ok += " (within noise)"
    line = (f"- **{ok}** aiogw-core, streams: adds {added:.2f} ms to the inter-chunk gap p99 (target ≤ "
            f"{ADDED_GAP_TARGET_MS} ms; per round: {per_round}); the pass-through adds "
            f"{pt.values['gap_p99'] - direct.values['gap_p99']:.2f} ms.")
    if len(floor) > 1:
        line += (f" The direct gap p99 itself ranged {min(floor):.2f}–{max(floor):.2f} ms across rounds: "
                 f"differences smaller than {spread:.2f} ms are noise.")
    return line + _error_note(core)


def background(rows: Sequence[Row]) -> str:
    """How busy other processes kept each core during the measured runs (mean, max)."""
    runs = [r for row in rows for r in row.rounds if "bg0" in r]
    if not runs:
        return "n/a"
    parts = []
    for key, core in (("bg0", "CPU 0"), ("bg1", "CPU 1")):
        # CPU 0 only while a proxy ran there (a direct run leaves it to anyone).
        vals = [max(0.0, r[key]) for r in runs if key == "bg1" or r.get("proxied", 1)]
        parts.append(f"{core} {sum(vals) / len(vals):.0f} % on average (max {max(vals):.0f} %)")
    return "other processes used " + ", ".join(parts)


NOTES = [
    "- *vs pass-through*, *vs aiogw-core* and *vs direct* divide req/s by that target's req/s for the same "
    "workload. The pass-through (`bench/passthrough.py`) is the ceiling the gateway core is held to; the "
    "direct call is the fake upstream alone, on the load generator's core. req/s counts 200 answers only; "
    "p50/p99 are over all answers, errors included, and errors are listed by status.",
    "- *server CPU* is the CPU time of the process serving that target (the fake upstream for *direct*): per "
    "answer, and as a share of one core over the run. A proxy near 100 % is the bottleneck, as intended. "
    "When *fake CPU %* is near 100 % instead, the fake (which shares CPU 1 with wrk) capped the run.",
    "- Streams: TTFB is request sent → first body bytes; a gap is the time between two SSE events arriving "
    "at the client (events arriving in one read count as 0). *Added* is the target's figure minus the direct "
    "one. The fake's 5 ms sleeps are timer-driven (1 ms resolution in uvloop). Streams/s is bound by the "
    "streams' own length (50 × 5 ms), so it moves only when a proxy falls behind.",
    "- Loop lag: a task in the gateway process sleeps 1 ms in a loop and records how late it wakes "
    "(`bench.gateway`), only while that target is measured. uvloop's timers tick in milliseconds, so "
    "an idle loop already shows up to ~1 ms (the *idle* column). Under wrk's 64 connections the loop never "
    "rests: the lag is then the length of one loop turn, which grows with the requests served per turn.",
    "- Bodies: the 200 KB and 2 MB bodies are a Claude Code session (a ~30 KB system prompt and tool list, then "
    "tool calls and their output) built from the Python standard library's sources (`bench/agent_text.py`); the "
    "1 KB body is the first turns of a short task. For the aiogw targets wrk numbers every request in its last "
    "tool result (`bench/post.lua`), so each request is a new turn whose history the gateway has seen and whose "
    "newest tool output it has not: its caches (the guards' scan memo, the audit's parts memo) work as they would "
    "for agents, not on one body resent verbatim. Direct and the pass-through cache nothing and get the same "
    "body unnumbered.",
    "- Guards: *one at a time* is wrk with one connection (each request's own latency, no queueing); "
    "*loaded* is the saturating run (64 connections for 200 KB, 16 for 2 MB). Both aiogw targets keep the "
    "audit on, so the difference is the guards alone. Lines that look like secrets or personal data are left "
    "out of the bodies' source text, so no guard should refuse them (a 403 would show under errors).",
    "- *background load* is each core's busy time minus what the bench's own processes used; "
    "when it is high, another job shared the machine and the figures are noisier.",
]


def markdown(meta: dict[str, str], *, http_rows: Sequence[Row], stream_rows: Sequence[Row],
             latency_rows: Sequence[Row], paced_rows: Sequence[Row], idle_rows: Sequence[Row],
             rss: dict[str, float], audits: dict[str, dict[str, float]], configs: dict[str, str],
             paced: dict[str, tuple[int, int]]) -> str:
    t = Tables(http_rows, stream_rows, latency_rows, paced_rows, idle_rows)
    audit_lines = [[name, f"{int(a['rows']):,}", _f(a["mib"], 1)] for name, a in audits.items()]
    parts = [
        "## Load bench (`python -m bench.run`, `make bench`)",
        "",
        *(f"- **{k}:** {v}" for k, v in meta.items()),
        f"- **background load:** {background([*http_rows, *stream_rows, *latency_rows, *paced_rows])}",
        "",
        "### Verdict",
        "",
        *verdicts(t),
        "",
        "### Non-streaming (wrk, 64 connections)",
        "",
        http_table(t),
        "",
        "### Streams (50 chunks, 5 ms apart)",
        "",
        stream_table(t),
        "",
        "### Event-loop lag inside the gateway",
        "",
        lag_table(t),
        "",
        "Paced loads (wrk pausing before each request, so the gateway has idle time):",
        "",
        paced_table(t, paced),
        "",
        "### Guards: aiogw (guards on) against aiogw-audit (guards off)",
        "",
        guard_table(t),
        "",
        "### Audit databases after the run",
        "",
        _table(("target", "rows written", "size MiB (db + wal)"), audit_lines),
        "",
        "### Peak memory",
        "",
        _table(("process", "peak RSS (VmHWM) MiB"), [[name, _f(mb, 1)] for name, mb in rss.items()]),
        "",
        "### How to read this",
        "",
        *NOTES,
        "",
        "### aiogw-core's config in this run",
        "",
        "aiogw-audit drops the `[audit]`, `[metrics]` and `[log]` tables (guards stay off); aiogw drops all four "
        "(the defaults: audit, guards, metrics and the exchange log on).",
        "",
        "```toml",
        configs.get("aiogw-core", "").rstrip(),
        "```",
    ]
    return "\n".join(parts)
