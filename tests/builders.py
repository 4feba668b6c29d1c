"""Canned inputs the test modules share: deeply nested JSON, plain exchanges of an agent's
conversation, and the end of an exchange wired as the gateway wires it (finisher,
recorder, audit writer) with the database faults the audit tests use.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from dataclasses import dataclass

import orjson

from aiogw import keys
from aiogw.audit.recorder import Recorder
from aiogw.audit.writer import AuditWriter
from aiogw.config import AuditSettings
from aiogw.exchange import Exchange
from aiogw.finish import Finisher
from aiogw.store.base import KeyRecord
from aiogw.store.sqlite import SQLiteStore, key_table, schema

# --- deeply nested JSON ------------------------------------------------------------------


def nested_value(depth: int, leaf: object = "bottom", *, arrays: bool = False) -> object:
    """`leaf` inside `depth` levels: an array innermost, then an object `{"k": ...}` and
    an array in turn outwards; arrays only with `arrays`."""
    value = leaf
    for i in range(depth):
        value = [value] if arrays or i % 2 == 0 else {"k": value}
    return value


def nested_json(depth: int, leaf: bytes = b'"x"', *, arrays: bool = False, rng: random.Random | None = None) -> bytes:
    """`nested_value` as JSON text, written here because orjson refuses to write past
    255 levels (it reads 1,024); with `rng`, each level an array or an object at random."""
    opens, closes = [], []
    for i in range(depth):  # from the inside out
        as_object = rng.random() < 0.5 if rng is not None else not arrays and i % 2 == 1
        opens.append(b'{"k":' if as_object else b"[")
        closes.append(b"}" if as_object else b"]")
    return b"".join(reversed(opens)) + leaf + b"".join(closes)


# --- config ------------------------------------------------------------------------------


def allowing(routes: str, route: str, *allow: str) -> str:
    """`routes` (TOML `[[routes]]` tables) with `allow = [...]` on the one named `route`."""
    tables = routes.split("[[routes]]")
    named = [i for i, t in enumerate(tables) if f'\nname = "{route}"\n' in t]
    assert len(named) == 1, f"no one route named {route!r} in {routes!r}"
    i = named[0]
    tables[i] = tables[i].rstrip("\n") + "\nallow = [" + ", ".join(f'"{a}"' for a in allow) + "]\n"
    return "[[routes]]".join(tables)


# --- an agent's exchanges ----------------------------------------------------------------

SYSTEM = "You are a careful coding agent. " * 600  # past SPLIT_MIN: stored in parts


def exchange(started: float, messages: list, session: str | None = None) -> Exchange:
    """A finished Anthropic Messages exchange of alice's with SYSTEM and `messages`."""
    body = {"model": "claude-sonnet-4-6", "max_tokens": 64, "system": SYSTEM, "messages": messages}
    ex = Exchange("POST")
    ex.started = started
    ex.route, ex.dialect, ex.endpoint, ex.path = "anthropic", "anthropic", "messages", "/v1/messages"
    ex.user, ex.key_id, ex.model, ex.status = "alice", "key_1", "claude-sonnet-4-6", 200
    ex.body = orjson.dumps(body)
    ex.json = body
    ex.session = session
    ex.response_headers = {"request-id": "req_1"}
    ex.response_body = orjson.dumps(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-6",
            "content": [{"type": "text", "text": "done"}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 10, "output_tokens": 2, "cache_read_input_tokens": 5},
        }
    )
    ex.t_first_byte = ex.t0
    ex.finish()
    return ex


def turns(n: int) -> list[list]:
    """The messages of an agent's first `n` turns: each resends the history before it."""
    history, out = [{"role": "user", "content": "fix the parser"}], []
    for i in range(n):
        out.append(list(history))
        history += [{"role": "assistant", "content": f"step {i}"}, {"role": "user", "content": f"result {i} " * 50}]
    return out


# --- the end of an exchange, and the audit database's faults -------------------------------


@dataclass
class Audit:
    """The end of an exchange as the gateway wires it (aiogw.app): the finisher builds
    each record with the recorder and hands it to the writer."""

    finisher: Finisher
    recorder: Recorder
    writer: AuditWriter

    def end(self, exchanges: list[Exchange]) -> None:
        for ex in exchanges:
            self.finisher.end(ex)

    async def close(self) -> None:
        """As the gateway stops: the finisher first (it builds the records), then the
        writer, then the store."""
        await self.finisher.close()
        await self.writer.close()
        await self.writer.store.close()


async def writer_on(path, settings: AuditSettings) -> AuditWriter:
    """An audit writer on the SQLite store at `path`, started; `close_writer` stops both."""
    store = SQLiteStore(path)
    await store.open()
    writer = AuditWriter(store, path, settings)
    await writer.start()
    return writer


async def close_writer(writer: AuditWriter) -> None:
    await writer.close()
    await writer.store.close()


async def started(path, settings: AuditSettings, recorder: Recorder | None = None, sinks=()) -> Audit:
    writer = await writer_on(path, settings)
    recorder = recorder if recorder is not None else Recorder(settings)
    finisher = Finisher(settings)
    finisher.configure(settings, settle=None, report=None, recorder=recorder, writer=writer, sinks=sinks)
    finisher.start()
    return Audit(finisher, recorder, writer)


async def write(path, exchanges, policy="full", settings: AuditSettings | None = None) -> Audit:
    """Record the exchanges, then stop: every record is committed (or spilled) on return."""
    audit = await started(path, settings or AuditSettings(policy=policy, batch_size=3, flush_interval=0.001))
    audit.end(exchanges)
    await audit.close()
    return audit


async def until(predicate, within: float = 10.0) -> bool:
    """Wait for the audit (on this loop) to reach a state; the test's timeout bounds it too."""
    deadline = asyncio.get_running_loop().time() + within
    while not predicate() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.005)
    return bool(predicate())


def create_key(path, user: str) -> tuple[KeyRecord, str]:
    """A gateway key for `user` in the SQLite state database at `path` (made whole if
    new), as `aiogw keys create` makes it, without a subprocess or an event loop."""
    prepare(path)
    record, key, digest = keys.new_key(user)
    key_table.create(path, record, digest)
    return record, key


def revoke_key(path, key_id: str) -> bool:
    return key_table.revoke(path, key_id, time.time())


def prepare(path) -> None:
    """The SQLite state database at `path` made whole, as a gateway's start makes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    try:
        schema.prepare(conn, str(path))
    finally:
        conn.close()


def refuse_writes(path, table: str) -> None:
    """From now on every insert into `table` fails with the database's own error (an
    OperationalError, "no such table": its trigger writes a table that is gone), which
    the writer retries, until `accept_writes`."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(f"CREATE TABLE gone (x); CREATE TRIGGER refuse BEFORE INSERT ON {table} "
                       "BEGIN INSERT INTO gone VALUES (1); END; DROP TABLE gone;")
    conn.close()


def accept_writes(path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DROP TRIGGER refuse")
    conn.close()

