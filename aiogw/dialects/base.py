"""The dialect contract: endpoint classification, credential header, error envelope."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import orjson


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One kind of provider call. `json` means the body must be a JSON object."""

    name: str
    json: bool = False
    stream: bool = False  # streaming is decided by the path itself (Gemini)
    model: str | None = None  # the model named by the path (Gemini)


OTHER = Endpoint("other")


class Dialect:
    """The base: subclasses set the tables and override what differs."""

    name = ""
    credential_header = ""
    credential_prefix = ""
    # Exact "METHOD path" → endpoint; path-shaped endpoints are handled in `endpoint`.
    endpoints: ClassVar[dict[str, Endpoint]] = {}

    def endpoint(self, method: str, path: str) -> Endpoint:
        return self.endpoints.get(f"{method} {path}", OTHER)

    def credential(self, secret: str) -> tuple[str, str]:
        """The header that carries the provider key upstream."""
        return self.credential_header, self.credential_prefix + secret

    def error_body(self, status: int, message: str) -> bytes:
        raise NotImplementedError


def dumps(obj: object) -> bytes:
    return orjson.dumps(obj)
