"""Anthropic's official SDK through the gateway sees what it sees direct."""

import anthropic
import pytest
from sdk_helpers import assert_no_gateway_key, check_forwarded, stable

TOOLS = [
    {
        "name": "Bash",
        "description": "Run a shell command",
        "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]},
    }
]


def clients(gw):
    direct = anthropic.Anthropic(api_key="sk-ant-fake", base_url=gw.fake_url, max_retries=0)
    via = anthropic.Anthropic(api_key=gw.key, base_url=gw.url("anthropic"), max_retries=0)
    return direct, via


def test_message(gw):
    direct, via = clients(gw)
    kwargs = dict(
        model="claude-sonnet-4-6", max_tokens=256, system="Be brief.", messages=[{"role": "user", "content": "hi"}]
    )
    a, b = direct.messages.create(**kwargs), via.messages.create(**kwargs)
    assert stable(b) == stable(a)
    assert b.usage.input_tokens > 0
    check_forwarded(gw, provider_header="x-api-key", provider_key="sk-ant-fake")
    ex = gw.last_exchange()
    assert (ex.user, ex.route, ex.endpoint, ex.model, ex.stream, ex.status) == (
        "alice",
        "anthropic",
        "messages",
        "claude-sonnet-4-6",
        False,
        200,
    )


def test_bearer_key_as_claude_code_auth_token(gw):
    via = anthropic.Anthropic(auth_token=gw.key, base_url=gw.url("anthropic"), max_retries=0)
    msg = via.messages.create(model="claude-haiku-4-5", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
    assert msg.content[0].type == "text"
    rec = gw.fake.received[-1]
    assert rec.headers["x-api-key"] == "sk-ant-fake"
    assert "authorization" not in rec.headers
    assert_no_gateway_key(gw)


def test_stream_with_beta_query_and_headers(gw):
    direct, via = clients(gw)
    kwargs = dict(
        model="claude-sonnet-4-6",
        max_tokens=256,
        messages=[{"role": "user", "content": "tell me"}],
        extra_headers={
            "anthropic-beta": "interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14",
            "X-Claude-Code-Session-Id": "sess-1",
        },
        extra_query={"beta": "true"},
    )
    with direct.messages.stream(**kwargs) as s:
        direct_events = [stable(e) for e in s]
        direct_final = s.get_final_message()
    with via.messages.stream(**kwargs) as s:
        via_events = [stable(e) for e in s]
        via_final = s.get_final_message()
    assert via_events == direct_events
    assert stable(via_final) == stable(direct_final)
    check_forwarded(gw)
    rec = gw.fake.received[-1]
    assert rec.query == "beta=true"
    assert rec.headers["anthropic-beta"] == "interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14"
    assert rec.headers["anthropic-version"] == gw.fake.received[-2].headers["anthropic-version"]
    assert rec.headers["x-claude-code-session-id"] == "sess-1"
    ex = gw.last_exchange()
    assert ex.stream and ex.outcome == "ok"


def test_tool_round_trip_streaming(gw):
    _, via = clients(gw)
    messages = [{"role": "user", "content": "list files"}]
    with via.messages.stream(model="claude-sonnet-4-6", max_tokens=256, tools=TOOLS, messages=messages) as s:
        first = s.get_final_message()
    assert first.stop_reason == "tool_use"
    (call,) = [b for b in first.content if b.type == "tool_use"]
    assert call.name == "Bash" and "command" in call.input
    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "README.md setup.cfg"}],
        },
    ]
    second = via.messages.create(model="claude-sonnet-4-6", max_tokens=256, tools=TOOLS, messages=messages)
    assert "README.md setup.cfg" in second.content[0].text


def test_count_tokens_and_models(gw):
    direct, via = clients(gw)
    kwargs = dict(model="claude-sonnet-4-6", messages=[{"role": "user", "content": "count me please"}])
    assert via.messages.count_tokens(**kwargs).input_tokens == direct.messages.count_tokens(**kwargs).input_tokens
    check_forwarded(gw)
    models = via.models.list(limit=1000)
    assert [m.id for m in models.data] == [m.id for m in direct.models.list(limit=1000).data]
    assert gw.fake.received[-2].query == "limit=1000"


def test_head_probe_answers_without_upstream(gw):
    import httpx

    r = httpx.head(gw.url("anthropic") + "/")
    assert r.status_code == 200
    assert gw.fake.received == []


def test_client_credential_route(gw):
    via = anthropic.Anthropic(
        api_key="sk-ant-fake",
        base_url=gw.url("anthropic-own-key"),
        max_retries=0,
        default_headers={"x-aiogw-key": gw.key},
    )
    msg = via.messages.create(model="claude-haiku-4-5", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
    assert msg.content[0].type == "text"
    # This SDK sends its api_key as a Bearer token; the route passes it through as sent.
    assert gw.fake.received[-1].headers["authorization"] == "Bearer sk-ant-fake"
    assert gw.last_exchange().user == "alice"
    assert_no_gateway_key(gw)
    # Without the gateway header the client's own provider key alone is not enough.
    bare = anthropic.Anthropic(api_key="sk-ant-fake", base_url=gw.url("anthropic-own-key"), max_retries=0)
    with pytest.raises(anthropic.AuthenticationError, match="x-aiogw-key"):
        bare.messages.create(model="claude-haiku-4-5", max_tokens=16, messages=[{"role": "user", "content": "hi"}])


def test_gzip_upstream_is_relayed_compressed_and_decodes(gw):
    via = anthropic.Anthropic(api_key=gw.key, base_url=gw.url("anthropic-gzip"), max_retries=0)
    kwargs = dict(model="claude-sonnet-4-6", max_tokens=64, messages=[{"role": "user", "content": "hi"}])
    msg = via.messages.create(**kwargs)
    assert msg.content[0].text
    with via.messages.stream(**kwargs) as s:
        text = "".join(s.text_stream)
    assert text == msg.content[0].text
    assert gw.gzip_fake.received[-1].headers.get("accept-encoding", "").startswith("gzip")
