"""What a batch of audit records writes of their content parts, and what a prune may take.

One rule for both stores. A record carries its content parts (system prompt, tools,
messages) by hash; a part the writer stored this very UTC day (`known`: hash -> the day
it was last written) is left out, as its last_seen is today's and a prune never takes
content last seen today (`blob_cutoff`). One stored an earlier day is written again with
its data, not only touched: a prune since then may have taken it (the insert keeps a
row that is there and raises its last_seen). A record without a row (its row went to
the spill file) stores its parts alone.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from aiogw import jsonout
from aiogw.audit.record import BLOB_LEVEL, Record, squeeze

DAY = 86_400.0


def choose(records: list[Record], known: Mapping[bytes, int]) -> tuple[list[tuple], list[tuple], dict[bytes, tuple]]:
    """(rows, payloads, parts to write: hash -> (data, newest use))."""
    rows, payloads = [], []
    new: dict[bytes, tuple] = {}
    for r in records:
        if r.row is not None:
            rows.append(r.row)
        if r.payload is not None:
            payloads.append(r.payload)
        day = int(r.started // DAY)
        for h, data in r.parts:
            if h in new:
                new[h] = (data, max(new[h][1], r.started))
            elif known.get(h) != day:
                new[h] = (data, r.started)
    return rows, payloads, new


def blob_rows(new: dict[bytes, tuple]) -> list[tuple]:
    """The `blobs` rows of the chosen parts: (hash, data squeezed, size, last_seen)."""
    out = []
    for h, (data, seen) in new.items():
        if not isinstance(data, bytes):  # its digest came from the memo: serialise it now
            data = jsonout.dumps(data, sort_keys=True)
        out.append((h, squeeze(data, BLOB_LEVEL), len(data), float(seen)))
    return out


def blob_cutoff(before: float, now: float | None = None) -> float:
    """Content is deleted when last used before `before`, but never when last used today
    (UTC): a running gateway's writer does not write again what it stored the same day,
    so a record written after the prune would refer to content that is gone. What a
    prune up to `now` leaves of it goes with the first prune of a later day."""
    now = time.time() if now is None else now
    return min(before, now // DAY * DAY)
