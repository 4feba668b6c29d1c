"""The fake upstream, driven directly by the official SDKs and by a raw aiohttp client."""

from __future__ import annotations

import asyncio
import json
import logging
import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import anthropic
import openai
import pytest
import pytest_asyncio
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from aiogw.fake_upstream import (
    DEFAULT_TEXT,
    SHELL_COMMAND,
    FakeConfig,
    FakeUpstream,
    Received,
)

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.timeout(20),
    # google-genai's async client subclasses aiohttp.ClientSession, which aiohttp warns about.
    pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning"),
]

CLAUDE = "claude-sonnet-4-6"
GEMINI_MODEL = "gemini-2.5-flash"
BASH_TOOL = {
    "name": "Bash",
    "description": "Run a shell command",
    "input_schema": {
        "type": "object",
        "properties": {"command": {"type": "string"}, "timeout": {"type": "number"}},
        "required": ["command"],
    },
}


# -- fixtures and helpers --------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_server_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """No test may make the server log an error or a traceback."""
    caplog.set_level(logging.WARNING, logger="aiohttp")
    yield
    # caplog.records alone would only hold this teardown's records.
    records = [*caplog.get_records("setup"), *caplog.get_records("call"), *caplog.records]
    noisy = [r for r in records if r.name.startswith("aiohttp") and r.levelno >= logging.ERROR]
    assert not noisy, [r.getMessage() for r in noisy]


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    server = FakeUpstream(FakeConfig())
    server.port = await server.start()  # type: ignore[attr-defined]
    yield server
    await server.stop()


def base(fake: FakeUpstream) -> str:
    return f"http://127.0.0.1:{fake.port}"  # type: ignore[attr-defined]


@pytest_asyncio.fixture
async def claude(fake: FakeUpstream) -> AsyncIterator[anthropic.AsyncAnthropic]:
    client = anthropic.AsyncAnthropic(api_key="sk-ant-fake", base_url=base(fake), max_retries=0)
    yield client
    await client.close()


@pytest_asyncio.fixture
async def oai(fake: FakeUpstream) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(api_key="sk-openai-fake", base_url=f"{base(fake)}/v1", max_retries=0)
    yield client
    await client.close()


def gemini_client(fake: FakeUpstream, key: str = "gemini-fake") -> genai.Client:
    options = genai_types.HttpOptions(base_url=base(fake), api_version="v1beta")
    return genai.Client(api_key=key, http_options=options)


@pytest_asyncio.fixture
async def gem(fake: FakeUpstream) -> AsyncIterator[Any]:
    client = gemini_client(fake)
    yield client.aio
    await client.aio.aclose()


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def sse_events(raw: bytes) -> list[tuple[str | None, Any]]:
    """(event name, parsed data) for each SSE event; [DONE] stays a string."""
    events = []
    for block in raw.replace(b"\r\n", b"\n").decode().split("\n\n"):
        name, data = None, None
        for line in block.splitlines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
        if data is not None:
            events.append((name, data if data == "[DONE]" else json.loads(data)))
    return events


ANTHROPIC_HEADERS = {"x-api-key": "sk-ant-fake", "anthropic-version": "2023-06-01"}
OPENAI_HEADERS = {"authorization": "Bearer sk-openai-fake"}
GEMINI_HEADERS = {"x-goog-api-key": "gemini-fake"}
HI = [{"role": "user", "content": "hi"}]
HELLO = {"model": CLAUDE, "max_tokens": 64, "stream": True, "messages": HI}
Session = aiohttp.ClientSession


async def wait_for(predicate: Any) -> None:
    """Poll a condition the server reaches asynchronously; the test timeout bounds it."""
    while not predicate():
        await asyncio.sleep(0.01)


# -- Anthropic -------------------------------------------------------------------------


async def test_anthropic_message(claude: anthropic.AsyncAnthropic, fake: FakeUpstream) -> None:
    raw = await claude.messages.with_raw_response.create(
        model=CLAUDE, max_tokens=64, system="be brief", messages=[{"role": "user", "content": "Say hello"}]
    )
    msg = await raw.parse()
    assert raw.headers["request-id"].startswith("req_")
    assert "anthropic-ratelimit-requests-remaining" in raw.headers
    assert msg.id.startswith("msg_") and msg.model == CLAUDE
    assert msg.content[0].text == DEFAULT_TEXT and msg.stop_reason == "end_turn"
    assert msg.usage.input_tokens >= 1 and msg.usage.output_tokens == len(DEFAULT_TEXT.split())
    assert msg.usage.cache_read_input_tokens == 0
    sent = fake.received[-1]
    assert isinstance(sent, Received) and sent.method == "POST" and sent.path == "/v1/messages"
    # This SDK sends its key as a bearer token; x-api-key works as well (see the raw tests).
    assert sent.headers["authorization"] == "Bearer sk-ant-fake"
    assert json.loads(sent.body)["system"] == "be brief"


async def test_anthropic_stream(claude: anthropic.AsyncAnthropic) -> None:
    async with claude.messages.stream(model=CLAUDE, max_tokens=64, messages=HI) as stream:
        deltas = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert len(deltas) == 5 and "".join(deltas) == DEFAULT_TEXT
    assert final.content[0].text == DEFAULT_TEXT
    assert final.usage.output_tokens == len(DEFAULT_TEXT.split()) and final.usage.input_tokens >= 1


async def test_anthropic_raw_stream_event_order(fake: FakeUpstream, http: Session) -> None:
    url = f"{base(fake)}/v1/messages?beta=true"
    headers = ANTHROPIC_HEADERS | {"x-fake-chunks": "3"}
    async with http.post(url, json=HELLO, headers=headers) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = sse_events(await resp.read())
    names = [name for name, _ in events]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * 3,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(data["type"] == name for name, data in events)
    usage = events[0][1]["message"]["usage"]
    assert usage["output_tokens"] == 1 and "cache_read_input_tokens" in usage
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn"
    assert fake.received[-1].query == "beta=true"


async def test_anthropic_tool_round_trip(claude: anthropic.AsyncAnthropic) -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "list files"}]
    first = await claude.messages.create(model=CLAUDE, max_tokens=64, tools=[BASH_TOOL], messages=messages)
    call = first.content[0]
    assert first.stop_reason == "tool_use" and call.type == "tool_use"
    assert call.name == "Bash" and call.input == {"command": SHELL_COMMAND}
    async with claude.messages.stream(model=CLAUDE, max_tokens=64, tools=[BASH_TOOL], messages=messages) as stream:
        streamed = await stream.get_final_message()
    assert streamed.content[0].input == call.input and streamed.stop_reason == "tool_use"
    messages += [
        {"role": "assistant", "content": [c.model_dump() for c in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "aiogw-fake-tool\n"}]},
    ]
    second = await claude.messages.create(model=CLAUDE, max_tokens=64, tools=[BASH_TOOL], messages=messages)
    assert second.stop_reason == "end_turn" and "aiogw-fake-tool" in second.content[0].text


async def test_anthropic_tool_stream_uses_json_deltas(fake: FakeUpstream, http: Session) -> None:
    body = HELLO | {"tools": [BASH_TOOL]}
    async with http.post(f"{base(fake)}/v1/messages", json=body, headers=ANTHROPIC_HEADERS) as resp:
        events = sse_events(await resp.read())
    assert events[1][1]["content_block"]["type"] == "tool_use"
    pieces = [d["delta"]["partial_json"] for n, d in events if n == "content_block_delta"]
    assert len(pieces) >= 2 and json.loads("".join(pieces)) == {"command": SHELL_COMMAND}


async def test_anthropic_count_tokens_models_and_cache(claude: anthropic.AsyncAnthropic) -> None:
    counted = await claude.messages.count_tokens(model=CLAUDE, messages=[{"role": "user", "content": "x" * 400}])
    assert counted.input_tokens == 100
    page = await claude.models.list(limit=2)
    assert len(page.data) == 2 and page.has_more and page.data[0].type == "model"
    cached = await claude.messages.create(
        model=CLAUDE,
        max_tokens=64,
        system=[{"type": "text", "text": "y" * 400, "cache_control": {"type": "ephemeral"}}],
        messages=HI,
    )
    assert cached.usage.cache_read_input_tokens > 0


# -- OpenAI ----------------------------------------------------------------------------


async def test_chat_completion(oai: openai.AsyncOpenAI) -> None:
    raw = await oai.chat.completions.with_raw_response.create(model="gpt-4o", messages=HI)
    done = raw.parse()
    assert raw.headers["x-request-id"] and raw.headers["x-ratelimit-remaining-requests"]
    assert done.choices[0].message.content == DEFAULT_TEXT and done.choices[0].finish_reason == "stop"
    assert done.usage.total_tokens == done.usage.prompt_tokens + done.usage.completion_tokens
    assert done.usage.prompt_tokens_details.cached_tokens == 0
    assert done.usage.completion_tokens_details.reasoning_tokens == 0


@pytest.mark.parametrize("include_usage", [False, True])
async def test_chat_stream_usage_only_when_asked(oai: openai.AsyncOpenAI, include_usage: bool) -> None:
    extra = {"stream_options": {"include_usage": True}} if include_usage else {}
    stream = await oai.chat.completions.create(model="gpt-4o", messages=HI, stream=True, **extra)
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == DEFAULT_TEXT
    usage_chunks = [c for c in chunks if c.usage is not None]
    if include_usage:
        assert len(usage_chunks) == 1 and usage_chunks[0] is chunks[-1] and not chunks[-1].choices
        assert usage_chunks[0].usage.completion_tokens == len(DEFAULT_TEXT.split())
    else:
        assert not usage_chunks and all(c.choices for c in chunks)


async def test_chat_tool_round_trip(oai: openai.AsyncOpenAI) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
                    "required": ["city", "unit"],
                },
            },
        }
    ]
    messages: list[dict[str, Any]] = [{"role": "user", "content": "weather?"}]
    stream = await oai.chat.completions.create(model="gpt-4o", messages=messages, tools=tools, stream=True)
    chunks = [c async for c in stream]
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].id.startswith("call_") and deltas[0].function.name == "get_weather"
    arguments = "".join(d.function.arguments or "" for d in deltas)
    assert len(deltas) >= 3 and json.loads(arguments) == {"city": "fake", "unit": "c"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    messages += [
        {
            "role": "assistant",
            "tool_calls": [
                {"id": deltas[0].id, "type": "function", "function": {"name": "get_weather", "arguments": arguments}}
            ],
        },
        {"role": "tool", "tool_call_id": deltas[0].id, "content": "sunny, 21 degrees"},
    ]
    done = await oai.chat.completions.create(model="gpt-4o", messages=messages, tools=tools)
    assert "sunny, 21 degrees" in done.choices[0].message.content


async def test_responses_stream_and_plain(oai: openai.AsyncOpenAI) -> None:
    async with oai.responses.stream(model="gpt-5", input="hi", instructions="be brief") as stream:
        types = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert types == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 5,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert final.output_text == DEFAULT_TEXT and final.usage.output_tokens == len(DEFAULT_TEXT.split())
    assert final.usage.input_tokens_details.cached_tokens == 0
    plain = await oai.responses.create(model="gpt-5", input=[{"role": "user", "content": "hi"}])
    assert plain.output_text == DEFAULT_TEXT and plain.usage.total_tokens > 0


async def test_responses_shell_call_round_trip(oai: openai.AsyncOpenAI, fake: FakeUpstream, http: Session) -> None:
    shell = {
        "type": "function",
        "name": "shell",
        "parameters": {
            "type": "object",
            "properties": {"command": {"type": "array", "items": {"type": "string"}}},
            "required": ["command"],
        },
    }
    body = {
        "model": "gpt-5",
        "stream": True,
        "tools": [shell],
        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "ls"}]}],
    }
    async with http.post(f"{base(fake)}/v1/responses", json=body, headers=OPENAI_HEADERS) as resp:
        events = sse_events(await resp.read())
    assert [d["sequence_number"] for _, d in events] == list(range(len(events)))
    assert all(name == data["type"] for name, data in events)
    names = [name for name, _ in events]
    assert names.count("response.function_call_arguments.delta") >= 2
    item = events[-2][1]["item"]
    assert item["type"] == "function_call" and names[-2] == "response.output_item.done"
    assert json.loads(item["arguments"]) == {"command": ["bash", "-lc", SHELL_COMMAND]}
    follow_up = await oai.responses.create(
        model="gpt-5",
        tools=[shell],
        input=[
            *body["input"],
            {k: item[k] for k in ("type", "call_id", "name", "arguments")},
            {"type": "function_call_output", "call_id": item["call_id"], "output": "aiogw-fake-tool"},
        ],
    )
    assert "aiogw-fake-tool" in follow_up.output_text


async def test_openai_input_tokens_embeddings_models(oai: openai.AsyncOpenAI) -> None:
    counted = await oai.responses.input_tokens.count(model="gpt-5", input="x" * 400)
    assert counted.input_tokens == 100
    packed = await oai.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    floats = await oai.embeddings.create(model="text-embedding-3-small", input=["a", "b"], encoding_format="float")
    assert [e.embedding for e in packed.data] == [e.embedding for e in floats.data]
    assert len(packed.data[0].embedding) == 16 and packed.data[0].embedding != packed.data[1].embedding
    assert packed.usage.prompt_tokens == packed.usage.total_tokens == 2
    models = await oai.models.list()
    assert any(m.id == "gpt-4o" for m in models.data)


# -- Gemini ----------------------------------------------------------------------------


async def test_gemini_generate_and_stream(gem: Any) -> None:
    config = genai_types.GenerateContentConfig(system_instruction="be brief")
    done = await gem.models.generate_content(model=GEMINI_MODEL, contents="hi", config=config)
    assert done.text == DEFAULT_TEXT and done.candidates[0].finish_reason == "STOP"
    assert done.usage_metadata.candidates_token_count == len(DEFAULT_TEXT.split())
    chunks = [c async for c in await gem.models.generate_content_stream(model=GEMINI_MODEL, contents="hi")]
    assert len(chunks) == 5 and "".join(c.text for c in chunks) == DEFAULT_TEXT
    assert all(c.usage_metadata.prompt_token_count for c in chunks)
    assert chunks[-1].usage_metadata.candidates_token_count == len(DEFAULT_TEXT.split())


async def test_gemini_tool_round_trip(gem: Any) -> None:
    declaration = {
        "name": "run_shell_command",
        "parameters": {"type": "OBJECT", "properties": {"command": {"type": "STRING"}}, "required": ["command"]},
    }
    tool = genai_types.Tool(function_declarations=[declaration])
    config = genai_types.GenerateContentConfig(tools=[tool])
    user = genai_types.Content(role="user", parts=[genai_types.Part(text="ls")])
    first = await gem.models.generate_content(model=GEMINI_MODEL, contents=[user], config=config)
    call = first.function_calls[0]
    assert call.name == "run_shell_command" and call.args == {"command": SHELL_COMMAND}
    result = genai_types.Part.from_function_response(name=call.name, response={"output": "aiogw-fake-tool"})
    contents = [user, first.candidates[0].content, genai_types.Content(role="user", parts=[result])]
    second = await gem.models.generate_content(model=GEMINI_MODEL, contents=contents, config=config)
    assert "aiogw-fake-tool" in second.text


async def test_gemini_count_embed_models(gem: Any) -> None:
    counted = await gem.models.count_tokens(model=GEMINI_MODEL, contents="x" * 400)
    assert counted.total_tokens == 100
    embedded = await gem.models.embed_content(model="gemini-embedding-001", contents=["a", "b"])
    assert len(embedded.embeddings) == 2 and len(embedded.embeddings[0].values) == 16
    names = [m.name async for m in await gem.models.list()]
    assert f"models/{GEMINI_MODEL}" in names


async def test_gemini_raw_sse_and_json_array(fake: FakeUpstream, http: Session) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    url = f"{base(fake)}/v1beta/models/{GEMINI_MODEL}:streamGenerateContent"
    async with http.post(f"{url}?alt=sse", json=body, headers=GEMINI_HEADERS) as resp:
        raw = await resp.read()
    assert raw.startswith(b"data: {") and raw.endswith(b"}\r\n\r\n") and raw.count(b"\r\n\r\n") == 5
    async with http.post(f"{url}?key=gemini-fake", json=body) as resp:
        assert resp.headers["content-type"].startswith("application/json")
        array = json.loads(await resp.read())
    texts = [c["candidates"][0]["content"]["parts"][0]["text"] for c in array]
    assert len(array) == 5 and "".join(texts) == DEFAULT_TEXT
    assert all("usageMetadata" in c for c in array) and array[-1]["candidates"][0]["finishReason"] == "STOP"
    # Gemini under /v1/ too, and its model list is told apart from OpenAI's by the key header.
    async with http.get(f"{base(fake)}/v1/models", headers=GEMINI_HEADERS) as resp:
        assert "supportedGenerationMethods" in (await resp.json())["models"][0]


# -- Authentication and unknown paths --------------------------------------------------


async def test_wrong_keys_raise_each_sdk_error(fake: FakeUpstream) -> None:
    claude = anthropic.AsyncAnthropic(api_key="wrong", base_url=base(fake), max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as caught:
        await claude.messages.create(model=CLAUDE, max_tokens=8, messages=HI)
    assert caught.value.body["error"]["type"] == "authentication_error"
    await claude.close()
    oai = openai.AsyncOpenAI(api_key="wrong", base_url=f"{base(fake)}/v1", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught_oai:
        await oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert caught_oai.value.code == "invalid_api_key"
    await oai.close()
    client = gemini_client(fake, key="wrong")
    with pytest.raises(genai_errors.ClientError) as caught_gem:
        await client.aio.models.generate_content(model=GEMINI_MODEL, contents="x")
    assert caught_gem.value.code == 400 and caught_gem.value.status == "INVALID_ARGUMENT"
    assert "API_KEY_INVALID" in json.dumps(caught_gem.value.details)
    await client.aio.aclose()


@pytest.mark.parametrize(
    ("path", "headers", "envelope"),
    [
        (
            "/v1/messages/nope",
            ANTHROPIC_HEADERS,
            lambda b: b["type"] == "error" and b["error"]["type"] == "not_found_error",
        ),
        ("/v1/nope", OPENAI_HEADERS, lambda b: b["error"]["type"] == "invalid_request_error"),
        ("/v1beta/nope", GEMINI_HEADERS, lambda b: b["error"]["status"] == "NOT_FOUND"),
    ],
)
async def test_unknown_path_is_404_in_provider_envelope(
    fake: FakeUpstream, http: Session, path: str, headers: dict[str, str], envelope: Any
) -> None:
    async with http.post(f"{base(fake)}{path}", json={}, headers=headers) as resp:
        assert resp.status == 404 and envelope(await resp.json())


async def test_provider_prefix_forces_the_dialect(fake: FakeUpstream, http: Session) -> None:
    headers = {"authorization": "Bearer sk-ant-fake"}  # no anthropic-version: alone, it reads as OpenAI
    async with http.get(f"{base(fake)}/anthropic/v1/models", headers=headers) as resp:
        assert (await resp.json())["data"][0]["type"] == "model"
    assert fake.received[-1].path == "/anthropic/v1/models"
    async with http.get(f"{base(fake)}/v1/models", headers=headers) as resp:
        assert resp.status == 401 and (await resp.json())["error"]["code"] == "invalid_api_key"


# -- Faults ----------------------------------------------------------------------------


async def test_fault_refuse(fake: FakeUpstream, http: Session) -> None:
    headers = ANTHROPIC_HEADERS | {"x-fake-fault": "refuse"}
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await http.post(f"{base(fake)}/v1/messages", json=HELLO, headers=headers)
    assert fake.received[-1].headers["x-fake-fault"] == "refuse"


async def test_fault_die_breaks_the_chunked_body(fake: FakeUpstream, http: Session) -> None:
    headers = ANTHROPIC_HEADERS | {"x-fake-fault": "die"}
    async with http.post(f"{base(fake)}/v1/messages", json=HELLO, headers=headers) as resp:
        assert resp.status == 200
        first = await resp.content.readuntil(b"\n\n")
        assert first.startswith(b"event: message_start")
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
    plain = HELLO | {"stream": False}  # not streaming: half the JSON body, then the abort
    async with http.post(f"{base(fake)}/v1/messages", json=plain, headers=headers) as resp:
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
    assert fake.aborted == 0  # the fake's own abort is not a client leaving


async def test_fault_stall_times_out_and_counts_the_leaver(fake: FakeUpstream, http: Session) -> None:
    headers = GEMINI_HEADERS | {"x-fake-fault": "stall"}
    url = f"{base(fake)}/v1beta/models/{GEMINI_MODEL}:generateContent"
    with pytest.raises(asyncio.TimeoutError):
        await http.post(url, json={"contents": []}, headers=headers, timeout=aiohttp.ClientTimeout(total=0.2))
    await wait_for(lambda: fake.aborted == 1)


async def test_fault_stall_mid_sends_two_events_then_nothing(fake: FakeUpstream, http: Session) -> None:
    body = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    headers = OPENAI_HEADERS | {"x-fake-fault": "stall-mid"}
    timeout = aiohttp.ClientTimeout(sock_read=0.2)
    url = f"{base(fake)}/v1/chat/completions"
    async with http.post(url, json=body, headers=headers, timeout=timeout) as resp:
        got = b""
        with pytest.raises(asyncio.TimeoutError):
            while True:
                got += await resp.content.readany()
    assert got.count(b"data: ") == 2 and b"[DONE]" not in got


async def test_fault_status_429_is_a_rate_limit_error(claude: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.RateLimitError) as caught:
        await claude.messages.create(
            model=CLAUDE, max_tokens=8, messages=HI, extra_headers={"x-fake-fault": "status=429"}
        )
    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.body["error"]["type"] == "rate_limit_error"


async def test_fault_status_in_openai_and_gemini(oai: openai.AsyncOpenAI, fake: FakeUpstream) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        await oai.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "x"}], extra_headers={"x-fake-fault": "status=500"}
        )
    assert caught.value.body["type"] == "server_error"
    fake.config.fault = "status=503"  # the config default, when no header says otherwise
    client = gemini_client(fake)
    with pytest.raises(genai_errors.ServerError) as caught_gem:
        await client.aio.models.generate_content(model=GEMINI_MODEL, contents="x")
    assert caught_gem.value.code == 503 and caught_gem.value.status == "UNAVAILABLE"
    await client.aio.aclose()


async def test_bad_fault_header_is_a_400(fake: FakeUpstream, http: Session) -> None:
    headers = OPENAI_HEADERS | {"x-fake-fault": "explode"}
    async with http.post(f"{base(fake)}/v1/chat/completions", json={}, headers=headers) as resp:
        assert resp.status == 400 and "explode" in (await resp.json())["error"]["message"]


# -- Client leaving, recording, compression --------------------------------------------


async def test_client_leaving_mid_stream_is_counted(fake: FakeUpstream, http: Session) -> None:
    headers = ANTHROPIC_HEADERS | {"x-fake-chunks": "200", "x-fake-delay": "0.01"}
    resp = await http.post(f"{base(fake)}/v1/messages", json=HELLO, headers=headers)
    assert (await resp.content.readuntil(b"\n\n")).startswith(b"event: message_start")
    resp.close()  # drops the connection mid-stream
    await wait_for(lambda: fake.aborted == 1)


async def test_received_keeps_exact_bytes(fake: FakeUpstream, http: Session) -> None:
    body = b'{"model": "gpt-4o",  "messages": [{"role": "user", "content": "caf\xc3\xa9"}]}'
    headers = OPENAI_HEADERS | {"content-type": "application/json"}
    async with http.post(f"{base(fake)}/v1/chat/completions?x=1", data=body, headers=headers) as resp:
        assert resp.status == 200
    got = fake.received[-1]
    assert got.body == body and got.path == "/v1/chat/completions" and got.query == "x=1"
    assert got.headers["authorization"] == "Bearer sk-openai-fake"
    fake.clear()
    assert fake.received == [] and fake.aborted == 0


async def test_gzip_bodies_and_streams(fake: FakeUpstream, http: Session, claude: anthropic.AsyncAnthropic) -> None:
    fake.config.compress = True
    headers = ANTHROPIC_HEADERS | {"accept-encoding": "gzip"}
    plain = HELLO | {"stream": False}
    async with aiohttp.ClientSession(auto_decompress=False) as raw_http:
        async with raw_http.post(f"{base(fake)}/v1/messages", json=plain, headers=headers) as resp:
            assert resp.headers["content-encoding"] == "gzip"
            message = json.loads(zlib.decompress(await resp.read(), wbits=31))
        assert message["content"][0]["text"] == DEFAULT_TEXT
        async with raw_http.post(f"{base(fake)}/v1/messages", json=HELLO, headers=headers) as resp:
            assert resp.headers["content-encoding"] == "gzip"
            unpacker = zlib.decompressobj(wbits=31)
            # Flushed per event: the first bytes to arrive already decode to whole events.
            first = unpacker.decompress(await resp.content.readany())
            assert first.startswith(b"event: message_start") and first.endswith(b"\n\n")
            rest = unpacker.decompress(await resp.read())
            assert unpacker.eof
    assert sse_events(first + rest)[-1][0] == "message_stop"
    async with claude.messages.stream(model=CLAUDE, max_tokens=8, messages=HI) as s:
        assert "".join([t async for t in s.text_stream]) == DEFAULT_TEXT
    done = await claude.messages.create(model=CLAUDE, max_tokens=8, messages=HI)
    assert done.content[0].text == DEFAULT_TEXT


async def test_lean_mode_answers_large_bodies_alike(fake: FakeUpstream, claude: anthropic.AsyncAnthropic) -> None:
    # A tool result over LEAN_MIN_BYTES: lean mode skips the text walk for this body only.
    big = [
        {"role": "user", "content": "list the files"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "x.py\n" * 8000}]},
    ]
    before = await claude.messages.create(model=CLAUDE, max_tokens=8, messages=big, tools=[BASH_TOOL])
    small_before = await claude.messages.create(model=CLAUDE, max_tokens=8, messages=HI, tools=[BASH_TOOL])
    fake.config.lean = True
    after = await claude.messages.create(model=CLAUDE, max_tokens=8, messages=big, tools=[BASH_TOOL])
    again = await claude.messages.create(model=CLAUDE, max_tokens=8, messages=big, tools=[BASH_TOOL])
    small_after = await claude.messages.create(model=CLAUDE, max_tokens=8, messages=HI, tools=[BASH_TOOL])
    # The same answer; only the token estimate (a quarter of the body's bytes) and the id differ.
    assert after.content[0].text == before.content[0].text == "The tool returned: " + ("x.py\n" * 40)
    assert after.usage.input_tokens == len(fake.received[-3].body) // 4 != before.usage.input_tokens
    assert again.id == after.id != before.id
    # Small bodies are answered exactly as in the default mode.
    assert small_after.model_dump() == small_before.model_dump()
    assert small_after.content[0].type == "tool_use" and small_after.content[0].input["command"] == SHELL_COMMAND
