"""`aiogw audit ...`: the audit trail for people, as tables, text and JSON lines."""

from __future__ import annotations

import argparse
import re
import sys
import time
from datetime import UTC, datetime

import orjson

from aiogw import config as config_mod
from aiogw.audit import queries, render

_AGE = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def when(text: str | None) -> float | None:
    """'2026-11-01', '2026-11-01T12:00' (UTC unless an offset is given) or an age '7d'."""
    if text is None:
        return None
    age = _AGE.match(text.strip())
    if age:
        return time.time() - float(age.group(1)) * _UNITS[age.group(2)]
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"cannot read the time {text!r}: use 2026-11-01, 2026-11-01T12:00 or an age like 7d") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _filters(args: argparse.Namespace) -> queries.Filters:
    return queries.Filters(
        user=args.user,
        since=when(args.since),
        until=when(args.until),
        route=args.route,
        model=args.model,
        status=args.status,
        outcome=args.outcome,
        findings=args.findings,
    )


def _conn(args: argparse.Namespace):
    path = config_mod.load(args.config).state_path
    print(f"state: {path}", file=sys.stderr)  # which database answered, for a user in the wrong folder
    return queries.connect(path)


def list_cmd(args: argparse.Namespace) -> int:
    rows = queries.list_rows(_conn(args), _filters(args), args.limit)
    print(render.table(rows) if rows else "no exchanges match")
    return 0


def show_cmd(args: argparse.Namespace) -> int:
    record = queries.show(_conn(args), args.id)
    if record is None:
        print(f"aiogw: no exchange {args.id!r}; see `aiogw audit list`", file=sys.stderr)
        return 1
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(record, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        print(render.exchange(record))
    return 0


def conversation_cmd(args: argparse.Namespace) -> int:
    conn = _conn(args)
    conversation = queries.conversation_of(conn, args.id)
    if conversation is None:
        print(f"aiogw: no conversation or exchange {args.id!r}", file=sys.stderr)
        return 1
    rows = queries.list_rows(conn, queries.Filters(conversation=conversation), limit=1_000_000, oldest_first=True)
    print(f"conversation {conversation}: {len(rows)} exchanges")
    if args.full:
        for row in rows:
            print("\n" + "=" * 80)
            print(render.exchange(queries.show(conn, row["id"])))
    else:
        print(render.table(rows))
    return 0


def export_cmd(args: argparse.Namespace) -> int:
    out = sys.stdout.buffer
    for record in queries.export(_conn(args), _filters(args)):
        out.write(orjson.dumps(record) + b"\n")
    return 0


def prune_cmd(args: argparse.Namespace) -> int:
    before = when(args.before)
    exchanges, blobs = queries.prune(_conn(args), before)
    print(f"deleted {exchanges} exchanges and {blobs} stored contents from before {render.utc(before)} UTC")
    return 0


def migrate_cmd(args: argparse.Namespace) -> int:
    conn = _conn(args)
    copied = queries.migrate(conn)
    if not copied:
        print("nothing to do: the audit tables are already as this aiogw makes them")
        return 0
    for table, rows in copied.items():
        print(f"remade {table} as a rowid table: {rows} rows copied")
    if args.vacuum:
        conn.execute("VACUUM")
        print("vacuumed: the file is rewritten without the old tables' pages")
    else:
        print("the old tables' pages are free for new records; `--vacuum` gives them back to the disk")
    return 0
