"""OpenAI's official SDK (Chat Completions, Responses, Embeddings) through the gateway."""

import json

import openai
from sdk_helpers import check_forwarded, stable

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "shell",
            "description": "Run a command",
            "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]},
        },
    }
]


def clients(gw, route="openai"):
    direct = openai.OpenAI(api_key="sk-openai-fake", base_url=gw.fake_url + "/v1", max_retries=0)
    via = openai.OpenAI(api_key=gw.key, base_url=gw.url(route) + "/v1", max_retries=0)
    return direct, via


def test_chat(gw):
    direct, via = clients(gw)
    kwargs = dict(model="gpt-4.1", messages=[{"role": "system", "content": "terse"}, {"role": "user", "content": "hi"}])
    a, b = direct.chat.completions.create(**kwargs), via.chat.completions.create(**kwargs)
    assert stable(b) == stable(a)
    check_forwarded(gw, provider_header="authorization", provider_key="Bearer sk-openai-fake")
    ex = gw.last_exchange()
    assert (ex.endpoint, ex.model, ex.status, ex.outcome) == ("chat", "gpt-4.1", 200, "ok")


def test_chat_stream_with_and_without_usage(gw):
    direct, via = clients(gw)
    for options in ({}, {"stream_options": {"include_usage": True}}):
        kwargs = dict(model="gpt-4.1", messages=[{"role": "user", "content": "stream"}], stream=True, **options)
        a = [stable(c) for c in direct.chat.completions.create(**kwargs)]
        b = [stable(c) for c in via.chat.completions.create(**kwargs)]
        assert b == a
        assert (b[-1].get("usage") is not None) == bool(options)
        if options:
            check_forwarded(gw)
        else:
            # The gateway asked for usage (to charge the stream) in front of the client's
            # own bytes; the client saw none of it (b == a above: no usage chunk, no
            # "usage": null fields), and the exchange was charged.
            direct_body, via_body = gw.fake.received[-2].body, gw.fake.received[-1].body
            assert via_body == b'{"stream_options":{"include_usage":true},' + direct_body[1:]
            assert gw.last_exchange().cost > 0


def test_chat_tool_round_trip(gw):
    _, via = clients(gw)
    messages = [{"role": "user", "content": "list files"}]
    chunks = list(via.chat.completions.create(model="gpt-4.1", messages=messages, tools=TOOLS, stream=True))
    args = "".join(
        tc.function.arguments or "" for c in chunks for choice in c.choices for tc in (choice.delta.tool_calls or [])
    )
    call_id = next(tc.id for c in chunks for ch in c.choices for tc in (ch.delta.tool_calls or []) if tc.id)
    assert "command" in json.loads(args)
    messages += [
        {
            "role": "assistant",
            "tool_calls": [{"id": call_id, "type": "function", "function": {"name": "shell", "arguments": args}}],
        },
        {"role": "tool", "tool_call_id": call_id, "content": "Makefile README.md"},
    ]
    final = via.chat.completions.create(model="gpt-4.1", messages=messages, tools=TOOLS)
    assert "Makefile README.md" in final.choices[0].message.content


def test_responses_plain_and_stream(gw):
    direct, via = clients(gw)
    kwargs = dict(model="gpt-5-codex", instructions="be terse", input="hello")
    assert stable(via.responses.create(**kwargs)) == stable(direct.responses.create(**kwargs))
    check_forwarded(gw)
    a = [stable(e) for e in direct.responses.create(stream=True, **kwargs)]
    b = [stable(e) for e in via.responses.create(stream=True, **kwargs)]
    assert b == a and b[-1]["type"] == "response.completed"
    check_forwarded(gw)
    assert gw.last_exchange().stream


def test_responses_function_call_round_trip(gw):
    _, via = clients(gw)
    tools = [
        {"type": "function", "name": "shell", "description": "run", "parameters": TOOLS[0]["function"]["parameters"]}
    ]
    first = via.responses.create(model="gpt-5-codex", input="list files", tools=tools, stream=True)
    done = [e for e in first if e.type == "response.output_item.done" and e.item.type == "function_call"]
    call = done[0].item
    second = via.responses.create(
        model="gpt-5-codex",
        tools=tools,
        input=[
            {"role": "user", "content": "list files"},
            {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": "pyproject.toml"},
        ],
    )
    assert "pyproject.toml" in second.output_text


def test_input_tokens_embeddings_models(gw):
    direct, via = clients(gw)
    raw_direct = direct.post("/responses/input_tokens", body={"model": "gpt-5", "input": "count"}, cast_to=object)
    raw_via = via.post("/responses/input_tokens", body={"model": "gpt-5", "input": "count"}, cast_to=object)
    assert raw_via == raw_direct
    check_forwarded(gw)
    kwargs = dict(model="text-embedding-3-small", input=["a", "b"])
    assert stable(via.embeddings.create(**kwargs)) == stable(direct.embeddings.create(**kwargs))
    check_forwarded(gw)
    assert [m.id for m in via.models.list()] == [m.id for m in direct.models.list()]
