"""Every refusal and fault answers in the provider's envelope, never a traceback or a hang."""

import time

import anthropic
import httpx
import openai
import orjson
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from sdk_helpers import assert_no_gateway_key

from aiogw.keys import KeyIndex

HI = [{"role": "user", "content": "hi"}]


def claude(gw, route="anthropic", key=None, **kw):
    return anthropic.Anthropic(api_key=key or gw.key, base_url=gw.url(route), max_retries=0, **kw)


def gpt(gw, route="openai", key=None):
    return openai.OpenAI(api_key=key or gw.key, base_url=gw.url(route) + "/v1", max_retries=0)


def gemini(gw, key=None):
    return genai.Client(api_key=key or gw.key, http_options=types.HttpOptions(base_url=gw.url("google")))


def test_missing_key_in_each_envelope(gw):
    r = httpx.post(gw.url("anthropic") + "/v1/messages", json={"model": "m", "messages": HI})
    assert r.status_code == 401
    assert r.json()["type"] == "error" and r.json()["error"]["type"] == "authentication_error"
    assert "gateway key" in r.json()["error"]["message"]
    r = httpx.post(gw.url("openai") + "/v1/chat/completions", json={"model": "m", "messages": HI})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    r = httpx.post(gw.url("google") + "/v1beta/models/g:generateContent", json={})
    assert r.status_code == 401 and r.json()["error"]["status"] == "UNAUTHENTICATED"
    assert gw.fake.received == []
    assert gw.last_exchange().outcome == "refused"


def test_unknown_key_raises_each_sdks_auth_error(gw):
    with pytest.raises(anthropic.AuthenticationError):
        claude(gw, key="aiogw-not-a-key").messages.create(model="m", max_tokens=1, messages=HI)
    with pytest.raises(openai.AuthenticationError):
        gpt(gw, key="aiogw-not-a-key").chat.completions.create(model="m", messages=HI)
    client = gemini(gw, key="aiogw-not-a-key")  # held: the genai client closes itself when collected
    with pytest.raises(genai_errors.ClientError) as info:
        client.models.generate_content(model="g", contents="hi")
    assert info.value.code == 401
    assert gw.fake.received == []


def test_a_provider_key_sent_as_gateway_key_gets_a_hint(gw):
    with pytest.raises(anthropic.AuthenticationError, match="looks like a provider key"):
        claude(gw, key="sk-ant-api03-something").messages.create(model="m", max_tokens=1, messages=HI)


def test_revoked_key_is_refused_from_5_ms_after(gw):

    record, key = gw.create_key("bob")
    assert claude(gw, key=key).messages.create(model="m", max_tokens=8, messages=HI).content
    assert gw.last_exchange().user == "bob"
    gw.revoke_key(record.id)
    time.sleep(KeyIndex.RECHECK)  # the documented bound: the gateway looks at most this often
    with pytest.raises(anthropic.AuthenticationError, match="this gateway key was revoked"):
        claude(gw, key=key).messages.create(model="m", max_tokens=8, messages=HI)
    # Audited under its user and key: the operator sees who goes on using it.
    refused = gw.wait_for(lambda: next((e for e in gw.exchanges if e.outcome == "refused"), None))
    assert (refused.user, refused.key_id, refused.status, refused.reason) == ("bob", record.id, 401, "auth:revoked")


def test_key_of_a_user_no_longer_configured(gw):

    _, key = gw.create_key("mallory")  # not in the gateway's [[users]]
    with pytest.raises(anthropic.AuthenticationError, match="no longer in the gateway's config"):
        claude(gw, key=key).messages.create(model="m", max_tokens=8, messages=HI)


def test_unknown_route_and_outside_mount(gw):
    with pytest.raises(anthropic.NotFoundError, match="no route named 'nope'"):
        claude(gw, route="nope").messages.create(model="m", max_tokens=1, messages=HI)
    r = httpx.get(gw.base.rsplit("/", 1)[0] + "/elsewhere/v1/models")
    assert r.status_code == 404 and r.json()["error"]["type"] == "invalid_request_error"


def test_escaping_paths_are_refused(gw):
    for path in ("/v1/%2e%2e/%2e%2e/admin", "/v1%2fmessages", "/v1/..%5cadmin"):
        r = httpx.get(gw.url("openai") + path, headers={"Authorization": f"Bearer {gw.key}"})
        assert r.status_code == 400, path
    assert gw.fake.received == []


def test_body_over_limit(gw):
    from conftest import MAX_BODY

    big = "x" * (MAX_BODY + 10)
    with pytest.raises(anthropic.APIStatusError) as info:
        claude(gw).messages.create(model="m", max_tokens=1, messages=[{"role": "user", "content": big}])
    assert info.value.status_code == 413
    assert info.value.body["error"]["type"] == "request_too_large"
    # Chunked upload without Content-Length: refused all the same.
    r = httpx.post(
        gw.url("openai") + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {gw.key}"},
        content=iter([b"x" * 65536] * (MAX_BODY // 65536 + 2)),
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    assert gw.fake.received == []


def test_a_compressed_request_body_is_read_decoded_and_bounded_decoded(gw):
    """aiohttp decodes a request body sent with Content-Encoding: gzip. The guards and
    the audit read the decoded body, the upstream gets it decoded and not labelled
    compressed, and the size limit applies to what it decodes to (a gzip bomb is 413)."""
    import gzip

    from conftest import MAX_BODY

    body = orjson.dumps({"model": "m", "max_tokens": 1, "messages": HI})
    headers = {"x-api-key": gw.key, "content-type": "application/json", "content-encoding": "gzip",
               "anthropic-version": "2023-06-01"}
    r = httpx.post(gw.url("anthropic") + "/v1/messages", content=gzip.compress(body), headers=headers)
    assert r.status_code == 200 and r.json()["type"] == "message"
    got = gw.fake.received[-1]
    assert got.body == body and "content-encoding" not in got.headers

    bomb = gzip.compress(b'{"model": "m", "messages": [], "pad": "' + b"x" * (MAX_BODY + 10) + b'"}')
    assert len(bomb) < MAX_BODY // 10
    r = httpx.post(gw.url("anthropic") + "/v1/messages", content=bomb, headers=headers)
    assert r.status_code == 413 and r.json()["error"]["type"] == "request_too_large"
    assert len(gw.fake.received) == 1


def test_a_large_body_under_the_limit_goes_through_byte_for_byte(gw):
    content = "y" * (2 * 1024 * 1024)  # Claude Code's second turn is past aiohttp's 1 MiB default
    claude(gw).messages.create(model="m", max_tokens=1, messages=[{"role": "user", "content": content}])
    assert content.encode() in gw.fake.received[-1].body


@pytest.mark.parametrize(
    ("route", "path", "body", "check"),
    [
        ("anthropic", "/v1/messages", b"{not json", lambda j: j["error"]["type"] == "invalid_request_error"),
        ("openai", "/v1/chat/completions", b"[1,2]", lambda j: j["error"]["type"] == "invalid_request_error"),
        ("google", "/v1beta/models/g:generateContent", b"", lambda j: j["error"]["status"] == "INVALID_ARGUMENT"),
    ],
)
def test_body_that_is_not_a_json_object(gw, route, path, body, check):
    r = httpx.post(
        gw.url(route) + path, content=body, headers={"x-api-key": gw.key, "content-type": "application/json"}
    )
    assert r.status_code == 400 and check(r.json())
    assert gw.fake.received == []


def test_upstream_unreachable(gw):
    with pytest.raises(openai.APIStatusError) as info:
        gpt(gw, route="openai-dead").chat.completions.create(model="m", messages=HI)
    assert info.value.status_code == 502
    assert "cannot reach the upstream of route 'openai-dead'" in info.value.message
    assert gw.last_exchange().outcome == "upstream_error"


def test_route_without_credential(gw):
    with pytest.raises(openai.InternalServerError, match="NOT_SET_ANYWHERE"):
        gpt(gw, route="openai-nocred").chat.completions.create(model="m", messages=HI)
    assert gw.fake.received == []


def test_connect_timeout(gw):
    with pytest.raises(openai.APIStatusError) as info:
        gpt(gw, route="openai-blackhole").chat.completions.create(model="m", messages=HI)
    assert info.value.status_code == 504
    assert info.value.body["type"] == "server_error"
    assert gw.last_exchange().reason == "upstream_timeout"


def test_first_byte_timeout(gw):
    with pytest.raises(anthropic.APIStatusError) as info:
        claude(gw, route="anthropic-slow", default_headers={"x-fake-fault": "stall"}).messages.create(
            model="m", max_tokens=1, messages=HI
        )
    assert info.value.status_code == 504
    assert gw.last_exchange().reason == "upstream_timeout"


def read_stream(client):
    """Iterate a Messages stream; return the event types seen and what ended it."""
    seen = []
    try:
        with client.messages.stream(model="m", max_tokens=64, messages=HI) as s:
            for event in s:
                seen.append(event.type)
    except Exception as exc:
        return seen, type(exc)
    return seen, None


@pytest.mark.parametrize(("route", "fault"), [("anthropic-slow", "stall-mid"), ("anthropic", "die")])
def test_broken_stream_reaches_the_client_as_it_would_direct(gw, route, fault):
    # Silence past the idle timeout, or an upstream that dies: the client keeps what
    # arrived, then sees the same truncated stream it would see from the provider.
    seen, raised = read_stream(claude(gw, route=route, default_headers={"x-fake-fault": fault}))
    direct = anthropic.Anthropic(
        api_key="sk-ant-fake", base_url=gw.fake_url, max_retries=0, default_headers={"x-fake-fault": "die"}
    )
    direct_seen, direct_raised = read_stream(direct)
    assert seen == direct_seen and seen[0] == "message_start"
    assert raised is direct_raised and raised is not None
    assert gw.wait_for(lambda: gw.exchanges and gw.exchanges[-1].outcome == "upstream_aborted")


@pytest.mark.parametrize("status", [429, 500, 529])
def test_upstream_error_statuses_are_relayed_unchanged(gw, status):
    c = claude(gw, default_headers={"x-fake-fault": f"status={status}"})
    with pytest.raises(anthropic.APIStatusError) as info:
        c.messages.create(model="m", max_tokens=1, messages=HI)
    direct = anthropic.Anthropic(
        api_key="sk-ant-fake", base_url=gw.fake_url, max_retries=0, default_headers={"x-fake-fault": f"status={status}"}
    )
    with pytest.raises(anthropic.APIStatusError) as direct_info:
        direct.messages.create(model="m", max_tokens=1, messages=HI)
    assert info.value.status_code == direct_info.value.status_code == status
    assert info.value.body == direct_info.value.body
    assert type(info.value) is type(direct_info.value)
    assert info.value.response.headers.get("retry-after") == direct_info.value.response.headers.get("retry-after")
    assert info.value.response.headers["request-id"].startswith("req_")
    assert gw.last_exchange().outcome == "upstream_error"


def test_openai_rate_limit_relayed_with_retry_after(gw):
    c = openai.OpenAI(
        api_key=gw.key, base_url=gw.url("openai") + "/v1", max_retries=0, default_headers={"x-fake-fault": "status=429"}
    )
    with pytest.raises(openai.RateLimitError) as info:
        c.chat.completions.create(model="m", messages=HI)
    assert info.value.response.headers.get("retry-after")
    assert_no_gateway_key(gw)
