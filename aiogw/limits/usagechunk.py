"""Taking back out of an OpenAI chat stream the usage the gateway asked for.

With `stream_options.include_usage` the upstream adds `"usage":null` to every chunk
and one last chunk with empty `choices` and the usage. A client that did not ask for
them gets neither: the relay passes whole events through this filter, which drops
that chunk and that field. Only the bytes of those two change; the rest of each event
is relayed as it came. The audit keeps the upstream's chunks as they were.

A JSON string cannot hold `"usage"` with bare quotes (they are escaped inside
strings), so a match on the raw bytes is always the field itself.
"""

from __future__ import annotations

import orjson

_NULL_FIELDS = (b',"usage":null', b', "usage": null', b'"usage":null,', b'"usage": null, ')


class UsageChunkFilter:
    __slots__ = ("_rest",)

    def __init__(self) -> None:
        self._rest = b""

    def feed(self, chunk: bytes) -> bytes:
        """The complete events so far, cleaned; an incomplete one waits for its end."""
        data = self._rest + chunk if self._rest else chunk
        cut = data.rfind(b"\n\n")
        if cut < 0:
            self._rest = data
            return b""
        cut += 2
        self._rest = data[cut:]
        return _clean(data[:cut])

    def end(self) -> bytes:
        rest, self._rest = self._rest, b""
        return _clean(rest) if rest else b""


def _clean(events: bytes) -> bytes:
    if b'"usage"' not in events:
        return events
    kept = []
    for event in events.split(b"\n\n"):
        if b'"usage"' in event:
            if _is_usage_chunk(event):
                continue
            for field in _NULL_FIELDS:
                event = event.replace(field, b"")
        kept.append(event)
    return b"\n\n".join(kept)


def _is_usage_chunk(event: bytes) -> bool:
    for line in event.splitlines():
        if line.startswith(b"data:"):
            try:
                value = orjson.loads(line[5:])
            except orjson.JSONDecodeError:
                return False
            return isinstance(value, dict) and value.get("choices") == [] and isinstance(value.get("usage"), dict)
    return False
