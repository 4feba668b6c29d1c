"""`aiogw usage`: tokens and cost from the audit data, grouped as asked.

Input counts every prompt token (base input plus cache reads and writes); the cost is
what the price table gave each exchange when it ended. Exchanges of models the table
did not know were charged the default price and are counted in UNPRICED.
"""

from __future__ import annotations

import argparse

from aiogw.audit.cli import on_store, when
from aiogw.store.base import USAGE_GROUPS
from aiogw.untrusted import visible

HEADER = ("REQUESTS", "REFUSED", "INPUT", "CACHE READ", "CACHE WRITE", "OUTPUT", "COST USD", "UNPRICED")


def render(rows: list[tuple], by: str) -> str:
    if not rows:
        return "no exchanges match"
    total = ("TOTAL", *(sum(r[i] or 0 for r in rows) for i in range(1, 9)))
    cells = [(by.upper(), *HEADER)] + [_cells(r) for r in (*rows, total)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(cells[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))) for row in cells]
    lines.insert(len(lines) - 1, "-" * len(lines[0]))
    return "\n".join(lines)


def _cells(row: tuple) -> tuple[str, ...]:
    grp, requests, refused, inp, read, write, out, cost, unpriced = row
    return (visible(str(grp)), f"{requests:,}", f"{refused or 0:,}", f"{inp or 0:,}", f"{read or 0:,}", f"{write or 0:,}",
            f"{out or 0:,}", f"{cost or 0:.6f}", f"{unpriced or 0:,}")


def usage_cmd(args: argparse.Namespace) -> int:
    since, until = when(args.since), when(args.until)
    rows = on_store(args, lambda store: store.usage_rows(args.by, args.user, since, until))
    print(render(rows, args.by))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("usage", help="tokens and cost from the audit data, by user, model, route or day")
    p.add_argument("--user", help="only this user")
    p.add_argument("--since", help="a date (2026-11-01), a time (2026-11-01T12:00) or an age (7d, 12h)")
    p.add_argument("--until", help="the same forms as --since")
    p.add_argument("--by", choices=sorted(USAGE_GROUPS), default="user", help="how rows are grouped (default: user)")
    p.add_argument("--config", help="TOML config file (for the state path; default: $AIOGW_CONFIG)")
    p.set_defaults(run=usage_cmd)
