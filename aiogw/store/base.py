"""The state interface: what the gateway and its commands ask of a database.

Two implementations answer it: `store.sqlite` (the embedded default: one file, no
server) and `store.postgres` (a server many gateways share, on asyncpg). Everything
is async: the gateway awaits it off the request path (the audit writer, the limits'
flush, the key reload), the commands under `asyncio.run`.

The contract a caller may rely on, on both stores:

- `open()` connects and checks the schema: it raises `SchemaError` (naming
  `aiogw migrate`) when the database's schema is older or newer than this aiogw's,
  and `StateUnavailable` (naming what failed, never a password) when it cannot
  connect. `connect()` only connects (for `aiogw migrate`). `migrate()` is the only
  thing that changes a schema (SQLite alone makes a new, empty file whole at open:
  the embedded default needs no step first).
- `write_batch` is one transaction: all of it or nothing. A record already stored
  (same id) is left as it is, so a batch retried, or replayed from a spool, stores
  each record once. It returns the parts it wrote (hash -> (data, newest use)).
  Errors in `transient` are the database's own trouble (unreachable, locked, a
  restart): retry the same batch. Any other error is about a record: the writer
  stores the batch one record at a time to find it.
- Reads return plain values: rows as dicts by column name (`audit.record.COLUMNS`),
  `show` the row with `request`, `response`, `raw_stream`, `findings_detail` (or
  `payloads` None under the metadata policy), as `audit.render` prints them.
- `key_signature()` is synchronous and cheap (no I/O on the request path): it changes
  when a key was made or revoked anywhere, and `load_keys()` then reads them again.
- Copying a deployment (`aiogw state copy`) reads and writes records as stored, byte
  for byte: `records_after` gives up to `limit` records after an id, in id order, each
  a `Record` with the row and payload `write_batch` took (its `parts` empty), and
  beside them the content parts they refer to as `StoredPart`s (squeezed data, size,
  last_seen), but none whose hash is in `have` (the caller copied it already). A part
  no record refers to is never given. `write_copied` stores them in one transaction:
  a record already stored is kept, a part already stored keeps its data and takes the
  later last_seen.
- `failure(exc)` is what a command says, in one line, of an error this store raised
  after `open()` (the server went away, refused the statement); None when it is not
  the store's to say (SQLite's errors are said by `aiogw.cli`; a bug keeps its
  traceback).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Container, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

# The key of what stands, in a record read back, for a part that cannot be shown.
NOT_SHOWN = "aiogw_not_shown"

# The schema version this aiogw reads and writes, on both stores. `aiogw migrate`
# brings a database up to it; a gateway refuses any other.
SCHEMA_VERSION = 1


class StateUnavailable(Exception):
    """The database cannot be reached or opened; the message says what to check."""


class SchemaError(Exception):
    """The database's schema is not the one this aiogw uses; the message says what to run."""


@dataclass(frozen=True, slots=True)
class StoredPart:
    """A content part as a store keeps it: what `aiogw state copy` moves unchanged."""

    hash: bytes
    data: bytes  # as stored: `audit.record.squeeze`d
    size: int  # its bytes before squeezing
    last_seen: float  # when a record last stored it (prune reads it)


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    user: str
    created_at: float
    revoked_at: float | None


@dataclass(frozen=True, slots=True)
class Filters:
    """What `aiogw audit list` and `export` select; every field narrows."""

    user: str | None = None
    since: float | None = None  # unix seconds
    until: float | None = None
    route: str | None = None
    model: str | None = None  # exact, or a glob: claude-*
    status: int | None = None
    outcome: str | None = None
    findings: bool = False
    conversation: str | None = None


# `aiogw usage --by ...`: the groups, in the order the command lists them.
USAGE_GROUPS = ("user", "model", "route", "day")


@dataclass(frozen=True, slots=True)
class SpendRow:
    user: str
    day: str  # YYYY-MM-DD, UTC
    usd: float


@dataclass(frozen=True, slots=True)
class WindowRow:
    """A user's rate windows (token buckets), as `limits.buckets.Bucket` keeps them."""

    user: str
    rpm_level: float | None
    rpm_at: float | None
    tpm_level: float | None
    tpm_at: float | None


class Store(Protocol):
    kind: str  # "sqlite" or "postgresql"
    where: str  # the file, or the URL without its password: for messages and logs
    transient: tuple[type[BaseException], ...]

    def failure(self, exc: BaseException) -> str | None: ...  # a command's line for it, or None

    async def connect(self) -> None: ...
    async def open(self) -> None: ...  # connect, then check the schema
    async def close(self) -> None: ...
    # Limits kept in one gateway's memory are right only while no other gateway serves
    # the same users: a lock on the database, held until close. A gateway with limits in
    # its memory holds it alone; gateways sharing them in Redis (`shared`) hold it
    # together. False: a gateway of the other kind holds it.
    async def claim_limits(self, shared: bool) -> bool: ...

    # The schema.
    async def schema_version(self) -> int | None: ...  # None: an empty database
    async def migrate(self) -> list[str]: ...  # the steps applied, in order (empty: up to date)

    # Gateway keys (only their SHA-256 is stored).
    async def create_key(self, record: KeyRecord, digest: bytes) -> None: ...
    async def revoke_key(self, key_id: str, at: float) -> bool: ...  # False: no such live key
    async def list_keys(self) -> list[KeyRecord]: ...  # oldest first
    async def load_keys(self) -> dict[bytes, KeyRecord]: ...  # by digest, revoked ones too
    def key_signature(self) -> object: ...

    # The audit trail.
    async def write_batch(self, records: list[Any], known: Mapping[bytes, int]) -> dict[bytes, tuple]: ...
    async def list_rows(self, f: Filters, limit: int, oldest_first: bool = False) -> list[dict]: ...
    async def show(self, ident: str) -> dict | None: ...
    async def exists(self, ident: str) -> bool: ...
    async def conversations_of(self, ident: str) -> list[tuple[str, str | None]]: ...
    async def conversation(self, ident: str, user: str | None) -> list[dict]: ...
    def export(self, f: Filters) -> AsyncIterator[dict]: ...  # oldest first, one at a time
    async def prunable(self, before: float) -> tuple[int, int]: ...  # (exchanges, stored contents)
    async def prune(self, before: float) -> tuple[int, int]: ...
    async def usage_rows(self, by: str, user: str | None, since: float | None, until: float | None) -> list[tuple]: ...

    # Copying a deployment, as stored (`aiogw state copy`).
    async def records_after(self, after: str | None, limit: int,
                            have: Container[bytes] = ()) -> tuple[list[Any], list[StoredPart]]: ...
    async def write_copied(self, records: list[Any], parts: list[StoredPart]) -> None: ...

    # Spend and rate windows (the limits' persisted counters).
    # month: YYYY-MM, or None for every day's spend; the windows are every user's
    async def load_limits(self, month: str | None) -> tuple[list[SpendRow], list[WindowRow]]: ...
    # Each spend row is added to its user's day: every gateway on a shared store adds what
    # it charged since it last saved. Windows replace a user's.
    async def save_limits(self, spend: list[SpendRow], windows: list[WindowRow]) -> None: ...
