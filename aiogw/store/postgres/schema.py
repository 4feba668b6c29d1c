"""The PostgreSQL schema: its tables, its versions, and `migrate`.

Nothing here makes a table behind an operator's back: `open()` refuses a database whose
version is not this aiogw's (an empty one too), and `aiogw migrate` applies the steps
missing, each in one transaction under an advisory lock, so two gateways or commands
migrating at once take turns and the second finds nothing left to do. Everything works
as a plain role that owns its database: no superuser, no extension.

The audit's `exchanges` and `payloads` are partitioned by RANGE on `id`, a day a
partition (made as needed: `partitions.py`). Why the id and not a day column: an id is
48 bits of milliseconds then 80 random bits (`audit.ids`), so it sorts by time and
its day is a function of it. PostgreSQL requires a unique index of a partitioned table
to include the partition key; with the key being the id itself, `PRIMARY KEY (id)` is
exactly the uniqueness the store promises (a record replayed is stored once), enforced
across every partition, with no extra column. And `since`/`until` are already id
ranges, so the planner skips the partitions a filter leaves out.

Text columns are COLLATE "C": ids and the listed values sort as bytes, as on SQLite
(so `conversations_of` and `usage` come out in the same order), and a range partition
bound on text is read the same whatever the database's locale.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from aiogw.audit.record import COLUMNS, PAYLOAD_COLUMNS
from aiogw.store.base import SCHEMA_VERSION, SchemaError

# pg_advisory_xact_lock keys (any bigint, the same in every aiogw): one for migrations,
# one for making partitions. Held to the end of the transaction that takes them.
MIGRATE_LOCK = 0x6169_6F67_775F_6D31  # "aiogw_m1"
PARTITION_LOCK = 0x6169_6F67_775F_7031  # "aiogw_p1"

# The list table's columns, in record.COLUMNS' order. Ints are bigint where SQLite's
# 64-bit INTEGER held counts; stream and priced are smallint 0/1, so they read back as
# the ints SQLite gives (a boolean would read back as True/False).
EXCHANGE_TYPES = {
    "id": 'text COLLATE "C" NOT NULL',
    "started": "double precision NOT NULL",
    "duration_ms": "double precision",
    "ttfb_ms": "double precision",
    "user": 'text COLLATE "C"',
    "key_id": 'text COLLATE "C"',
    "route": 'text COLLATE "C"',
    "dialect": 'text COLLATE "C"',
    "endpoint": 'text COLLATE "C"',
    "model": 'text COLLATE "C"',
    "stream": "smallint NOT NULL",
    "status": "integer NOT NULL",
    "outcome": 'text COLLATE "C" NOT NULL',
    "reason": 'text COLLATE "C"',
    "input_tokens": "bigint NOT NULL DEFAULT 0",
    "output_tokens": "bigint NOT NULL DEFAULT 0",
    "cache_write_tokens": "bigint NOT NULL DEFAULT 0",
    "cache_read_tokens": "bigint NOT NULL DEFAULT 0",
    "reasoning_tokens": "bigint NOT NULL DEFAULT 0",
    "findings": "integer NOT NULL DEFAULT 0",
    "request_id": 'text COLLATE "C"',
    "client": 'text COLLATE "C"',
    "user_agent": 'text COLLATE "C"',
    "conversation": 'text COLLATE "C"',
    "request_bytes": "bigint NOT NULL DEFAULT 0",
    "response_bytes": "bigint NOT NULL DEFAULT 0",
    "method": 'text COLLATE "C"',
    "path": 'text COLLATE "C"',
    "cost_usd": "double precision",
    "priced": "smallint NOT NULL DEFAULT 1",
}
assert tuple(EXCHANGE_TYPES) == COLUMNS, "the exchanges table must follow audit.record.COLUMNS"
assert PAYLOAD_COLUMNS[0] == "id"


def q(name: str) -> str:
    """A column name as SQL: `user` is a reserved word in PostgreSQL."""
    return '"user"' if name == "user" else name


def _exchanges() -> str:
    columns = ",\n    ".join(f"{q(name)} {decl}" for name, decl in EXCHANGE_TYPES.items())
    return f"CREATE TABLE exchanges (\n    {columns},\n    PRIMARY KEY (id)\n) PARTITION BY RANGE (id)"


def _payloads() -> str:
    columns = ",\n    ".join(f"{name} bytea" for name in PAYLOAD_COLUMNS[1:])
    return f'CREATE TABLE payloads (\n    id text COLLATE "C" NOT NULL,\n    {columns},\n    PRIMARY KEY (id)\n) PARTITION BY RANGE (id)'


# Every `audit list` filter has an index ending in id, so its newest (or oldest) rows
# come in key order and a LIMIT stops early; `findings` is partial (few rows have any).
# On a partitioned table each is made on every partition, present and future.
_INDEXES = [
    f"CREATE INDEX exchanges_{name} ON exchanges ({q(name)}, id)"
    for name in ("user", "conversation", "model", "route", "outcome", "status")
] + [
    "CREATE INDEX exchanges_findings ON exchanges (id) WHERE findings > 0",
    # Route and model together, each common and jointly empty (`--route anthropic --model
    # gpt-5`), read every row of the route's index: 2.6-3.1 s on 10 M records (bench).
    "CREATE INDEX exchanges_route_model ON exchanges (route, model, id)",
]

VERSIONS = """CREATE TABLE IF NOT EXISTS aiogw_schema (
    version integer NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    step text NOT NULL
)"""

_V1 = [
    _exchanges(),
    *_INDEXES,
    _payloads(),
    """CREATE TABLE blobs (
    hash bytea PRIMARY KEY,
    data bytea NOT NULL,
    size bigint NOT NULL,
    last_seen double precision NOT NULL
)""",
    "CREATE INDEX blobs_last_seen ON blobs (last_seen)",
    """CREATE TABLE keys (
    id text COLLATE "C" PRIMARY KEY,
    "user" text COLLATE "C" NOT NULL,
    hash bytea NOT NULL UNIQUE,
    created_at double precision NOT NULL,
    revoked_at double precision
)""",
    # One row, raised with every key made or revoked (in the same transaction as its
    # NOTIFY): the gateways' watch reads it every second, so a notification missed
    # while its connection was down is still seen (key_table.py).
    """CREATE TABLE keys_version (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    version bigint NOT NULL
)""",
    "INSERT INTO keys_version (version) VALUES (0)",
    """CREATE TABLE limit_spend (
    "user" text COLLATE "C" NOT NULL,
    day date NOT NULL,
    usd double precision NOT NULL,
    PRIMARY KEY ("user", day)
)""",
    """CREATE TABLE limit_windows (
    "user" text COLLATE "C" PRIMARY KEY,
    rpm_level double precision,
    rpm_at double precision,
    tpm_level double precision,
    tpm_at double precision
)""",
]


@dataclass(frozen=True, slots=True)
class Step:
    version: int
    name: str
    statements: list[str]


# In order; a new version appends a step (ALTER TABLE ... on a partitioned table
# reaches every partition). The last step's version is SCHEMA_VERSION.
STEPS = [Step(1, "created the tables of schema version 1 (audit partitioned by day, keys, limits)", _V1)]
assert STEPS[-1].version == SCHEMA_VERSION


async def version(conn: asyncpg.Connection) -> int | None:
    """The schema's version; None for a database without aiogw's tables."""
    if await conn.fetchval("SELECT to_regclass('aiogw_schema')") is None:
        return None
    return await conn.fetchval("SELECT max(version) FROM aiogw_schema")


def check(have: int | None, where: str) -> None:
    """At open: any version but this aiogw's refused, with what to run."""
    if have == SCHEMA_VERSION:
        return
    if have is None:
        raise SchemaError(f"the PostgreSQL state database {where} has no aiogw tables yet: run "
                          "`aiogw migrate --config <your config>` to make them")
    if have > SCHEMA_VERSION:
        raise SchemaError(_newer(have, where))
    raise SchemaError(f"the PostgreSQL state database {where} has schema version {have}; this aiogw needs "
                      f"version {SCHEMA_VERSION}: run `aiogw migrate --config <your config>` (it keeps every record)")


def _newer(have: int, where: str) -> str:
    return (f"the PostgreSQL state database {where} has schema version {have}: this aiogw is older than the "
            f"database's schema (it reads version {SCHEMA_VERSION}); upgrade aiogw")


async def migrate(conn: asyncpg.Connection, where: str) -> list[str]:
    """Apply the missing steps, each in one transaction; the names of those applied.

    The advisory lock is taken before the version is read: a second `migrate` waits for
    the first's step to commit, then sees it applied. It is the transaction's: a
    migration killed half-way lets go of it, and of everything the step did."""
    applied = []
    for step in STEPS:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATE_LOCK)
            await conn.execute(VERSIONS)
            have = await conn.fetchval("SELECT max(version) FROM aiogw_schema")
            if have is not None and have > SCHEMA_VERSION:
                raise SchemaError(_newer(have, where))
            if have is not None and have >= step.version:
                continue
            for statement in step.statements:
                await conn.execute(statement)
            await conn.execute("INSERT INTO aiogw_schema (version, step) VALUES ($1, $2)", step.version, step.name)
        applied.append(step.name)
    return applied
