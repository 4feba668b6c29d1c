"""OpenAI Chat Completions, Responses, Embeddings (and every OpenAI-compatible server)."""

from __future__ import annotations

from typing import ClassVar

from aiogw.dialects.base import Dialect, Endpoint, dumps

# status → (type, code) in OpenAI's envelope; the SDK picks its exception by status.
_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "permission_denied"),
    404: ("invalid_request_error", "not_found"),
    413: ("invalid_request_error", "request_too_large"),
    429: ("requests", "rate_limit_exceeded"),
}


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

    def error_body(self, status: int, message: str) -> bytes:
        kind, code = _TYPES.get(status, ("server_error", None) if status >= 500 else ("invalid_request_error", None))
        return dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})


OPENAI = OpenAI()
