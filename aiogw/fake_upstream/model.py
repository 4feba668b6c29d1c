"""Plain data the fake answers from: faults, replies, the request's turn and the model's answer."""

from __future__ import annotations

import hashlib
import http
import re
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

JSON = dict[str, Any]
Strs = Mapping[str, str]  # headers, query

DEFAULT_TEXT = "Hello from the aiogw fake upstream. Every request gets this same answer."
# Its output (aiogw-tool-42) is not in the command, so seeing it proves the tool ran.
SHELL_COMMAND = "echo aiogw-tool-$((6*7))"
FAULT_HEADER = "x-fake-fault"
CHUNKS_HEADER = "x-fake-chunks"
DELAY_HEADER = "x-fake-delay"
GATE_HEADER = "x-fake-gate"
TEXT_HEADER = "x-fake-text"  # the model's answer text for this request
# Anthropic accepts bodies up to 32 MB and agents resend the whole conversation every
# turn; the fake must take what the real API takes (aiohttp's default is 1 MiB).
MAX_BODY_BYTES = 32 * 1024 * 1024
# Streams are built in memory before they are sent; this caps what one header can ask.
MAX_CHUNKS = 100_000
# Events sent before a stall-mid or die fault: enough for a client to have seen the
# stream start (Anthropic's message_start, OpenAI's role chunk).
MID_FAULT_EVENTS = 2
# How often a stalled handler looks whether its client left or the server stops; the
# runner of start() cancels handlers on disconnect anyway, this covers other runners.
STALL_POLL_S = 0.05
# How long stop() lets open streams finish before aiohttp cancels them.
SHUTDOWN_TIMEOUT_S = 1.0
EMBEDDING_DIMS = 16
# Lean mode's threshold: below it the text walk costs little; above it (agents' 200 KB
# conversations) the walk and the SHA-256 are most of the fake's CPU per request.
LEAN_MIN_BYTES = 16 * 1024


@dataclass
class FakeConfig:
    """How the fake behaves; read on every request, so a test may change it live."""

    anthropic_key: str = "sk-ant-fake"
    openai_key: str = "sk-openai-fake"
    gemini_key: str = "gemini-fake"
    chunks: int = 5
    chunk_delay: float = 0.0
    compress: bool = False
    text: str = DEFAULT_TEXT
    record: bool = True
    fault: str = ""
    lean: bool = False  # see the module docstring: cheaper answers to large bodies


@dataclass(frozen=True, slots=True)
class Received:
    """One request exactly as it arrived (header names lower-cased)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes



FAULT_KINDS = frozenset({"refuse", "stall", "stall-mid", "die"})


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str = ""  # "" (none), one of FAULT_KINDS, or "status"
    status: int = 0


def parse_fault(value: str) -> Fault:
    """Parse an ``x-fake-fault`` value; ValueError names what is accepted."""
    value = value.strip().lower()
    if not value:
        return Fault()
    if value in FAULT_KINDS:
        return Fault(value)
    code = value.removeprefix("status=")
    if code != value and code.isdigit() and 400 <= int(code) <= 599:
        return Fault("status", int(code))
    raise ValueError(f"unknown {FAULT_HEADER} {value!r}: use refuse, stall, stall-mid, die or status=NNN")


@dataclass(frozen=True, slots=True)
class Knobs:
    """The per-request controls, headers over FakeConfig."""

    fault: Fault
    chunks: int
    delay: float


class BadRequest(Exception):
    """The request is malformed; answered 400 in the provider's envelope."""


@dataclass(frozen=True, slots=True)
class JsonReply:
    body: Any
    status: int = 200
    headers: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class StreamReply:
    frames: Sequence[bytes]  # each one event, written and flushed on its own
    content_type: str


Reply = JsonReply | StreamReply


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    schema: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Turn:
    """What the fake model reads from a request, whatever the dialect."""

    texts: tuple[str, ...]
    tool: Tool | None = None  # the model calls this tool
    tool_result: str | None = None  # the last turn carries this tool result
    cache: bool = False  # the request asks for prompt caching
    lean_bytes: int = 0  # lean mode, large body: its size stands in for `texts` (empty)


@dataclass(frozen=True, slots=True)
class Answer:
    """The model's answer: text deltas, or a tool call whose JSON arguments are split."""

    text: str
    pieces: tuple[str, ...]
    tool: Tool | None
    arguments: str
    input_tokens: int  # the whole prompt, the cached part included
    cached_tokens: int
    output_tokens: int
    ident: str

    @property
    def args(self) -> JSON:
        return orjson.loads(self.arguments)


@dataclass(frozen=True, slots=True)
class Call:
    """One request as an endpoint sees it: plain data, no sockets."""

    body: JSON
    raw: bytes
    query: Mapping[str, str]
    params: Mapping[str, str]  # named groups of the route's pattern
    text: str
    chunks: int
    lean: bool = False


# Keys whose string values are structure, not text the model reads.
_STRUCTURE_KEYS = frozenset(
    {
        "type",
        "role",
        "id",
        "tool_use_id",
        "tool_call_id",
        "call_id",
        "status",
        "cache_control",
        "signature",
        "thoughtSignature",
        "mimeType",
        "format",
    }
)
_SHELL_NAME = re.compile(r"bash|shell|exec", re.IGNORECASE)


def strings(value: Any) -> Iterator[str]:
    """Every text in a JSON value, skipping structural fields such as ``type``; a loop
    with its own stack, in document order (a body may nest 1,024 deep)."""
    stack = [value]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            yield value
        elif isinstance(value, list):
            stack.extend(reversed(value))
        elif isinstance(value, dict):
            stack.extend(reversed([item for key, item in value.items() if key not in _STRUCTURE_KEYS]))


def joined(value: Any) -> str:
    return "\n".join(strings(value))


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_dict(value: Any) -> JSON:
    return value if isinstance(value, dict) else {}


def split_text(text: str, n: int) -> tuple[str, ...]:
    """n non-empty pieces that join back to the text; a text shorter than n is doubled
    until it is long enough, so a bench can ask for long streams."""
    n = max(1, n)
    text = text or "."
    while len(text) < n:
        text = f"{text} {text}"
    size = len(text)
    return tuple(text[size * i // n : size * (i + 1) // n] for i in range(n))


def words(text: str) -> int:
    return max(1, len(text.split()))


def _json_type(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type", "string")
    if isinstance(kind, list):  # ["string", "null"]
        kind = next((k for k in kind if str(k).lower() != "null"), "string")
    return str(kind).lower()  # Gemini schemas say "STRING"


def _sample(schema: Mapping[str, Any]) -> Any:
    if as_list(schema.get("enum")):
        return schema["enum"][0]
    samples = {"integer": 1, "number": 1, "boolean": True, "array": [], "object": {}}
    return samples.get(_json_type(schema), "fake")


def pick_tool(tools: Iterable[Tool]) -> Tool | None:
    """The tool the fake model calls: the first shell-like one, so a real agent runs a
    harmless command and sends its output back; else the first declared."""
    declared = list(tools)
    return next((t for t in declared if _SHELL_NAME.search(t.name)), declared[0] if declared else None)


def tool_arguments(tool: Tool) -> JSON:
    """Arguments for a call: a shell command for shell-like tools, then every required
    property filled with a short value of its type."""
    props = as_dict(tool.schema.get("properties"))
    args: JSON = {}
    if _SHELL_NAME.search(tool.name):
        key = next((k for k in ("command", "cmd") if k in props), None)
        if key is None and not props:  # schema-less shell tools, e.g. Anthropic's bash
            key = "command"
        if key is not None:
            is_array = _json_type(as_dict(props.get(key))) == "array"
            args[key] = ["bash", "-lc", SHELL_COMMAND] if is_array else SHELL_COMMAND
    for name in as_list(tool.schema.get("required")):
        if isinstance(name, str) and name not in args:
            args[name] = _sample(as_dict(props.get(name)))
    return args


def make_turn(raw: bytes, lean: bool, sources: tuple[Any, ...], tool: Tool | None, result: str | None,
              cache: bool) -> Turn:
    """A Turn whose texts are every string of `sources`; in lean mode, for a large body,
    none are walked and the body's size stands in for them."""
    if lean and len(raw) > LEAN_MIN_BYTES:
        return Turn((), tool, result, cache, len(raw))
    return Turn(tuple(s for value in sources for s in strings(value)), tool, result, cache)


def answer(turn: Turn, raw: bytes, text: str, chunks: int) -> Answer:
    if turn.lean_bytes:
        prompt = max(1, turn.lean_bytes // 4)
        # 24 hex digits like the SHA-256 ids: the CRC, then the size to spread them.
        ident = f"{zlib.crc32(raw):08x}{turn.lean_bytes:016x}"
    else:
        prompt = max(1, sum(map(len, turn.texts)) // 4)
        ident = hashlib.sha256(raw).hexdigest()[:24]
    cached = prompt // 2 if turn.cache else 0
    if turn.tool is not None:
        arguments = orjson.dumps(tool_arguments(turn.tool)).decode()
        # At least two pieces so clients must join them; never more than characters,
        # which would repeat the JSON.
        pieces = split_text(arguments, min(max(2, chunks), len(arguments)))
        return Answer("", pieces, turn.tool, arguments, prompt, cached, words(arguments), ident)
    if turn.tool_result is not None:
        text = f"The tool returned: {turn.tool_result[:200]}"
    pieces = split_text(text, chunks)
    text = "".join(pieces)
    return Answer(text, pieces, None, "", prompt, cached, words(text), ident)


def embedding(text: str, dims: int) -> list[float]:
    """A deterministic vector; values k/128 are exact in float32, so base64 round trips."""
    digest = b""
    counter = 0
    while len(digest) < dims:
        digest += hashlib.sha256(f"{counter}:{text}".encode()).digest()
        counter += 1
    return [(byte - 128) / 128 for byte in digest[:dims]]


def sse(event: str, data: Any) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def sse_data(data: Any) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


def bearer(value: str | None) -> str | None:
    if value and value[:7].lower() == "bearer ":
        return value[7:].strip()
    return None


def phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Overloaded" if status == 529 else "Error"


def retry_after(status: int) -> dict[str, str]:
    return {"retry-after": "7"} if status == 429 else {}


