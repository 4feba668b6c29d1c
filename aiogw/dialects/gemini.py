"""Google Gemini API (generativelanguage), under /v1beta/ and /v1/."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from aiogw.dialects.base import OTHER, Answer, Dialect, Endpoint, PartKeys, RequestParts, Usage, dumps, split
from aiogw.dialects.gemini_texts import GENERATE, WRAPPED, answer_pieces, embed_texts, wrapped_texts
from aiogw.dialects.reading import (
    BROKEN,
    Folded,
    Texts,
    as_dict,
    as_int,
    as_list,
    as_str,
    dict_at,
    list_at,
    load,
    looks_like_json,
    sse_data,
)
from aiogw.dialects.shape import Shape
from aiogw.dialects.walk import Text
from aiogw.jsonstream import JSONArraySplitter

_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

# `models/{model}:{method}` → endpoint name; the model is in the path, not the body.
_METHODS = {
    "generateContent": "generate",
    "streamGenerateContent": "stream_generate",
    "countTokens": "count_tokens",
    "embedContent": "embed",
    "batchEmbedContents": "embed",
}

# Google's JSON parser takes proto field names as well as lowerCamel ones, and Google's
# own curl examples write `system_instruction`; both must split (and rebuild) exactly.
_CAMEL = PartKeys(system="systemInstruction", messages="contents", tools="tools")
_SNAKE = PartKeys(system="system_instruction", messages="contents", tools="tools")
_CONVERSATION = frozenset({"generate", "stream_generate", "count_tokens"})


class Gemini(Dialect):
    name = "gemini"
    credential_header = "x-goog-api-key"
    # The Gemini API sends no request id header (its body carries `responseId`).
    request_id_headers = ()
    allowed = ("GET /v1beta/models/*", "GET /v1/models/*")

    def endpoint(self, method: str, path: str) -> Endpoint:
        version, _, rest = path[1:].partition("/")
        if version not in ("v1beta", "v1") or not rest.startswith("models"):
            return OTHER
        if rest == "models":
            return Endpoint("models") if method == "GET" else OTHER
        model, _, call = rest[len("models/") :].rpartition(":")
        name = _METHODS.get(call)
        if method != "POST" or name is None or not model:
            return OTHER
        return Endpoint(name, json=True, stream=name == "stream_generate", model=model)

    def error_body(self, status: int, message: str, retry_after: int | None = None) -> bytes:
        code = _STATUS.get(status, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT")
        error: dict = {"code": status, "message": message, "status": code}
        if retry_after is not None:  # where Google's clients look for how long to wait
            error["details"] = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_after}s"}]
        return dumps({"error": error})

    def stream_error(self, message: str, json_array: bool) -> bytes:
        body = dumps({"error": {"code": 403, "message": message, "status": "PERMISSION_DENIED"}})
        # The array's last element, and its close; or one more SSE event.
        return b",\r\n" + body + b"]" if json_array else b"data: " + body + b"\r\n\r\n"

    def shape(self, endpoint: str, body: dict[str, Any]) -> Shape | None:
        if endpoint == "embed" or (endpoint == "count_tokens" and isinstance(body.get(WRAPPED), dict)):
            return None
        return GENERATE

    def request_texts(self, endpoint: str, body: dict[str, Any]) -> list[Text]:
        s = self.shape(endpoint, body)
        if s is not None:
            return s.texts(body)
        return embed_texts(body) if endpoint == "embed" else wrapped_texts(body)

    def answer_pieces(self, data: dict[str, Any]) -> Iterator[Any]:
        return answer_pieces(data)

    def request_parts(self, endpoint: str, body: dict[str, Any]) -> RequestParts:
        if endpoint not in _CONVERSATION:
            return RequestParts(rest=dict(body))
        wrapped = as_dict(body.get(WRAPPED))
        within = WRAPPED if wrapped and "contents" not in body else None
        target = wrapped if within else body
        keys = _SNAKE if "system_instruction" in target and "systemInstruction" not in target else _CAMEL
        return split(body, keys, within)

    def json_answer(self, endpoint: str, data: dict[str, Any]) -> Answer:
        if isinstance(data.get("error"), dict):
            return Answer(complete=True, error=data)
        return _answer(Folded(data, as_dict(data.get("usageMetadata")), True))

    def stream_usage(self, endpoint: str, body: bytes) -> Usage | None:
        return stream_usage(body) if endpoint == "stream_generate" else None

    def json_usage(self, endpoint: str, data: dict[str, Any]) -> Usage:
        if isinstance(data.get("error"), dict):
            return Usage()  # as json_answer reads it
        return usage(as_dict(data.get("usageMetadata")))

    def stream_answer(self, endpoint: str, body: bytes) -> Answer:
        """SSE (`alt=sse`) or the streamed JSON array, told apart by the first byte."""
        if looks_like_json(body, b"["):
            return _answer(_fold_array(body))
        events, clean = sse_data(body)
        merged = _Merge()
        for _, data in events:
            merged.chunk(data)
        # Gemini's SSE has no end marker: the body just ends. A stream cut on an event
        # boundary is told from a whole one by the finish reason the last chunk carries.
        return _answer(merged.folded(clean and merged.finished))


_USAGE_KEY = b'"usageMetadata"'


def stream_usage(body: bytes) -> Usage | None:
    """The usage `stream_answer` finds in an SSE stream (that of the last chunk with a
    usageMetadata), from that chunk alone; None when only the whole read can tell.

    The chunk is found by its key: a JSON string cannot hold `"usageMetadata"` unescaped,
    so the last place it occurs is a key, in the last chunk that has one. It is read only
    when it is a whole event of one data line (a blank line before and after, as an SSE
    event is only complete at its blank line) and the key is that chunk's own; anything
    else (a nested key of that name, an error chunk, a null) is read whole. So is a
    stream with a `\\u` escape after that chunk (a key can be spelled with escapes) or a
    lone CR in its line (SSE ends a line there, JSON does not)."""
    at = body.rfind(_USAGE_KEY)
    if at < 0 or looks_like_json(body, b"["):
        return None
    start = body.rfind(b"\n", 0, at) + 1
    end = body.find(b"\n", at)
    if end < 0 or not body.startswith((b"\n", b"\r\n"), end + 1):
        return None  # not followed by the blank line that ends an event
    if start and not body.endswith((b"\n\n", b"\n\r\n"), 0, start):
        return None  # not the event's first line
    line = body[start:end].removesuffix(b"\r")
    if not line.startswith(b"data:") or b"\r" in line or body.find(b"\\u", end) >= 0:
        return None
    data = load(line[5:])
    if not isinstance(data, dict) or isinstance(data.get("error"), dict) or data.get("usageMetadata") is None:
        return None
    return usage(as_dict(data["usageMetadata"]))


def usage(u: dict[str, Any]) -> Usage:
    """promptTokenCount includes the cached part; tool-use prompt tokens and thoughts
    are counted apart from prompt and candidates, and billed as input and output."""
    prompt = as_int(u.get("promptTokenCount"))
    cached = min(as_int(u.get("cachedContentTokenCount")), prompt)
    thoughts = as_int(u.get("thoughtsTokenCount"))
    return Usage(
        input=prompt - cached + as_int(u.get("toolUsePromptTokenCount")),
        output=as_int(u.get("candidatesTokenCount")) + thoughts,
        cache_read=cached,
        reasoning=thoughts,
    )


def _answer(folded: Folded) -> Answer:
    message = folded.message or {}
    first = as_dict(next(iter(as_list(message.get("candidates"))), None))
    return Answer(
        message=folded.message,
        usage=usage(folded.usage),
        model=as_str(message.get("modelVersion")),
        stop_reason=as_str(first.get("finishReason")),
        complete=folded.complete,
        error=folded.error,
    )


def _fold_array(body: bytes) -> Folded:
    splitter = JSONArraySplitter()
    merged = _Merge()
    for element in splitter.feed(body):
        parsed = load(element)
        merged.chunk(BROKEN if parsed is None else parsed)
    return merged.folded(splitter.close())  # False after a malformed array


class _Merge:
    """Stream chunks (each a GenerateContentResponse) merged into one.

    Text parts that follow each other are joined (thought text apart from answer text);
    every other part (functionCall, inlineData, …) is kept whole, as Gemini sends a
    function call whole in one chunk. Other fields of a candidate and of the response
    (finishReason, safetyRatings, usageMetadata, modelVersion, …): the last one wins.
    """

    __slots__ = ("_candidates", "_texts", "_top", "broken", "error")

    def __init__(self) -> None:
        self._texts = Texts()
        self._top: dict[str, Any] = {}
        self._candidates: dict[int, dict[str, Any]] = {}
        self.broken = False
        self.error: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        """The last chunk came: a candidate has its finish reason, or the prompt was
        blocked (then there are no candidates at all)."""
        blocked = as_dict(self._top.get("promptFeedback")).get("blockReason")
        return bool(blocked) or any(c.get("finishReason") for c in self._candidates.values())

    def chunk(self, data: Any) -> None:
        if data is BROKEN:
            self.broken = True
            return
        data = as_dict(data)
        if isinstance(data.get("error"), dict):
            self.error = data
            return
        for key, value in data.items():
            if key == "candidates":
                for candidate in map(as_dict, as_list(value)):
                    self._candidate(candidate)
            elif value is not None:
                self._top[key] = value

    def _candidate(self, candidate: dict[str, Any]) -> None:
        index = as_int(candidate.get("index"))
        merged = self._candidates.setdefault(index, {})
        for key, value in candidate.items():
            if key == "content" and isinstance(value, dict):
                content = dict_at(merged, "content")
                for ckey, cvalue in value.items():
                    if ckey == "parts":
                        parts = list_at(content, "parts")
                        for part in map(as_dict, as_list(cvalue)):
                            _add_part(parts, part, self._texts)
                    else:
                        content[ckey] = cvalue
            else:
                merged[key] = value

    def folded(self, ended: bool) -> Folded:
        self._texts.flush()
        if not self._top and not self._candidates:
            return Folded(None, {}, False, self.error)
        message = dict(self._top)
        if self._candidates:
            message["candidates"] = [self._candidates[i] for i in sorted(self._candidates)]
        complete = ended and not self.broken and self.error is None
        return Folded(message, as_dict(message.get("usageMetadata")), complete, self.error)


_TEXT_PART_KEYS = frozenset({"text", "thought", "thoughtSignature"})


def _add_part(parts: list[dict[str, Any]], part: dict[str, Any], texts: Texts) -> None:
    """Append a part, joining it to the previous text part when both are plain text of
    the same kind (thought or answer). A thought signature closes the part it is on (it
    signs what came before), so nothing is joined after it; Gemini often streams it
    last, on its own (empty or no text), and then it attaches to the part it closes —
    where the non-streaming response has it."""
    last = parts[-1] if parts else None
    text = part.get("text", "")
    if (
        last is None
        or not isinstance(last.get("text"), str)
        or not isinstance(text, str)
        or not part.keys() <= _TEXT_PART_KEYS
        or not last.keys() <= _TEXT_PART_KEYS
        or bool(last.get("thought")) != bool(part.get("thought"))
        or "thoughtSignature" in last
    ):
        parts.append(dict(part))
        return
    if text:
        texts.append(last, "text", text)
    if "thoughtSignature" in part:
        last["thoughtSignature"] = part["thoughtSignature"]


GEMINI = Gemini()
