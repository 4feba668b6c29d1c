"""The spill file: where an audit record goes when the database cannot take it.

One JSON line per record, its row by column name, appended beside the state database
(`<state>.audit-spill.jsonl`). Two ways lead here: a record the database refuses on its
own (found by storing its batch one record at a time), and everything still unwritten
when the database refuses every write at shutdown. A line always encodes: a row orjson
cannot write (it never should, see `storable`) is written mended. A file that cannot be
written (a full disk, a missing folder) loses its records: that is counted and logged
with their ids, never raised — the writer must go on draining, the gateway must stop.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import orjson

from aiogw.audit import storable
from aiogw.audit.record import COLUMNS, Record

log = logging.getLogger("aiogw.audit")

# Ids a log line names: enough to find the exchanges in the exchange log, bounded
# however many records a shutdown spills.
_NAMED = 20


def path_for(state: Path) -> Path:
    return state.with_name(state.name + ".audit-spill.jsonl")


def line(record: Record) -> bytes:
    """The record's row as one JSON line. Never raises."""
    try:
        return orjson.dumps(dict(zip(COLUMNS, record.row, strict=True))) + b"\n"
    except (TypeError, ValueError):
        pass
    try:
        mended, _ = storable.row(tuple(record.row), COLUMNS)
        return orjson.dumps(dict(zip(COLUMNS, mended, strict=True))) + b"\n"
    except Exception:  # a row of the wrong shape (a bug): its text, still one line
        return orjson.dumps({"id": storable.shown(record.id), "unencodable": storable.shown(record.row)}) + b"\n"


def write(path: Path, records: list[Record]) -> int:
    """Append the records; how many whole lines were written (the rest are lost). A
    line is written with its own system calls, so a disk that fills up part way keeps
    the lines before and the count is exact."""
    done = 0
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    except OSError as exc:
        _lost(path, records, exc)
        return 0
    try:
        for record in records:
            view = memoryview(line(record))
            while view:
                view = view[os.write(fd, view) :]
            done += 1
    except OSError as exc:
        _lost(path, records[done:], exc)
    finally:
        try:
            os.close(fd)
        except OSError:  # a full disk may say so only now; the lines counted were written
            pass
    return done


def ids(records: list[Record]) -> str:
    named = ", ".join(str(r.id) for r in records[:_NAMED])
    return named + (f" and {len(records) - _NAMED} more" if len(records) > _NAMED else "")


def _lost(path: Path, records: list[Record], exc: OSError) -> None:
    log.error(
        "audit: %d records could not be written to the spill file %s (%s) and are lost: %s",
        len(records), path, exc, ids(records),
    )
