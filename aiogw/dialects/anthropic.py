"""Anthropic Messages API."""

from __future__ import annotations

from typing import ClassVar

from aiogw.dialects.base import Dialect, Endpoint, dumps

# https status → Anthropic error type, as its SDK maps them back to exceptions.
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


class Anthropic(Dialect):
    name = "anthropic"
    credential_header = "x-api-key"
    endpoints: ClassVar[dict[str, Endpoint]] = {
        "POST /v1/messages": Endpoint("messages", json=True),
        "POST /v1/messages/count_tokens": Endpoint("count_tokens", json=True),
        "GET /v1/models": Endpoint("models"),
    }

    def error_body(self, status: int, message: str) -> bytes:
        kind = _TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return dumps({"type": "error", "error": {"type": kind, "message": message}})


ANTHROPIC = Anthropic()
