from multidict import CIMultiDict, CIMultiDictProxy

from aiogw.config_routes import Credential, Route, Timeouts
from aiogw.dialects import DIALECTS
from aiogw.upstream import Upstream, accept_encoding, find_gateway_key, response_headers, strip_key_param


def headers(*pairs):
    return CIMultiDictProxy(CIMultiDict(pairs))


PROVIDER = Credential("env", "K", "sk-provider")


def upstream(dialect="anthropic", credential=PROVIDER):
    route = Route("r", dialect, "https://api.example", credential, Timeouts())
    return Upstream(route, DIALECTS[dialect], 10)


def test_gateway_key_places():
    assert find_gateway_key(headers(("x-api-key", "gk1")), "") == "gk1"
    assert find_gateway_key(headers(("Authorization", "Bearer gk2")), "") == "gk2"
    assert find_gateway_key(headers(("authorization", "bearer  gk3 ")), "") == "gk3"
    assert find_gateway_key(headers(("x-goog-api-key", "gk4")), "") == "gk4"
    assert find_gateway_key(headers(), "alt=sse&key=gk5") == "gk5"
    assert find_gateway_key(headers(("Authorization", "Basic abc")), "") is None
    assert find_gateway_key(headers(), "monkey=1") is None


def test_strip_key_param():
    assert strip_key_param("alt=sse&key=gk") == "alt=sse"
    assert strip_key_param("key=gk") == ""
    assert strip_key_param("alt=sse") == "alt=sse"
    assert strip_key_param("monkey=1&key=x") == "monkey=1"


def test_accept_encoding_keeps_what_the_tap_can_decode():
    assert accept_encoding("gzip, deflate, br, zstd") == "gzip, deflate"
    assert accept_encoding("br;q=1.0, gzip;q=0.5") == "gzip;q=0.5"
    assert accept_encoding("br") == "identity"


def test_request_headers_swap_the_credential():
    incoming = headers(
        ("Host", "gw:8080"),
        ("x-api-key", "gateway-key"),
        ("Authorization", "Bearer gateway-key"),
        ("anthropic-version", "2023-06-01"),
        ("anthropic-beta", "a,b"),
        ("Connection", "keep-alive, x-hop"),
        ("X-Hop", "1"),
        ("Content-Length", "10"),
        ("Transfer-Encoding", "chunked"),
        ("x-aiogw-key", "gk"),
        ("Accept-Encoding", "gzip, br"),
        ("X-Claude-Code-Session-Id", "s1"),
    )
    out = upstream().headers(incoming)
    assert dict(out) == {
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "a,b",
        "Accept-Encoding": "gzip",
        "X-Claude-Code-Session-Id": "s1",
        "x-api-key": "sk-provider",
    }


def test_each_dialect_puts_the_credential_in_its_header():
    plain = headers(("Authorization", "Bearer gk"))
    assert upstream("openai").headers(plain)["Authorization"] == "Bearer sk-provider"
    assert upstream("gemini").headers(plain)["x-goog-api-key"] == "sk-provider"
    assert "authorization" not in upstream("gemini").headers(plain)


def test_client_credential_route_passes_the_clients_key():
    incoming = headers(("x-api-key", "sk-ant-own"), ("x-aiogw-key", "gk"))
    out = upstream(credential=Credential("client")).headers(incoming)
    assert dict(out) == {"x-api-key": "sk-ant-own"}


def test_response_headers_drop_hop_by_hop_only():
    out = response_headers(
        headers(
            ("Content-Type", "text/event-stream"),
            ("Content-Encoding", "gzip"),
            ("Transfer-Encoding", "chunked"),
            ("Content-Length", "5"),
            ("Connection", "keep-alive"),
            ("request-id", "req_1"),
            ("retry-after", "7"),
            ("anthropic-ratelimit-requests-remaining", "9"),
        )
    )
    assert list(out.keys()) == [
        "Content-Type",
        "Content-Encoding",
        "request-id",
        "retry-after",
        "anthropic-ratelimit-requests-remaining",
    ]
