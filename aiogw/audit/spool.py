"""The audit spool: batches the database could not take, kept on local disk in order.

When the state database is away (unreachable, restarting, refusing writes with its own
error), the writer appends each batch here instead of waiting for it: the gateway goes
on serving, and every record is on disk (fsync per batch) before the writer takes the
next. Once the database answers again the batches are written to it oldest first; while
any is left, new batches join the spool's end, so records reach the database in the
order they were made. A batch replayed twice (the gateway died between the database's
commit and the spool's mark) is stored once: the stores keep a record whose id they
have (ON CONFLICT DO NOTHING).

Files, beside the state path: `<state>.audit-spool` (frames, appended) and
`<state>.audit-spool.done` (how many bytes of it are in the database: 8 bytes, written
and synced after each replayed batch). A frame is `AGS1`, the body's length and CRC-32,
and the body: the batch as JSON (bytes as base64). A torn last frame (the process died
while appending it) is cut off at open: its batch was never acknowledged. Bounded by
`[audit] spool_bytes`: a full spool takes nothing more, the writer's records wait, and
the gateway's back-pressure refuses new requests (fail-closed).
"""

from __future__ import annotations

import base64
import os
import stat
import struct
import zlib
from pathlib import Path
from typing import Any

import orjson

from aiogw import jsonout
from aiogw.audit.record import Record

_MAGIC = b"AGS1"
_HEAD = struct.Struct(">4sII")  # magic, body length, CRC-32 of the body


def path_for(state: Path) -> Path:
    return state.with_name(state.name + ".audit-spool")


def _bytes(value: Any) -> Any:
    return {"$b": base64.b64encode(value).decode()} if isinstance(value, bytes) else value


def _unbytes(value: Any) -> Any:
    return base64.b64decode(value["$b"]) if isinstance(value, dict) and "$b" in value else value


def encode(records: list[Record]) -> bytes:
    """A batch as one frame. A part given as a parsed value (the memo's) is serialised
    as the stores serialise it (sorted keys), so its digest still names its bytes."""
    body = orjson.dumps([{
        "id": r.id,
        "row": None if r.row is None else [_bytes(v) for v in r.row],
        "payload": None if r.payload is None else [_bytes(v) for v in r.payload],
        "parts": [[_bytes(h), _bytes(d if isinstance(d, bytes) else jsonout.dumps(d, sort_keys=True))]
                  for h, d in r.parts],
        "started": r.started,
        "mended": r.mended,
    } for r in records])
    return _HEAD.pack(_MAGIC, len(body), zlib.crc32(body)) + body


def decode(body: bytes) -> list[Record]:
    return [Record(
        r["id"],
        None if r["row"] is None else tuple(_unbytes(v) for v in r["row"]),
        None if r["payload"] is None else tuple(_unbytes(v) for v in r["payload"]),
        [(_unbytes(h), _unbytes(d)) for h, d in r["parts"]],
        r["started"],
        r["mended"],
    ) for r in orjson.loads(body)]


class Spool:
    """The spool's files. Blocking calls: the writer runs them in a thread."""

    def __init__(self, path: Path, limit: int) -> None:
        self.path = path
        self.done_path = path.with_name(path.name + ".done")
        self.limit = limit  # bytes of batches not yet replayed
        self.size = 0  # bytes in the file
        self.done = 0  # bytes of it replayed into the database
        self.cut = 0  # bytes of a torn last frame cut off at open

    @property
    def pending(self) -> int:
        """Bytes of batches not yet in the database."""
        return self.size - self.done

    def has_room(self, frame: int) -> bool:
        return self.pending + frame <= self.limit

    def open(self) -> None:
        """Find what an earlier run left: the file's whole frames, and how far replay got.
        Read a frame at a time (a spool may be as large as `spool_bytes`); what is not
        a regular file (a device, a folder) is not read: appending to it will fail and
        say so."""
        try:
            if not stat.S_ISREG(os.stat(self.path).st_mode):
                self.size = self.done = 0
                return
            f = open(self.path, "r+b")
        except FileNotFoundError:
            self.clear()  # a mark left without its file
            return
        with f:
            good = 0
            while True:
                head = f.read(_HEAD.size)
                if len(head) < _HEAD.size:
                    break
                magic, n, crc = _HEAD.unpack(head)
                body = f.read(n) if magic == _MAGIC else b""
                if magic != _MAGIC or len(body) != n or zlib.crc32(body) != crc:
                    break
                good += _HEAD.size + n
            end = f.seek(0, os.SEEK_END)
            if good < end:
                self.cut = end - good
                f.truncate(good)
                os.fsync(f.fileno())
        self.size = good
        try:
            self.done = min(int.from_bytes(self.done_path.read_bytes()[:8], "big"), good)
        except FileNotFoundError:
            self.done = 0
        if self.done == self.size:
            self.clear()

    def append(self, frame: bytes) -> None:
        """One batch, on disk before this returns."""
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, frame)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.size += len(frame)

    def head(self) -> tuple[list[Record], int] | None:
        """The oldest batch not yet replayed, and its frame's size; None when none is left."""
        if self.pending <= 0:
            return None
        with open(self.path, "rb") as f:
            f.seek(self.done)
            head = f.read(_HEAD.size)
            _, n, _ = _HEAD.unpack(head)
            return decode(f.read(n)), _HEAD.size + n

    def mark(self, frame: int) -> None:
        """The head batch is in the database: past it for good (synced)."""
        self.done += frame
        if self.done >= self.size:
            self.clear()
            return
        fd = os.open(self.done_path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.pwrite(fd, self.done.to_bytes(8, "big"), 0)
            os.fsync(fd)
        finally:
            os.close(fd)

    def adopt(self, other: Spool) -> int:
        """Take over what another spool holds (a worker's that no longer runs: the
        workers were fewer at the last start): its batches not yet replayed, appended to
        this one's, then its files removed. A crash between the two replays them twice,
        which the database stores once. Returns the bytes taken."""
        other.open()
        taken = other.pending
        if taken:
            with open(other.path, "rb") as f:
                f.seek(other.done)
                self.append(f.read(taken))
        other.clear()
        return taken

    def clear(self) -> None:
        """Everything replayed: the files go, the mark first (a crash between the two
        replays the whole file again, which the database stores once; the other order
        could leave a mark that skips the next spool's batches)."""
        for path in (self.done_path, self.path):
            try:
                path.unlink()
            except FileNotFoundError:
                pass
        self.size = self.done = 0
