"""A stored exchange read back: its payloads and content parts as `aiogw audit show` prints them.

One reading for both stores: the request rebuilt from its parts by its dialect, a part
that is gone as {"missing_blob": hex}, and a part that cannot be read as a placeholder
saying why, so one damaged part never hides the rest of a record nor stops an export.
Plain functions of the values fetched: each store's `audit_read` fetches the payload
row and the parts it refers to (`refs`).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

import orjson

from aiogw.audit.record import unpack, unsqueeze
from aiogw.dialects import DIALECTS, RequestParts
from aiogw.store.base import NOT_SHOWN

HASH = 16  # bytes of a part's digest; message_refs is their concatenation


def refs(p: Mapping[str, Any]) -> list[bytes]:
    """The hashes of the parts a payload row refers to."""
    if p["request_meta"] is None:  # a request kept whole, or none
        return []
    out = [h for h in (p["system_ref"], p["tools_ref"]) if h is not None]
    joined = p["message_refs"]
    if joined is not None:
        out += [joined[i : i + HASH] for i in range(0, len(joined), HASH)]
    return out


def record(row: dict, p: Mapping[str, Any] | None, blobs: Mapping[bytes, bytes]) -> dict:
    """`row` (the list columns) with the request, response, raw stream and findings of
    its payload row `p`; `payloads` None when it has none (the metadata policy)."""
    out = dict(row)
    if p is None:
        out["payloads"] = None
        return out
    try:
        out["request"] = _request(out["dialect"], p, blobs)
    except (ValueError, TypeError, KeyError, zlib.error) as exc:  # orjson's errors are ValueError, TypeError
        out["request"] = {NOT_SHOWN: f"the stored request cannot be read back: {exc}"}
    out["response"] = None if p["response"] is None else json_or_text(p["response"], squeezed=True)
    try:
        out["raw_stream"] = unsqueeze(p["raw_stream"]).decode("utf-8", "replace") if p["raw_stream"] else None
    except zlib.error as exc:
        out["raw_stream"] = {NOT_SHOWN: f"the stored stream cannot be read back: {exc}"}
    out["findings_detail"] = json_or_text(p["findings"]) if p["findings"] else []
    return out


def _blob(blobs: Mapping[bytes, bytes], h: bytes | None) -> Any:
    if h is None:
        return None
    data = blobs.get(h)
    if data is None:
        return {"missing_blob": h.hex()}
    return json_or_text(data, squeezed=True)


def _request(dialect_name: str | None, p: Mapping[str, Any], blobs: Mapping[bytes, bytes]) -> Any:
    if p["request_meta"] is None:
        raw = p["request_raw"]
        return json_or_text(raw, squeezed=True) if raw else None
    meta = unpack(p["request_meta"])
    joined = p["message_refs"]
    messages = None if joined is None else [_blob(blobs, joined[i : i + HASH]) for i in range(0, len(joined), HASH)]
    parts = RequestParts(system=_blob(blobs, p["system_ref"]), messages=messages, tools=_blob(blobs, p["tools_ref"]),
                         **meta)
    dialect = DIALECTS.get(dialect_name or "")
    return dialect.rebuild(parts) if dialect is not None else parts


def json_or_text(raw: bytes, squeezed: bool = False) -> Any:
    """The stored JSON as values; as text when it is not JSON orjson reads (nested past
    1,024 levels among others), a placeholder when it cannot be unpacked."""
    if squeezed:
        try:
            raw = unsqueeze(raw)
        except zlib.error as exc:
            return {NOT_SHOWN: f"stored content that cannot be unpacked: {exc}"}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", "replace")
