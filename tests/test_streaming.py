"""Streams are relayed as they arrive, and both ends are respected."""

import httpx
import orjson
import pytest

HI = [{"role": "user", "content": "hi"}]


def post_stream(gw, route, path, body, **headers):
    headers.setdefault("x-api-key", gw.key)
    return httpx.stream("POST", gw.url(route) + path, json=body, headers=headers, timeout=10)


def test_each_chunk_reaches_the_client_before_the_next_is_sent(gw):
    # The fake holds every chunk after the first until the gate opens: a gateway that
    # buffered anything would leave the client waiting here until the test times out.
    body = {"model": "m", "max_tokens": 32, "messages": HI, "stream": True}
    with post_stream(gw, "anthropic", "/v1/messages", body, **{"x-fake-gate": "nobuffer"}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["x-accel-buffering"] == "no"
        chunks = r.iter_raw()
        first = next(chunks)
        assert first.startswith(b"event: message_start")
        gw.servers.call(gw.fake.open_gate, "nobuffer")
        rest = b"".join(chunks)
    assert rest.rstrip().endswith(b'data: {"type":"message_stop"}')
    assert gw.last_exchange().outcome == "ok"


def test_client_leaving_mid_stream_closes_the_upstream_at_once(gw):
    before = gw.fake.aborted
    body = {"model": "m", "max_tokens": 32, "messages": HI, "stream": True}
    with post_stream(gw, "anthropic", "/v1/messages", body, **{"x-fake-gate": "leave"}) as r:
        next(r.iter_raw())
    # The client is gone. The gateway must have ended the exchange and closed upstream
    # before the upstream sends anything more...
    assert gw.wait_for(lambda: gw.exchanges and gw.exchanges[-1].outcome == "client_aborted")
    gw.servers.call(gw.fake.open_gate, "leave")
    # ...so the upstream's next write finds the connection closed.
    assert gw.wait_for(lambda: gw.fake.aborted == before + 1)


def test_client_leaving_before_the_first_byte_closes_the_upstream(gw):
    before = gw.fake.aborted
    body = {"model": "m", "max_tokens": 32, "messages": HI}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            gw.url("anthropic") + "/v1/messages",
            json=body,
            timeout=httpx.Timeout(5, read=0.3),
            headers={"x-api-key": gw.key, "x-fake-fault": "stall"},
        )
    assert gw.wait_for(lambda: gw.exchanges and gw.exchanges[-1].outcome == "client_aborted")
    assert gw.wait_for(lambda: gw.fake.aborted == before + 1)


def test_gemini_stream_without_alt_sse_is_a_json_array(gw):
    body = {"contents": [{"role": "user", "parts": [{"text": "go"}]}]}
    with post_stream(
        gw, "google", "/v1beta/models/gemini-2.5-flash:streamGenerateContent", body, **{"x-goog-api-key": gw.key}
    ) as r:
        pieces = list(r.iter_raw())
    data = orjson.loads(b"".join(pieces))
    assert isinstance(data, list) and len(data) > 1
    assert all("usageMetadata" in item for item in data)
    assert gw.last_exchange().stream


def test_openai_stream_ends_with_done(gw):
    body = {"model": "gpt-4.1", "messages": HI, "stream": True}
    with post_stream(gw, "openai", "/v1/chat/completions", body, authorization=f"Bearer {gw.key}") as r:
        raw = b"".join(r.iter_raw())
    assert raw.rstrip().endswith(b"data: [DONE]")


def test_gzip_stream_relayed_compressed(gw):
    body = {"model": "m", "max_tokens": 32, "messages": HI, "stream": True}
    with post_stream(gw, "anthropic-gzip", "/v1/messages", body, **{"accept-encoding": "gzip"}) as r:
        assert r.headers["content-encoding"] == "gzip"
        text = b"".join(r.iter_bytes())  # decoded by the client
    assert b"message_stop" in text
    r = httpx.post(
        gw.url("anthropic-gzip") + "/v1/messages",
        json={"model": "m", "max_tokens": 8, "messages": HI},
        headers={"x-api-key": gw.key, "accept-encoding": "gzip"},
    )
    assert r.headers["content-encoding"] == "gzip" and r.json()["type"] == "message"
