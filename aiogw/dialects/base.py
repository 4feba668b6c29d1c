"""The dialect contract: endpoint classification, credential header, error envelopes
(a refusal's body, a stopped stream's last event), reading an exchange back as plain
data (request parts, the answer, its usage), and the texts a guard reads of both.

Everything here takes plain data (parsed bodies, decoded bytes, header mappings) and
returns plain data; nothing knows of sockets or event loops.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import orjson

from aiogw.dialects.reading import as_dict, load, looks_like_json
from aiogw.dialects.shape import Shape
from aiogw.dialects.walk import Text

# An error body that is not JSON (a proxy's HTML page) is kept up to this many
# characters: enough to read what went wrong, bounded because the audit keeps it.
MAX_RAW_ERROR = 2000


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One kind of provider call. `json` means the body must be a JSON object."""

    name: str
    json: bool = False
    stream: bool = False  # streaming is decided by the path itself (Gemini)
    model: str | None = None  # the model named by the path (Gemini)


OTHER = Endpoint("other")


class Usage(NamedTuple):
    """Tokens by the rate they are billed at, the same whatever the provider.

    `input` is billed at the base input rate: cache reads and writes are NOT in it.
    `output` is everything billed at the output rate, reasoning included. `cache_write`
    is every cache write; `cache_write_1h` is the part of it at the 1-hour rate.
    `reasoning` is the part of `output` that was reasoning (for information only).

    A NamedTuple, not a frozen dataclass: one is made for every exchange, and a frozen
    dataclass's six guarded attribute sets cost twice the time.
    """

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    cache_write_1h: int = 0
    reasoning: int = 0


_NO_USAGE = Usage()


@dataclass(frozen=True, slots=True)
class Answer:
    """A response read back as one object.

    `message` is the answer in the provider's own non-streaming response shape (a
    stream is reassembled into it); `complete` says the stream reached its proper end
    (or a plain body parsed); `error` is the provider's error object when the status
    was an error or the stream carried one. A broken stream gives complete=False with
    whatever was read before the break.
    """

    message: dict[str, Any] | None = None
    usage: Usage = _NO_USAGE
    model: str | None = None
    stop_reason: str | None = None
    complete: bool = False
    error: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class RequestParts:
    """A request body split for content-addressed storage: `rebuild(request_parts(b))`
    equals `b`.

    `system`, `messages` and `tools` are None when the body has none (or has null
    there: a null stays in `rest`, where it is stored as it was). `rest` is the body
    without them. The other fields are plain values saying where the parts came from,
    so the split is lossless whatever the dialect or endpoint:
    `*_key` are the body keys, `within` names a nested object that held them (Gemini's
    `generateContentRequest`), and `string_input` says `messages` was one string,
    stored here as one user message.
    """

    system: Any = None
    messages: list[Any] | None = None
    tools: Any = None
    rest: dict[str, Any] = field(default_factory=dict)
    system_key: str = "system"
    messages_key: str = "messages"
    tools_key: str = "tools"
    within: str | None = None
    string_input: bool = False


@dataclass(frozen=True, slots=True)
class PartKeys:
    """Where one endpoint keeps its parts; `system=None`: it has no top-level system."""

    system: str | None = "system"
    messages: str = "messages"
    tools: str = "tools"
    string_input: bool = False  # `messages` may be one string (Responses `input`)


class Dialect:
    """The base: subclasses set the tables and override what differs."""

    name = ""
    credential_header = ""
    credential_prefix = ""
    # Exact "METHOD path" → endpoint; path-shaped endpoints are handled in `endpoint`.
    endpoints: ClassVar[dict[str, Endpoint]] = {}
    # Endpoint name → where its request keeps system, messages, tools; absent: no split.
    part_keys: ClassVar[dict[str, PartKeys]] = {}
    # "METHOD /path" patterns forwarded besides `endpoints` (routing.allow_list): calls
    # that read nothing of another user's (a model's description). Anything else, say
    # a stored response or file under the organisation's key, needs the route's `allow`.
    allowed: ClassVar[tuple[str, ...]] = ()
    # Response headers naming the provider's id for the request, in order of preference.
    request_id_headers: ClassVar[tuple[str, ...]] = ()

    def endpoint(self, method: str, path: str) -> Endpoint:
        return self.endpoints.get(f"{method} {path}", OTHER)

    def credential(self, secret: str) -> tuple[str, str]:
        """The header that carries the provider key upstream."""
        return self.credential_header, self.credential_prefix + secret

    def error_body(self, status: int, message: str, retry_after: int | None = None) -> bytes:
        """The gateway's own error in the provider's envelope; `retry_after` for a 429."""
        raise NotImplementedError

    def stream_error(self, message: str, json_array: bool) -> bytes:
        """The gateway's error as the stream's last event, in the provider's stream
        format (`json_array`: Gemini's streamed JSON array rather than SSE), so the SDK
        raises its usual error when the gateway stops an answer."""
        raise NotImplementedError

    def asks_stream_usage(self, endpoint: str) -> bool:
        """Whether a stream of `endpoint` reports usage only when the client asked for
        it in the request (OpenAI chat's `stream_options.include_usage`); False where
        every stream reports it unasked."""
        return False

    def request_id(self, headers: Mapping[str, str]) -> str | None:
        """The provider's id for the request, from a case-insensitive header mapping."""
        for name in self.request_id_headers:
            value = headers.get(name)
            if value:
                return value
        return None

    # --- the answer -------------------------------------------------------------------

    def answer(self, endpoint: str, status: int, stream: bool, body: bytes) -> Answer:
        """Read a DECODED response body (all chunks joined) back into one Answer.

        `stream` says the body is an event stream (for Gemini also its JSON array); a
        body that is plainly one JSON object is read as such whatever `stream` says,
        since an upstream may ignore the stream flag. A status >= 400 reads the error
        envelope. Never raises: bad or truncated input gives complete=False and
        whatever was read.
        """
        try:
            if status >= 400:
                return error_answer(body)
            if _streamed(stream, body):
                return self.stream_answer(endpoint, body)
            try:
                data = orjson.loads(body)
            except orjson.JSONDecodeError:
                return Answer()
            if not isinstance(data, dict):
                return Answer()
            return self.json_answer(endpoint, data)
        except _ODD_SHAPE:
            # Provider bytes are untrusted and the readers are written not to raise on
            # any JSON shape; this is the last line, so an unforeseen shape costs the
            # answer, never the audit record.
            return Answer()

    def json_answer(self, endpoint: str, data: dict[str, Any]) -> Answer:
        """A parsed non-streaming body; the dialect reads its usage and stop reason."""
        return Answer(message=data, complete=True)

    def stream_answer(self, endpoint: str, body: bytes) -> Answer:
        """A streamed body, reassembled; the dialect knows its events."""
        return Answer()

    def stream_usage(self, endpoint: str, body: bytes) -> Usage | None:
        """A streamed body's usage alone, read from the few events that carry it (what
        a user's limits need at once), or None: read the whole answer for it."""
        return None

    def json_usage(self, endpoint: str, data: dict[str, Any]) -> Usage:
        """A parsed non-streaming body's usage alone: what `json_answer` would find."""
        return self.json_answer(endpoint, data).usage

    def usage(self, endpoint: str, stream: bool, body: bytes) -> Usage | None:
        """The usage of a DECODED success body, as `answer` would read it, without
        reassembling the answer; None when only the whole read can tell (then read it)."""
        try:
            if _streamed(stream, body):
                return self.stream_usage(endpoint, body)
            try:
                data = orjson.loads(body)
            except orjson.JSONDecodeError:
                return Usage()
            return self.json_usage(endpoint, data) if isinstance(data, dict) else Usage()
        except _ODD_SHAPE:
            return None  # the whole read has its own last line for odd shapes

    # --- request parts ----------------------------------------------------------------

    def request_parts(self, endpoint: str, body: dict[str, Any]) -> RequestParts:
        """Split a parsed request body into system, messages, tools and the rest.

        Endpoints without conversation parts (embeddings, models, unknown) keep the
        whole body in `rest`. Values of an unexpected type stay in `rest` too.
        """
        keys = self.part_keys.get(endpoint)
        if keys is None:
            return RequestParts(rest=dict(body))
        return split(body, keys)

    def rebuild(self, parts: RequestParts) -> dict[str, Any]:
        """The request body `parts` came from (key order may differ)."""
        return join(parts)

    # --- what a guard reads -----------------------------------------------------------

    def shape(self, endpoint: str, body: dict[str, Any]) -> Shape | None:
        """How to read this request as head, history and tail, so a guard can skip the
        history it read last turn; None when it has no such layout (read it whole
        with `request_texts`)."""
        return None

    def request_texts(self, endpoint: str, body: dict[str, Any]) -> list[Text]:
        """Every text of a parsed request, by place, in order (see `blocks`)."""
        s = self.shape(endpoint, body)
        return s.texts(body) if s is not None else []

    def answer_texts(self, data: Any) -> list[str]:
        """The text a model produced in one stream event or one whole response
        (parsed JSON): text deltas, tool-call arguments, thinking."""
        if not isinstance(data, dict):
            return []
        return [t for t in self.answer_pieces(data) if isinstance(t, str) and t]

    def answer_pieces(self, data: dict[str, Any]) -> Iterable[Any]:
        """What `answer_texts` keeps the non-empty strings of; the dialect knows where
        its events and responses hold text."""
        return ()


# What a reader of untrusted provider JSON may still raise on a shape nobody foresaw.
_ODD_SHAPE = (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError)


def _streamed(stream: bool, body: bytes) -> bool:
    """Read as a stream: one asked for, unless the body is plainly one JSON object (an
    upstream may ignore the flag); and a JSON array, which only Gemini's stream sends."""
    return (stream and not looks_like_json(body, b"{")) or looks_like_json(body, b"[")


def error_answer(body: bytes) -> Answer:
    """An error status: the provider's envelope (a JSON array's first error object for
    Gemini streams), or the start of a body that is not JSON."""
    data = load(body)
    if isinstance(data, list):
        data = next((item for item in data if as_dict(item)), None)
    if isinstance(data, dict):
        return Answer(error=data, complete=True)
    return Answer(error={"raw": body[: MAX_RAW_ERROR * 4].decode("utf-8", "replace")[:MAX_RAW_ERROR]})


def split(body: Mapping[str, Any], keys: PartKeys, within: str | None = None) -> RequestParts:
    """`body` (or its object under `within`) split by `keys`."""
    rest = dict(body[within] if within else body)
    system = rest.pop(keys.system) if keys.system and rest.get(keys.system) is not None else None
    tools = rest.pop(keys.tools) if rest.get(keys.tools) is not None else None
    messages = rest.get(keys.messages)
    string_input = keys.string_input and isinstance(messages, str)
    if isinstance(messages, list):
        messages = list(rest.pop(keys.messages))
    elif string_input:
        # The API reads a string input as one user message; store it as one, say so.
        messages = [{"role": "user", "content": rest.pop(keys.messages)}]
    else:
        messages = None
    if within:
        rest = {**body, within: rest}
    return RequestParts(
        system, messages, tools, rest, keys.system or "system", keys.messages, keys.tools, within, string_input
    )


def join(parts: RequestParts) -> dict[str, Any]:
    """The inverse of `split`."""
    inner = dict(parts.rest[parts.within] if parts.within else parts.rest)
    if parts.system is not None:
        inner[parts.system_key] = parts.system
    if parts.tools is not None:
        inner[parts.tools_key] = parts.tools
    if parts.messages is not None:
        messages: Any = parts.messages
        if parts.string_input:
            messages = messages[0]["content"]
        inner[parts.messages_key] = messages
    if parts.within:
        return {**parts.rest, parts.within: inner}
    return inner


def dumps(obj: object) -> bytes:
    return orjson.dumps(obj)
