"""Google Gemini API (generativelanguage), under /v1beta/ and /v1/."""

from __future__ import annotations

from aiogw.dialects.base import OTHER, Dialect, Endpoint, dumps

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


class Gemini(Dialect):
    name = "gemini"
    credential_header = "x-goog-api-key"

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

    def error_body(self, status: int, message: str) -> bytes:
        code = _STATUS.get(status, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT")
        return dumps({"error": {"code": status, "message": message, "status": code}})


GEMINI = Gemini()
