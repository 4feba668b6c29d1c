"""`aiogw audit ...`: the audit trail for people, as tables, text and JSON lines."""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import orjson

from aiogw import cli_state
from aiogw import config as config_mod
from aiogw.audit import render
from aiogw.store.base import NOT_SHOWN, Filters, Store
from aiogw.untrusted import json_visible, visible

_AGE = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
T = TypeVar("T")


def when(text: str | None) -> float | None:
    """'2026-11-01', '2026-11-01T12:00' (UTC unless an offset is given), an age '7d', or
    'now'."""
    if text is None:
        return None
    if text.strip() == "now":
        return time.time()
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


def _filters(args: argparse.Namespace) -> Filters:
    since, until = when(args.since), when(args.until)
    if since is not None and until is not None and since > until:
        raise ValueError(
            f"--since {args.since} is after --until {args.until}, so nothing can match: an age counts back from now "
            "(--since 7d --until 1d is the week before the last day)"
        )
    return Filters(
        user=args.user,
        since=since,
        until=until,
        route=args.route,
        model=args.model,
        status=args.status,
        outcome=args.outcome,
        findings=args.findings,
    )


def on_store(args: argparse.Namespace, work: Callable[[Store], Awaitable[T]]) -> T:
    """`work(store)` on the state store the command's --config names, said on stderr."""
    cfg = config_mod.load(args.config)
    print(f"state: {cli_state.where(cfg)}", file=sys.stderr)  # which database answered, for a user in the wrong folder
    # No --config: the built-in config's path, while the gateway may run with another.
    hint = "" if args.config is not None else (
        f" (no --config given: pass the gateway's config file, or set {config_mod.CONFIG_ENV} to it)")
    return cli_state.run(cfg, work, hint=hint)


def list_cmd(args: argparse.Namespace) -> int:
    f = _filters(args)
    rows = on_store(args, lambda store: store.list_rows(f, args.limit + 1))  # one more: are there others?
    print(render.table(rows[: args.limit]) if rows else "no exchanges match")
    if len(rows) > args.limit:
        print(f"(the newest {args.limit} shown; more match: --limit N, or narrow with --since/--until)")
    return 0


def show_cmd(args: argparse.Namespace) -> int:
    record = on_store(args, lambda store: store.show(args.id))
    if record is None:
        print(f"aiogw: no exchange {visible(repr(args.id))}; see `aiogw audit list`", file=sys.stderr)
        return 1
    if args.json:
        sys.stdout.buffer.write(json_bytes(record, indent=True) + b"\n")
    else:
        print(render.exchange(record))
    return 0


def conversation_cmd(args: argparse.Namespace) -> int:
    return on_store(args, lambda store: _conversation(store, args))


async def _conversation(store: Store, args: argparse.Namespace) -> int:
    found = await store.conversations_of(args.id)
    if not found:
        if await store.exists(args.id):
            print(f"aiogw: exchange {visible(repr(args.id))} belongs to no conversation (no session id, and no "
                  f"messages were read from its request); `aiogw audit show {visible(args.id)}` shows it",
                  file=sys.stderr)
        else:
            print(f"aiogw: no conversation or exchange {visible(repr(args.id))}", file=sys.stderr)
        return 1
    for n, (conversation, user) in enumerate(found):
        rows = await store.conversation(conversation, user)
        print(("\n" if n else "") + f"conversation {visible(str(conversation))} of {visible(user or '-')}: "
              f"{_count(len(rows), 'exchange')}")
        if args.full:
            before = None  # each turn resends the last one's history: print what is new
            for row in rows:
                record = await store.show(row["id"])
                print("\n" + "=" * 80)
                print(render.exchange(record, before))
                request = record.get("request") if record is not None else None
                before = request if isinstance(request, dict) else before
        else:
            print(render.table(rows))
    return 0


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def export_cmd(args: argparse.Namespace) -> int:
    f = _filters(args)

    async def export(store: Store) -> int:
        out = sys.stdout.buffer
        async for record in store.export(f):
            out.write(json_bytes(record) + b"\n")
        return 0

    return on_store(args, export)


def json_bytes(record: dict, indent: bool = False) -> bytes:
    """A record as JSON, safe on a terminal, that any JSON tool reads back. A field
    orjson cannot write (nested past its 255 levels, an integer past 64 bits) is written
    as {"aiogw_not_shown": why, "depth", "bytes", "json": its JSON text as a string}:
    every record is written, whole, and every line stays within what JSON tools read."""
    option = orjson.OPT_INDENT_2 if indent else 0
    try:
        data = orjson.dumps(record, option=option)
    except orjson.JSONEncodeError:
        data = orjson.dumps({key: _writable(value) for key, value in record.items()}, option=option)
    return json_visible(data)


def _writable(value: object) -> object:
    try:
        orjson.dumps([value])  # as deep as it sits in the record
    except orjson.JSONEncodeError as exc:
        why, text, depth = render.not_shown(value, exc)
        return {NOT_SHOWN: why, "depth": depth, "bytes": len(text.encode("utf-8", "replace")), "json": text}
    return value


def prune_cmd(args: argparse.Namespace) -> int:
    before = when(args.before)
    assert before is not None
    if before > time.time() + 1:  # `now` is now
        # A mistyped year (2062 for 2026) would delete the whole audit trail.
        print(
            f"aiogw: --before {args.before} is in the future: it would delete every record. "
            "To delete every record, say --before now.",
            file=sys.stderr,
        )
        return 2
    if args.dry_run:
        exchanges, blobs = on_store(args, lambda store: store.prunable(before))
        print(f"would delete {exchanges} exchanges and up to {blobs} stored contents from before {render.utc(before)} UTC")
        return 0
    exchanges, blobs = on_store(args, lambda store: store.prune(before))
    print(f"deleted {exchanges} exchanges and {blobs} stored contents from before {render.utc(before)} UTC")
    return 0
