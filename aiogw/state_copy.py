"""`aiogw state copy`: a deployment's state moved to another database, and resumable.

What moves: every audit record (its row, payloads and the content parts it refers to,
byte for byte, each part with its last_seen), the gateway keys (same ids and digests,
created and revoked times) and the limits' counters (every day's spend, the rate
windows). Content no record refers to is left behind: the next prune would collect it.

Records go in id order, in batches of one transaction each, so what a target holds of
a copy is always a prefix of the source. Resuming is starting again: the target's newest
record tells where the last run stopped, and the copy goes on after it. If that record
is not in the source, the target is another deployment's (or a gateway writes to it)
and the copy is refused before anything is written. Keys and counters are copied again
on every run (they are few); a record already there is kept, never stored twice.

The target is made ready when it is new: a SQLite file is made whole, an empty
PostgreSQL database gets the tables `aiogw migrate` makes. A target with another schema
is refused, as a gateway would refuse it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aiogw import cli_state, running
from aiogw.store import make_store
from aiogw.store.base import Filters, KeyRecord, SchemaError, SpendRow, StateUnavailable, Store

# A batch starts small and doubles while its bytes stay under a quarter of BATCH_BYTES:
# payloads run from a few hundred bytes to the gateway's max body, and a batch is in
# memory twice (read, and on its way to the target) while the next one is read.
FIRST_BATCH = 64
MAX_BATCH = 2000
BATCH_BYTES = 16 * 1024 * 1024
# The parts copied this run, not asked for again (a conversation's parts are referred to
# by every later turn). Cleared when full: ~100 bytes a hash, so ~20 MB at most; a part
# asked for again is written again, harmlessly (the target keeps its data).
HAVE_MAX = 200_000
PROGRESS_EVERY = 5.0  # seconds between two progress lines on stderr

URL_FORMS = "sqlite:///ABS/PATH.db, sqlite:REL/PATH.db or postgresql://USER@HOST:PORT/DATABASE"


class CopyRefused(Exception):
    """The copy would mix two deployments, or lose records: the message says why."""


@dataclass(frozen=True, slots=True)
class Side:
    """One end of a copy, as its URL names it: a SQLite file or a PostgreSQL database."""

    flag: str  # --from or --to, for messages
    path: Path | None  # SQLite
    url: str | None  # PostgreSQL, without a password
    password: str | None = field(default=None, repr=False)

    def store(self) -> Store:
        return make_store(self.path or Path(), self.url, self.password)


def side(flag: str, text: str, password_env: str | None, env: Mapping[str, str]) -> Side:
    """The end a URL names; ValueError, in one line, for what cannot be used. The
    password comes from the variable `password_env` names, else as libpq's tools find
    it (asyncpg reads PGPASSWORD and ~/.pgpass): never from the URL, which `ps` shows."""
    from aiogw.store.postgres.connect import parse  # asyncpg is imported only for PostgreSQL

    if text.startswith(("postgresql://", "postgres://")):
        if parse(text).password is not None:
            raise ValueError(f"{flag}: the URL holds a password, which every user of this machine can read in `ps`: "
                             f"remove it and put it in a variable named by {flag}-password-env VAR (or in "
                             "PGPASSWORD, or ~/.pgpass)")
        password = None
        if password_env is not None:
            password = env.get(password_env) or None
            if password is None:
                raise ValueError(f"{flag}-password-env: the variable {password_env} is unset or empty")
        return Side(flag, None, text, password)
    if password_env is not None:
        raise ValueError(f"{flag}-password-env: a SQLite database takes no password ({flag} {text})")
    if text.startswith("sqlite:"):
        rest = text[len("sqlite:"):]
        if rest.startswith("///"):
            rest = rest[2:]  # sqlite:///abs -> /abs
        elif rest.startswith("//"):
            raise ValueError(f"{flag}: {text} names a host, which SQLite has none of: write {URL_FORMS}")
        if rest and not rest.endswith("/"):
            return Side(flag, Path(rest), None)
    raise ValueError(f"{flag}: cannot read {text!r} as a state database: write {URL_FORMS}")


@dataclass(slots=True)
class Tally:
    """What a run did, for its progress lines and its summary."""

    source: str
    target: str
    resumed_after: str | None = None
    records: int = 0
    parts: int = 0
    keys: int = 0
    revoked: int = 0
    spend: int = 0
    windows: int = 0
    last: str | None = None  # the newest id the target holds of the source
    stopped: bool = False  # --max-records reached
    began: float = field(default_factory=time.monotonic)

    def rate(self) -> float:
        return self.records / max(time.monotonic() - self.began, 1e-9)

    def summary(self) -> str:
        took = time.monotonic() - self.began
        resumed = f"resumed after {self.resumed_after}; " if self.resumed_after else ""
        keys = f"{self.keys} keys ({self.revoked} revoked)"
        head = (f"{resumed}copied {self.records:,} records ({self.rate():,.0f}/s) and {self.parts:,} content parts "
                f"in {took:.1f} s, {keys}, {self.spend} spend rows, {self.windows} rate windows, "
                f"from {self.source} to {self.target}")
        if self.stopped:
            return head + "; stopped at --max-records: run the same command again to copy the rest"
        if self.last is None:
            return head + "; the source holds no records"
        return head + f"; the target holds every record of the source up to {self.last}"


async def copy(source: Side, target: Side, *, max_records: int | None = None,
               say: Callable[[str], None] | None = None, every: float = PROGRESS_EVERY) -> Tally:
    """Copy what `source` holds into `target` (see the module's doc); the run's tally.
    `say` takes the progress lines (stderr by default), one every `every` seconds."""
    say = say or _stderr
    await asyncio.to_thread(_preflight, source, target)  # a few stat() and small files: off the loop
    src = await _open_source(source)
    try:
        dst = await _open_target(target, say)
        try:
            tally = Tally(src.where, dst.where)
            await _copy(src, dst, source, target, tally, max_records, say, every)
            return tally
        finally:
            await dst.close()
    finally:
        await src.close()


async def _copy(src: Store, dst: Store, source: Side, target: Side, tally: Tally, max_records: int | None,
                say: Callable[[str], None], every: float) -> None:
    # Everything that refuses is read before anything is written.
    with _blame(dst, target):
        newest = await dst.list_rows(Filters(), 1)
        have_keys = await dst.load_keys()
    with _blame(src, source):
        after = newest[0]["id"] if newest else None
        if after is not None and not await src.exists(after):
            raise CopyRefused(_another(dst.where, newest[0]))
        keys = await src.load_keys()
        spend, windows = await src.load_limits(None)
    create, revoke, extra = _key_plan(keys, have_keys, dst.where)
    if extra:
        say(f"the target holds {len(extra)} keys the source does not ({', '.join(sorted(extra)[:5])}"
            f"{', ...' if len(extra) > 5 else ''}): kept")
    with _blame(dst, target):
        for digest, key in create:
            await dst.create_key(key, digest)
        for key in revoke:
            assert key.revoked_at is not None
            await dst.revoke_key(key.id, key.revoked_at)
        await dst.save_limits(_added(spend, (await dst.load_limits(None))[0]), windows)
    tally.keys, tally.revoked = len(keys), sum(k.revoked_at is not None for k in keys.values())
    tally.spend, tally.windows = len(spend), len(windows)
    tally.resumed_after = tally.last = after
    await _records(src, dst, source, target, tally, after, max_records, say, every)


def _added(spend: list[SpendRow], have: list[SpendRow]) -> list[SpendRow]:
    """What to add to the target's spend so each user's day equals the source's (the
    stores add spend rows: a copy run again adds nothing)."""
    held = {(row.user, row.day): row.usd for row in have}
    out = []
    for row in spend:
        added = row.usd - held.get((row.user, row.day), 0.0)
        if added:
            out.append(SpendRow(row.user, row.day, added))
    return out


async def _records(src: Store, dst: Store, source: Side, target: Side, tally: Tally, after: str | None,
                   max_records: int | None, say: Callable[[str], None], every: float) -> None:
    """The records after `after`, a batch at a time; the next batch is read while the
    last is written."""
    have: set[bytes] = set()
    limit = FIRST_BATCH
    left = max_records

    def read(after: str | None) -> asyncio.Task:
        n = limit if left is None else min(limit, left)
        return asyncio.create_task(src.records_after(after, n, have), name="aiogw-copy-read")

    pending: asyncio.Task | None = read(after)
    shown = time.monotonic()
    try:
        while pending is not None:
            with _blame(src, source):
                records, parts = await pending
            pending = None
            if not records:
                return
            size = sum(r.size for r in records) + sum(len(p.data) for p in parts)
            if len(have) + len(parts) > HAVE_MAX:
                have.clear()
            have.update(p.hash for p in parts)  # before the next read: these are being written now
            if size > BATCH_BYTES:
                limit = max(1, limit // 2)
            elif size < BATCH_BYTES // 4:
                limit = min(MAX_BATCH, limit * 2)
            if left is not None:
                left -= len(records)
            if left is None or left > 0:
                pending = read(records[-1].id)
            with _blame(dst, target):
                await dst.write_copied(records, parts)
            tally.records += len(records)
            tally.parts += len(parts)
            tally.last = records[-1].id
            if time.monotonic() - shown >= every:
                shown = time.monotonic()
                say(f"copied {tally.records:,} records ({tally.rate():,.0f}/s), up to {_utc(records[-1].started)} UTC")
            if left == 0:
                tally.stopped = True
                return
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pending


def _key_plan(keys: dict[bytes, KeyRecord], have: dict[bytes, KeyRecord],
              where: str) -> tuple[list[tuple[bytes, KeyRecord]], list[KeyRecord], list[str]]:
    """(keys to create, keys to revoke, ids of the target's keys the source lacks). A
    key of the same id with another digest or user, or a digest under another id, is
    another deployment's: refused."""
    by_id = {k.id: (digest, k) for digest, k in have.items()}
    create, revoke = [], []
    for digest, key in sorted(keys.items(), key=lambda item: (item[1].created_at, item[1].id)):
        there = by_id.get(key.id)
        if there is None:
            if digest in have:
                raise CopyRefused(f"the target {where} holds the key of {key.id} under another id, "
                                  f"{have[digest].id}: it is another deployment's; copy into an empty database")
            create.append((digest, key))
            if key.revoked_at is not None:
                revoke.append(key)
        elif there[0] != digest or there[1].user != key.user:
            raise CopyRefused(f"the target {where} holds another key of id {key.id}: it is another deployment's; "
                              "copy into an empty database")
        elif key.revoked_at is not None and there[1].revoked_at is None:
            revoke.append(key)
    ids = {k.id for k in keys.values()}
    return create, revoke, [k.id for k in have.values() if k.id not in ids]


def _another(where: str, row: dict) -> str:
    return (f"the target {where} holds records the source does not: its newest, {row['id']} of "
            f"{_utc(row['started'])} UTC, is not in the source. It is another deployment's, a gateway writes to it, "
            "or the source was pruned since the copy began; copy into an empty database (a copy resumes only "
            "into the database it began in)")


async def _open_source(source: Side) -> Store:
    """The source opened; never made nor migrated (a SQLite file must be there: `_preflight`)."""
    store = source.store()
    with _blame(store, source):
        async with _closed_unless_open(store):
            if source.url is not None:
                await store.connect()
                if await store.schema_version() is None:
                    raise StateUnavailable(f"{store.where} holds no aiogw state (it has no aiogw tables): is it "
                                           "the right database?")
            await store.open()
    return store


async def _open_target(target: Side, say: Callable[[str], None]) -> Store:
    """The target opened; made ready when new (see the module's doc)."""
    store = target.store()
    if target.path is not None and not target.path.exists():
        say(f"making a new state database at {target.path}")
    with _blame(store, target):
        async with _closed_unless_open(store):
            if target.url is not None:
                await store.connect()
                if await store.schema_version() is None:
                    for step in await store.migrate():
                        say(f"{store.where}: {step}")
            await store.open()
    return store


@contextlib.asynccontextmanager
async def _closed_unless_open(store: Store) -> AsyncIterator[None]:
    try:
        yield
    except BaseException:
        await store.close()
        raise


@contextlib.contextmanager
def _blame(store: Store, end: Side) -> Iterator[None]:
    """What fails in the block is said as the fault of this end (--from or --to), in one
    line: the store's own failures, the driver's errors the store names."""
    try:
        yield
    except (StateUnavailable, SchemaError) as exc:
        raise type(exc)(f"{end.flag}: {exc}") from None
    except Exception as exc:
        said = store.failure(exc)
        if said is None:
            raise
        raise StateUnavailable(f"{end.flag}: {said}") from None


def _preflight(source: Side, target: Side) -> None:
    """Refused before anything is opened: a SQLite source that is not there, one
    database at both ends, and a SQLite database a gateway of this user announced
    (aiogw.running): a record it writes during the copy may land behind where the copy
    has got to, and be missed."""
    if source.path is not None and not source.path.is_file():
        raise StateUnavailable(f"{source.flag}: no state database at {source.path}")
    if source.path is not None and target.path is not None:
        same = running.same_database(source.path, target.path)
    else:
        same = source.url is not None and source.url == target.url
    if same:
        raise ValueError("--from and --to name the same database")
    gateways = running.running()
    for end in (source, target):
        for gateway in gateways:
            if end.path is not None and running.same_database(gateway.state_path, end.path):
                raise CopyRefused(f"{end.flag}: the gateway of pid {gateway.pid} uses {end.path}: stop it first")


def _utc(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))


def _stderr(line: str) -> None:
    print(f"aiogw: {line}", file=sys.stderr, flush=True)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("state", help="move the state to another database")
    s = p.add_subparsers(dest="state_command", required=True).add_parser(
        "copy", help="copy a deployment's state into another database, resumably",
        description="Copy a deployment's state into another database, SQLite or PostgreSQL: the audit records with "
        "their payloads and content, the keys (ids, hashes, revocations), spend and rate windows. Stop the gateway "
        "first. Interrupted, the same command goes on after the target's newest record; no record is stored twice. "
        "A new target is made ready (a SQLite file, or `aiogw migrate`'s tables in an empty PostgreSQL database); a "
        "target holding records the source lacks is refused. No password in a URL: name a variable holding it "
        "(--from-password-env, --to-password-env), or use PGPASSWORD or ~/.pgpass.")
    s.add_argument("--from", dest="source", required=True, metavar="URL", help=f"the database to copy: {URL_FORMS}")
    s.add_argument("--to", dest="target", required=True, metavar="URL", help="the database to copy into")
    s.add_argument("--from-password-env", metavar="VAR", help="the variable holding --from's password")
    s.add_argument("--to-password-env", metavar="VAR", help="the variable holding --to's password")
    s.add_argument("--max-records", type=_count, metavar="N", help="stop after N records (run again to go on)")
    s.set_defaults(run=copy_cmd)


def copy_cmd(args: argparse.Namespace) -> int:
    source = side("--from", args.source, args.from_password_env, os.environ)
    target = side("--to", args.target, args.to_password_env, os.environ)
    print(f"aiogw: copying {source.path or source.url} to {target.path or target.url}", file=sys.stderr)
    try:
        with cli_state.quiet_driver():
            tally = asyncio.run(copy(source, target, max_records=args.max_records))
    except CopyRefused as exc:
        print(f"aiogw: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("aiogw: interrupted; what was copied stays, and the same command goes on from there", file=sys.stderr)
        return 130
    print(tally.summary())
    return 0


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1, got {text!r}")
    return int(text)
