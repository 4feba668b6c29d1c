"""Shared checks for the SDK tests: same result direct and through the gateway."""

from __future__ import annotations

from typing import Any

# Fields a provider makes fresh for every response; everything else must be equal.
VOLATILE = frozenset({"id", "created", "created_at", "response_id", "responseId", "createTime", "item_id"})
# google-genai keeps the raw HTTP headers (date, server) in its results; they are no answer.
TRANSPORT = frozenset({"sdk_http_response"})


def stable(value: Any) -> Any:
    """A response's data with per-response ids and clocks removed, for comparison."""
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, dict):
        return {k: stable(v) for k, v in value.items() if k not in VOLATILE and k not in TRANSPORT}
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


def check_forwarded(
    gw, direct_index: int = -2, via_index: int = -1, provider_header: str = "", provider_key: str = ""
) -> None:
    """The upstream got byte-identical bodies both ways, the provider key, never the gateway key."""
    received = gw.fake.received
    direct, via = received[direct_index], received[via_index]
    assert via.body == direct.body
    assert via.path == direct.path
    if provider_header:
        assert via.headers.get(provider_header) == provider_key
    assert_no_gateway_key(gw)


def assert_no_gateway_key(gw) -> None:
    secret = gw.key.encode()
    for rec in gw.fake.received + gw.gzip_fake.received:
        assert secret not in rec.body
        assert gw.key not in rec.query
        assert all(gw.key not in v for v in rec.headers.values())
