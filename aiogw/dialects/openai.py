"""OpenAI Chat Completions, Responses, Embeddings (and every OpenAI-compatible server)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from aiogw.dialects.base import Answer, Dialect, Endpoint, PartKeys, Usage, dumps
from aiogw.dialects.openai_chat import chat_usage, fold_chat, is_error_envelope
from aiogw.dialects.openai_responses import fold_responses, responses_usage
from aiogw.dialects.openai_texts import CHAT, RESPONSES, WHOLE, answer_pieces
from aiogw.dialects.reading import Folded, as_dict, as_int, as_list, as_str
from aiogw.dialects.shape import Shape
from aiogw.dialects.walk import Text

# status → (type, code) in OpenAI's envelope; the SDK picks its exception by status.
_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "permission_denied"),
    404: ("invalid_request_error", "not_found"),
    413: ("invalid_request_error", "request_too_large"),
    429: ("requests", "rate_limit_exceeded"),
}

# Chat keeps system and developer messages inside `messages`: there is no top-level system.
_CHAT_KEYS = PartKeys(system=None)
_RESPONSES_KEYS = PartKeys(system="instructions", messages="input", string_input=True)


class OpenAI(Dialect):
    name = "openai"
    credential_header = "authorization"
    credential_prefix = "Bearer "
    endpoints: ClassVar[dict[str, Endpoint]] = {
        "POST /v1/chat/completions": Endpoint("chat", json=True),
        "POST /v1/responses": Endpoint("responses", json=True),
        "POST /v1/responses/input_tokens": Endpoint("input_tokens", json=True),
        "POST /v1/embeddings": Endpoint("embeddings", json=True),
        "POST /v1/completions": Endpoint("completions", json=True),
        "GET /v1/models": Endpoint("models"),
    }
    part_keys: ClassVar[dict[str, PartKeys]] = {
        "chat": _CHAT_KEYS,
        "responses": _RESPONSES_KEYS,
        "input_tokens": _RESPONSES_KEYS,
    }
    request_id_headers = ("x-request-id",)
    allowed = ("GET /v1/models/*",)

    def error_body(self, status: int, message: str, retry_after: int | None = None) -> bytes:
        kind, code = _TYPES.get(status, ("server_error", None) if status >= 500 else ("invalid_request_error", None))
        return dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})

    def stream_error(self, message: str, json_array: bool) -> bytes:
        # The SDKs raise on any `data:` event that carries an `error` (chat and Responses).
        body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": "content_blocked"}}
        return b"data: " + dumps(body) + b"\n\n"

    def shape(self, endpoint: str, body: dict[str, Any]) -> Shape | None:
        if endpoint == "responses" or endpoint == "input_tokens":
            return RESPONSES
        # Embeddings and legacy completions have no history; any other endpoint, an
        # unknown one too, is read as chat.
        return None if endpoint in WHOLE else CHAT

    def request_texts(self, endpoint: str, body: dict[str, Any]) -> list[Text]:
        read = WHOLE.get(endpoint)
        return read(body) if read is not None else super().request_texts(endpoint, body)

    def answer_pieces(self, data: dict[str, Any]) -> Iterator[Any]:
        return answer_pieces(data)

    def asks_stream_usage(self, endpoint: str) -> bool:
        # A chat stream carries usage only in a last chunk the request asked for.
        return endpoint == "chat"

    def json_answer(self, endpoint: str, data: dict[str, Any]) -> Answer:
        if is_error_envelope(data):
            return Answer(complete=True, error=data)
        return self._answer(endpoint, Folded(data, as_dict(data.get("usage")), True))

    def stream_answer(self, endpoint: str, body: bytes) -> Answer:
        # An unknown endpoint streaming Responses events is read as Responses.
        if endpoint == "responses" or (endpoint != "chat" and b"response.created" in body[:4096]):
            return self._answer("responses", fold_responses(body))
        return self._answer(endpoint, fold_chat(body))

    def stream_usage(self, endpoint: str, body: bytes) -> Usage | None:
        found = chat_usage(body) if endpoint == "chat" else responses_usage(body) if endpoint == "responses" else None
        return usage(found) if found is not None else None

    def json_usage(self, endpoint: str, data: dict[str, Any]) -> Usage:
        if is_error_envelope(data):
            return Usage()  # as json_answer reads it
        return usage(as_dict(data.get("usage")))

    def _answer(self, endpoint: str, folded: Folded) -> Answer:
        message, error = folded.message or {}, folded.error
        if message.get("object") == "response" or endpoint == "responses":
            stop = _responses_stop_reason(message)
            error = error or as_dict(message.get("error")) or None  # a failed response
        else:
            first = as_dict(next(iter(as_list(message.get("choices"))), None))
            stop = as_str(first.get("finish_reason"))
        return Answer(
            message=folded.message,
            usage=usage(folded.usage),
            model=as_str(message.get("model")),
            stop_reason=stop,
            complete=folded.complete,
            error=error,
        )


def _responses_stop_reason(response: dict[str, Any]) -> str | None:
    """Responses has no finish reason: an incomplete response says why in
    `incomplete_details.reason` (e.g. max_output_tokens); otherwise its status stands."""
    return as_str(as_dict(response.get("incomplete_details")).get("reason")) or as_str(response.get("status"))


def usage(u: dict[str, Any]) -> Usage:
    """OpenAI counts cached tokens INSIDE the prompt, so the base-rate input is the
    prompt minus them. Chat and embeddings say prompt/completion, Responses input/output."""
    if "input_tokens" in u or "output_tokens" in u:
        prompt, output = as_int(u.get("input_tokens")), as_int(u.get("output_tokens"))
        cached = as_int(as_dict(u.get("input_tokens_details")).get("cached_tokens"))
        reasoning = as_int(as_dict(u.get("output_tokens_details")).get("reasoning_tokens"))
    else:
        prompt, output = as_int(u.get("prompt_tokens")), as_int(u.get("completion_tokens"))
        cached = as_int(as_dict(u.get("prompt_tokens_details")).get("cached_tokens"))
        reasoning = as_int(as_dict(u.get("completion_tokens_details")).get("reasoning_tokens"))
    cached = min(cached, prompt)
    return Usage(input=prompt - cached, output=output, cache_read=cached, reasoning=reasoning)


OPENAI = OpenAI()
