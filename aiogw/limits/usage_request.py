"""Making OpenAI chat streams report usage, and taking it back out for the client.

A chat stream carries usage only when the client set `stream_options.include_usage`;
without it the gateway could not charge it. This stage asks the upstream for it, and
gives the exchange a tap that removes from the relayed stream what the client did not
ask for (`limits.usagechunk`). Which endpoints need asking is the dialect's to say.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from aiogw.dialects import DIALECTS
from aiogw.exchange import Exchange
from aiogw.limits.usagechunk import UsageChunkFilter
from aiogw.stage import CONTINUE, REWRITE, Tap, Verdict


class UsageStrip(Tap):
    """The usage the gateway asked for, taken back out of the stream as it is relayed."""

    __slots__ = ()
    # The relay edits this stream: it must come uncompressed.
    upstream_headers: Mapping[str, str] = {"Accept-Encoding": "identity"}

    def edit(self, ex: Exchange) -> UsageChunkFilter | None:
        # An upstream that compresses anyway is relayed as it came.
        return None if ex.response_headers.get("Content-Encoding") else UsageChunkFilter()


_STRIP = UsageStrip()  # it holds nothing of its own: one serves every exchange


class UsageRequest:
    __slots__ = ()

    def check(self, ex: Exchange) -> Verdict:
        if not ex.stream or ex.json is None:
            return CONTINUE
        dialect = DIALECTS.get(ex.dialect)
        if dialect is None or not dialect.asks_stream_usage(ex.endpoint):
            return CONTINUE
        options = ex.json.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage") is True:
            return CONTINUE
        if "stream_options" not in ex.json and ex.body is not None and ex.body.lstrip()[:1] == b"{":
            # Spliced in front: the client's bytes stay as they were after it.
            body = ex.body.lstrip()
            sep = b"," if body[1:].lstrip()[:1] != b"}" else b""
            ex.body = b'{"stream_options":{"include_usage":true}' + sep + body[1:]
            ex.json["stream_options"] = {"include_usage": True}
        elif options is None or isinstance(options, dict):  # null, or an object without it
            ex.json["stream_options"] = {**(options or {}), "include_usage": True}
            ex.body = orjson.dumps(ex.json)
        else:
            return CONTINUE  # not an object: the upstream will say what is wrong with it
        ex.taps = (*ex.taps, _STRIP)
        return REWRITE
