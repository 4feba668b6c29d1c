"""The audit trail through the running gateway: what each exchange leaves behind."""

import gzip
import socket
import time
from urllib.parse import urlsplit

import anthropic
import httpx
import openai
import orjson
import pytest
from google import genai
from google.genai import types

from aiogw.audit import ids

HI = [{"role": "user", "content": "hi"}]
TOOLS = [
    {
        "name": "Bash",
        "description": "Run a command",
        "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]},
    }
]


def mark() -> str:
    return ids.bound(time.time() - 0.002)


def claude(gw, **kw):
    return anthropic.Anthropic(api_key=gw.key, base_url=gw.url("anthropic"), max_retries=0, **kw)


def shown(gw, ident):
    return gw.show(ident)


def test_plain_message_is_recorded_in_full(gw):
    since = mark()
    body = dict(
        model="claude-sonnet-4-6",
        max_tokens=64,
        system="Be brief.",
        tools=TOOLS,
        messages=[{"role": "user", "content": "what is in this repo?"}],
    )
    msg = claude(gw, default_headers={"User-Agent": "claude-cli/9 (test)"}).messages.create(
        **body, tool_choice={"type": "none"}
    )
    (row,) = gw.audited(since)
    assert (row["user"], row["key_id"], row["route"], row["dialect"], row["endpoint"]) == (
        "alice",
        gw.key_id,
        "anthropic",
        "anthropic",
        "messages",
    )
    assert (row["model"], row["stream"], row["status"], row["outcome"]) == ("claude-sonnet-4-6", 0, 200, "ok")
    assert row["input_tokens"] == msg.usage.input_tokens and row["output_tokens"] == msg.usage.output_tokens
    assert row["request_id"].startswith("req_")
    assert row["client"] == "127.0.0.1" and row["user_agent"] == "claude-cli/9 (test)"
    assert row["ttfb_ms"] is not None and row["duration_ms"] >= row["ttfb_ms"]
    record = shown(gw, row["id"])
    assert record["request"] == orjson.loads(gw.fake.received[-1].body)
    answer = record["response"]["message"]
    assert answer["id"] == msg.id and answer["content"][0]["text"] == msg.content[0].text


def test_stream_is_reconstructed_into_one_answer(gw):
    since = mark()
    c = claude(gw)
    with c.messages.stream(model="claude-sonnet-4-6", max_tokens=64, messages=HI) as s:
        final = s.get_final_message()
    (row,) = gw.audited(since)
    assert row["stream"] == 1 and row["outcome"] == "ok"
    assert row["input_tokens"] == final.usage.input_tokens and row["output_tokens"] == final.usage.output_tokens
    record = shown(gw, row["id"])
    assert record["response"]["complete"] is True
    assert record["response"]["message"]["content"][0]["text"] == final.content[0].text
    assert record["raw_stream"].startswith("event: message_start")


def test_tool_call_stream_assembles_the_input(gw):
    since = mark()
    with claude(gw).messages.stream(model="claude-sonnet-4-6", max_tokens=64, tools=TOOLS, messages=HI) as s:
        final = s.get_final_message()
    (row,) = gw.audited(since)
    block = shown(gw, row["id"])["response"]["message"]["content"][-1]
    assert block["type"] == "tool_use" and block["input"] == final.content[-1].input


@pytest.mark.parametrize("kind", ["chat", "responses"])
def test_openai_streams_are_reconstructed(gw, kind):
    since = mark()
    c = openai.OpenAI(api_key=gw.key, base_url=gw.url("openai") + "/v1", max_retries=0)
    if kind == "chat":
        chunks = list(c.chat.completions.create(model="gpt-4.1", messages=HI, stream=True))
        text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    else:
        events = list(c.responses.create(model="gpt-5-codex", input="hi", stream=True))
        text = events[-1].response.output_text
    (row,) = gw.audited(since)
    assert row["endpoint"] == kind and row["stream"] == 1
    response = shown(gw, row["id"])["response"]
    assert text and text in orjson.dumps(response).decode()
    if kind == "responses":
        assert row["input_tokens"] + row["output_tokens"] > 0


def test_gemini_stream_usage_from_the_last_chunk(gw):
    since = mark()
    client = genai.Client(api_key=gw.key, http_options=types.HttpOptions(base_url=gw.url("google")))
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="go"))
    (row,) = gw.audited(since)
    last = chunks[-1].usage_metadata
    assert row["model"] == "gemini-2.5-flash"
    assert row["output_tokens"] == last.candidates_token_count + (last.thoughts_token_count or 0)


def test_refusals_and_faults_are_recorded(gw):
    since = mark()
    httpx.post(gw.url("anthropic") + "/v1/messages", json={"model": "m", "messages": HI})  # no key
    with pytest.raises(anthropic.RateLimitError):
        claude(gw, default_headers={"x-fake-fault": "status=429"}).messages.create(model="m", max_tokens=1, messages=HI)
    with pytest.raises(Exception):  # noqa: B017 - the SDK's own error for a broken stream
        with claude(gw, default_headers={"x-fake-fault": "die"}).messages.stream(
            model="m", max_tokens=9, messages=HI
        ) as s:
            list(s)
    rows = gw.audited(since, 3)
    assert [(r["status"], r["outcome"]) for r in rows] == [
        (401, "refused"),
        (429, "upstream_error"),
        (200, "upstream_aborted"),
    ]
    assert rows[0]["reason"] == "auth" and rows[0]["user"] is None
    broken = shown(gw, rows[2]["id"])
    assert broken["response"]["complete"] is False


def test_client_abort_is_recorded(gw):
    since = mark()
    body = {"model": "m", "max_tokens": 32, "messages": HI, "stream": True}
    with httpx.stream(
        "POST",
        gw.url("anthropic") + "/v1/messages",
        json=body,
        headers={"x-api-key": gw.key, "x-fake-gate": "audit-abort"},
    ) as r:
        next(r.iter_raw())
    (row,) = gw.audited(since)
    gw.servers.call(gw.fake.open_gate, "audit-abort")
    assert row["outcome"] == "client_aborted" and row["stream"] == 1


def test_conversation_is_stored_once_and_linked(gw):
    c = claude(gw, default_headers={"X-Claude-Code-Session-Id": "sess-audit-1"})
    system = "You are a coding agent. " * 800  # a big system prompt, resent every turn
    tools = [{**TOOLS[0], "description": "Run a command in this conversation's sandbox"}]
    messages = [{"role": "user", "content": "start"}]
    blobs_before = gw.audit("SELECT count(*) AS n FROM blobs")[0]["n"]
    since = mark()
    for turn in range(4):
        answer = c.messages.create(
            model="claude-sonnet-4-6",
            max_tokens=32,
            system=system,
            tools=tools,
            messages=messages,
            tool_choice={"type": "none"},
        )
        messages = [
            *messages,
            {"role": "assistant", "content": answer.content[0].text},
            {"role": "user", "content": f"turn {turn} result " + "x" * 500},
        ]
    rows = gw.audited(since, 4)
    assert {r["conversation"] for r in rows} == {"sess-audit-1"}
    # System prompt and tools once; of the 1 + 2 + 2 + 2 messages sent, each distinct one
    # once: "start", three tool results, and the fake's answer (the same text each turn).
    assert gw.audit("SELECT count(*) AS n FROM blobs")[0]["n"] - blobs_before == 2 + 5
    # Without a session header the opening of the conversation links the turns.
    plain = claude(gw)
    since = mark()
    first = [{"role": "user", "content": "a fresh task 1234"}]
    plain.messages.create(model="m", max_tokens=8, messages=first)
    plain.messages.create(
        model="m",
        max_tokens=8,
        messages=[*first, {"role": "assistant", "content": "ok"}, {"role": "user", "content": "next"}],
    )
    a, b = gw.audited(since, 2)
    assert a["conversation"] == b["conversation"] and a["conversation"].startswith("p-")
    # The same opening on another route (another provider, in a real deployment) is
    # another conversation: a new user's trial saw two of its sessions merged.
    since = mark()
    other_route = anthropic.Anthropic(api_key=gw.key, base_url=gw.url("anthropic-gzip"), max_retries=0)
    other_route.messages.create(model="m", max_tokens=8, messages=first)
    (other,) = gw.audited(since, 1)
    assert other["conversation"].startswith("p-") and other["conversation"] != a["conversation"]


def test_probe_and_refused_paths_are_recorded_with_method_and_path(gw):
    since = mark()
    httpx.head(gw.url("anthropic") + "/")
    httpx.get(gw.url("openai") + "/v1/%2e%2e/admin", headers={"Authorization": f"Bearer {gw.key}"})
    probe, refused = gw.audited(since, 2)
    assert (probe["method"], probe["status"], probe["endpoint"], probe["outcome"]) == ("HEAD", 200, "probe", "ok")
    assert (refused["method"], refused["status"], refused["path"]) == ("GET", 400, "/llm-gateway/openai/v1/%2e%2e/admin")


@pytest.mark.parametrize("coding", ["identity", "gzip"])  # the two ways the proxy reads a body
def test_a_client_gone_mid_upload_is_recorded_and_nothing_goes_upstream(gw, caplog, coding):
    """A client that promises a body and leaves halfway (an agent killed while sending
    a big turn): nothing reaches the provider, no traceback, and the exchange is audited
    as the client's abort."""
    since = mark()
    received = len(gw.fake.received)
    url = urlsplit(gw.url("anthropic") + "/v1/messages")
    body = orjson.dumps({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x" * 5000}]})
    if coding == "gzip":
        body = gzip.compress(body)
    with socket.create_connection((url.hostname, url.port)) as sock:
        sock.sendall(
            f"POST {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nx-api-key: {gw.key}\r\n"
            f"content-type: application/json\r\ncontent-encoding: {coding}\r\n"
            f"content-length: {len(body)}\r\n\r\n".encode() + body[: len(body) // 2]
        )
    (row,) = gw.audited(since)
    assert (row["outcome"], row["status"], row["request_bytes"]) == ("client_aborted", 0, 0)
    assert len(gw.fake.received) == received
    assert "Traceback" not in caplog.text
