"""Google's official google-genai SDK through the gateway."""

from google import genai
from google.genai import types
from sdk_helpers import check_forwarded, stable


def clients(gw):
    direct = genai.Client(api_key="gemini-fake", http_options=types.HttpOptions(base_url=gw.fake_url))
    via = genai.Client(api_key=gw.key, http_options=types.HttpOptions(base_url=gw.url("google")))
    return direct, via


CONFIG = types.GenerateContentConfig(system_instruction="be terse")


def test_generate(gw):
    direct, via = clients(gw)
    a = direct.models.generate_content(model="gemini-2.5-flash", contents="hi", config=CONFIG)
    b = via.models.generate_content(model="gemini-2.5-flash", contents="hi", config=CONFIG)
    assert stable(b) == stable(a) and b.text
    check_forwarded(gw, provider_header="x-goog-api-key", provider_key="gemini-fake")
    ex = gw.last_exchange()
    assert (ex.endpoint, ex.model, ex.stream) == ("generate", "gemini-2.5-flash", False)


def test_stream(gw):
    direct, via = clients(gw)
    a = [stable(c) for c in direct.models.generate_content_stream(model="gemini-2.5-flash", contents="go")]
    b = [stable(c) for c in via.models.generate_content_stream(model="gemini-2.5-flash", contents="go")]
    assert b == a and len(b) > 1
    check_forwarded(gw)
    assert gw.fake.received[-1].query == "alt=sse"
    assert gw.last_exchange().stream


def test_function_call_round_trip(gw):
    _, via = clients(gw)
    tool = types.Tool(
        function_declarations=[
            types.FunctionDeclaration(
                name="run_shell",
                description="run",
                parameters={"type": "OBJECT", "properties": {"command": {"type": "STRING"}}, "required": ["command"]},
            )
        ]
    )
    config = types.GenerateContentConfig(
        tools=[tool], automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True)
    )
    first = via.models.generate_content(model="gemini-2.5-pro", contents="list files", config=config)
    call = first.function_calls[0]
    assert call.name == "run_shell"
    contents = [
        types.Content(role="user", parts=[types.Part(text="list files")]),
        first.candidates[0].content,
        types.Content(
            role="user", parts=[types.Part.from_function_response(name="run_shell", response={"output": "main.go"})]
        ),
    ]
    second = via.models.generate_content(model="gemini-2.5-pro", contents=contents, config=config)
    assert "main.go" in second.text


def test_count_embed_models(gw):
    direct, via = clients(gw)
    assert (
        via.models.count_tokens(model="gemini-2.5-flash", contents="count these").total_tokens
        == direct.models.count_tokens(model="gemini-2.5-flash", contents="count these").total_tokens
    )
    check_forwarded(gw)
    a = direct.models.embed_content(model="text-embedding-004", contents="embed")
    b = via.models.embed_content(model="text-embedding-004", contents="embed")
    assert stable(b) == stable(a)
    assert [m.name for m in via.models.list()] == [m.name for m in direct.models.list()]


def test_query_key_is_replaced(gw):
    import httpx

    r = httpx.post(
        gw.url("google") + f"/v1/models/gemini-2.5-flash:generateContent?key={gw.key}",
        json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
    )
    assert r.status_code == 200, r.text
    rec = gw.fake.received[-1]
    assert rec.path == "/v1/models/gemini-2.5-flash:generateContent"
    assert "key=" not in rec.query and rec.headers["x-goog-api-key"] == "gemini-fake"
