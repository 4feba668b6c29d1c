"""Audit storage and queries: `python -m bench.audit_storage` (not part of `make bench`).

    python -m bench.audit_storage [--turns 200] [--records 1000000] [--only session|queries]

(a) bench.audit_session: a 200-turn coding-agent session through a real aiogw; the
    database's size (after a WAL checkpoint) against the request bytes sent.
(b) bench.audit_queries: a generated million-record audit database; `aiogw audit
    list` queries timed, then a prune of the oldest 10 days with a concurrent writer.

Writes the `bench.audit_storage` section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench import audit_queries, audit_session, results
from bench.targets import ROOT

LIST_TARGET_S = 0.2  # "well under a second": what an operator waits for at a prompt
WRITER_STALL_S = 0.25  # the gateway writer's flush interval: a longer wait grows its queue


def _meta(argv: list[str]) -> list[str]:
    rev = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True, cwd=ROOT)
    return [
        f"- **date:** {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M UTC}",
        f"- **command:** `python -m bench.audit_storage{' ' + ' '.join(argv) if argv else ''}`",
        f"- **software:** Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, aiogw at "
        f"{rev.stdout.strip()}; database on {_fs()}",
    ]


def _fs() -> str:
    out = subprocess.run(["df", "-T", tempfile.gettempdir()], capture_output=True, text=True).stdout.splitlines()
    return f"{tempfile.gettempdir()} ({out[-1].split()[1]})" if len(out) > 1 else tempfile.gettempdir()


def _ms(x: float) -> str:
    return f"{1000 * x:,.1f}"


def queries_markdown(gen: dict, listed: list[dict], analyzed: list[dict], prunes: list[dict]) -> list[str]:
    slow = [q for q in listed if q["median"] > LIST_TARGET_S]
    worst = max(listed, key=lambda q: q["median"])
    lines = [
        f"- **{'PASS' if not slow else 'MISS'}** list queries: the slowest, *{worst['label']}*, takes "
        f"{_ms(worst['median'])} ms (median of 5; target ≤ {_ms(LIST_TARGET_S)} ms each, \"well under a second\")"
        + (f"; over the target: {', '.join(q['label'] for q in slow)}." if slow else "."),
    ]
    pruned = max(prunes, key=lambda r: r["writer_during"]["max"])  # the worst of the runs, in detail
    wd, wc = pruned["writer_during"], pruned["writer_calm"]
    stalled = sum(r["over_flush"] for r in prunes)
    lines.append(
        f"- **{'MISS' if stalled else 'PASS'}** prune beside a writer ({len(prunes)} runs, each on a fresh copy): "
        f"{pruned['exchanges']:,} exchanges and {pruned['blobs']:,} blobs deleted in "
        f"{_range(prunes, lambda r: r['seconds'], 1)} s over {pruned['transactions']} transactions (longest "
        f"{_range(prunes, lambda r: 1000 * r['longest'], 0)} ms); the writer's slowest commit meanwhile took "
        f"{_range(prunes, lambda r: 1000 * r['writer_during']['max'], 0)} ms (before the prune: "
        f"{_ms(wc['max'])} ms; target: no commit over {_ms(WRITER_STALL_S)} ms, the gateway's flush interval)"
        + (f"; {stalled} of {sum(r['writer_during']['n'] for r in prunes)} commits were over it." if stalled else "."))
    lines += [
        "",
        f"Database: {gen['records']:,} exchanges over 30 days with a payload row each, {gen['blobs']:,} content "
        f"blobs; {gen['bytes'] / 2**20:,.0f} MiB, generated in {gen['seconds']:.0f} s.",
        "",
        "As the gateway leaves the database (no `ANALYZE` ever run):",
        "",
        *_query_table(listed),
        "",
        f"After one `ANALYZE` ({gen['analyze']:.1f} s), which aiogw never runs itself:",
        "",
        *_query_table(analyzed),
        "",
        "| prune run | seconds | transactions | longest ms | writer commits | writer p99 ms | writer max ms | "
        f"commits over {_ms(WRITER_STALL_S)} ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *(f"| {i} | {r['seconds']:.1f} | {r['transactions']} | {_ms(r['longest'])} | {r['writer_during']['n']} | "
          f"{_ms(r['writer_during']['p99'])} | {_ms(r['writer_during']['max'])} | {r['over_flush']} |"
          for i, r in enumerate(prunes, 1)),
        "",
        "| the run with the slowest writer commit | value |",
        "|---|---:|",
        f"| exchanges deleted (expected) | {pruned['exchanges']:,} ({pruned['expected']:,}); left before the bound: "
        f"{pruned['left']} |",
        f"| blobs deleted | {pruned['blobs']:,} |",
        f"| total time | {pruned['seconds']:.2f} s |",
        f"| transactions; p50 / p99 / longest ms | {pruned['transactions']}; {_ms(pruned['tx_p50'])} / "
        f"{_ms(pruned['tx_p99'])} / {_ms(pruned['longest'])} |",
        f"| writer commits before the prune: n; p50 / p99 / max ms | {wc['n']}; {_ms(wc['p50'])} / {_ms(wc['p99'])} / "
        f"{_ms(wc['max'])} |",
        f"| writer commits during the prune: n; p50 / p99 / max ms | {wd['n']}; {_ms(wd['p50'])} / {_ms(wd['p99'])} / "
        f"{_ms(wd['max'])} |",
        f"| writer commits during the prune over {_ms(WRITER_STALL_S)} ms | {pruned['over_flush']} |",
        f"| prune transactions the slowest writer commit waited through | {pruned['slowest_overlapped']} |",
        f"| pause between two prune transactions, p50 | {1e6 * pruned['gap_p50']:,.0f} µs |",
    ]
    return lines


def _range(runs: list[dict], value: Callable[[dict], float], digits: int) -> str:
    lo, hi = min(map(value, runs)), max(map(value, runs))
    return f"{lo:,.{digits}f}" if round(lo, digits) == round(hi, digits) else f"{lo:,.{digits}f}–{hi:,.{digits}f}"


def _query_table(listed: list[dict]) -> list[str]:
    return [
        "| `aiogw audit list` flags | rows | first call ms | median ms | plan |",
        "|---|---:|---:|---:|---|",
        *(f"| {q['label']}: `{q['flags'] or '(none)'}` | {q['rows']} | {_ms(q['first'])} | {_ms(q['median'])} | "
          f"{q['plan']} |" for q in listed),
    ]


NOTES = [
    "- (a) drives a real `aiogw` (defaults: audit and guards on, `bench.gateway`) with `aiohttp`, sending each turn "
    "as Claude Code does (`POST …/v1/messages?beta=true`, streaming, its headers, one `X-Claude-Code-Session-Id`). "
    "The fake upstream's answers are not fed back into the history: the history is the session's own tool calls "
    "and results, built from the Python standard library's sources (`bench/agent_text.py`). Sizes are bytes "
    "on disk of `state.db` and `state.db-wal` after `PRAGMA wal_checkpoint(TRUNCATE)`; the state database also "
    "holds the gateway key table (a few KB).",
    "- (b) writes rows straight into aiogw's schema (`aiogw.store.sqlite.audit_tables.SCHEMA`, `aiogw.audit.record.COLUMNS`); "
    "the verdict is on the database as the gateway leaves it, without planner statistics. The queries are `aiogw.store.sqlite.audit_read.list_rows` with `aiogw audit list`'s default "
    "limit (50), each on a fresh connection; *first call* is the first of five on that connection (the file is "
    "in the page cache: the generator just wrote it). The plan is SQLite's `EXPLAIN QUERY PLAN` for the same "
    "WHERE clause.",
    "- The prune is `aiogw.store.sqlite.audit_read.prune` (batches of 2,000 rows, one transaction each) on a connection "
    "whose `with` blocks are timed. The writer is a separate process committing 20 exchange and payload rows every "
    "50 ms (400 records/s) with the gateway's pragmas (WAL, synchronous=NORMAL, busy_timeout 10 s), each commit "
    "timed from BEGIN to the end of COMMIT.",
]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m bench.audit_storage", description=__doc__.splitlines()[0])
    p.add_argument("--turns", type=int, default=audit_session.TURNS)
    p.add_argument("--records", type=int, default=audit_queries.RECORDS)
    p.add_argument("--only", choices=("session", "queries"))
    p.add_argument("--prunes", type=int, default=3, help="prunes, each on a fresh copy (default 3)")
    args = p.parse_args(argv)
    parts = ["## Audit storage and queries (`python -m bench.audit_storage`)", "", *_meta(argv), ""]
    with tempfile.TemporaryDirectory(prefix="aiogw-audit-bench-") as tmp_name:
        tmp = Path(tmp_name)
        if args.only != "queries":
            print(f"(a) a {args.turns}-turn session through aiogw ...", flush=True)
            (tmp / "session").mkdir()
            session = audit_session.run(tmp / "session", args.turns)
            parts += ["### (a) One agent session's storage", "", *audit_session.markdown(session), ""]
        if args.only != "session":
            db = tmp / "audit.db"
            print(f"(b) generating {args.records:,} records ...", flush=True)
            gen = audit_queries.generate(db, args.records, max(1, args.records // 5))
            print(f"    {gen['bytes'] / 2**20:,.0f} MiB in {gen['seconds']:.0f} s; timing queries ...", flush=True)
            listed = audit_queries.time_queries(db, gen["end"])
            pruned = []
            for i in range(args.prunes):
                # Each prune on a fresh copy of the database as generated: prune deletes.
                print(f"    prune {i + 1} of {args.prunes}: the oldest 10 days, beside a writer ...", flush=True)
                work = tmp / "prune.db"
                shutil.copyfile(db, work)
                pruned.append(audit_queries.prune_with_writer(work, gen["first"]))
                work.unlink()
            gen["analyze"] = audit_queries.analyze(db)
            analyzed = audit_queries.time_queries(db, gen["end"])
            parts += [f"### (b) {args.records:,} records: list and prune", "",
                      *queries_markdown(gen, listed, analyzed, pruned), ""]
    parts += ["### How to read this", "", *NOTES]
    text = "\n".join(parts)
    print(text)
    if args.only is None:
        results.write_section("bench.audit_storage", text)
        print(f"\nwritten to {results.RESULTS.relative_to(ROOT)} (section bench.audit_storage)")
    else:
        print("\n(--only: RESULTS.md left as it was)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
