import orjson
import pytest

from aiogw.dialects import DIALECTS, guess

ANTHROPIC, OPENAI, GEMINI = DIALECTS["anthropic"], DIALECTS["openai"], DIALECTS["gemini"]


@pytest.mark.parametrize(
    ("dialect", "method", "path", "name", "json", "stream", "model"),
    [
        (ANTHROPIC, "POST", "/v1/messages", "messages", True, False, None),
        (ANTHROPIC, "POST", "/v1/messages/count_tokens", "count_tokens", True, False, None),
        (ANTHROPIC, "GET", "/v1/models", "models", False, False, None),
        (ANTHROPIC, "GET", "/v1/messages", "other", False, False, None),
        (OPENAI, "POST", "/v1/chat/completions", "chat", True, False, None),
        (OPENAI, "POST", "/v1/responses", "responses", True, False, None),
        (OPENAI, "POST", "/v1/responses/input_tokens", "input_tokens", True, False, None),
        (OPENAI, "POST", "/v1/embeddings", "embeddings", True, False, None),
        (OPENAI, "POST", "/v1/files", "other", False, False, None),
        (GEMINI, "POST", "/v1beta/models/gemini-2.5-pro:generateContent", "generate", True, False, "gemini-2.5-pro"),
        (
            GEMINI,
            "POST",
            "/v1/models/gemini-2.5-flash:streamGenerateContent",
            "stream_generate",
            True,
            True,
            "gemini-2.5-flash",
        ),
        (GEMINI, "POST", "/v1beta/models/g:countTokens", "count_tokens", True, False, "g"),
        (GEMINI, "POST", "/v1beta/models/text-embedding-004:embedContent", "embed", True, False, "text-embedding-004"),
        (GEMINI, "GET", "/v1beta/models", "models", False, False, None),
        (GEMINI, "GET", "/v1beta/models/gemini-2.5-pro", "other", False, False, None),
        (GEMINI, "POST", "/v1beta/models/:generateContent", "other", False, False, None),
        (GEMINI, "POST", "/v2/models/g:generateContent", "other", False, False, None),
    ],
)
def test_endpoints(dialect, method, path, name, json, stream, model):
    ep = dialect.endpoint(method, path)
    assert (ep.name, ep.json, ep.stream, ep.model) == (name, json, stream, model)


def test_anthropic_error_envelope():
    body = orjson.loads(ANTHROPIC.error_body(429, "slow down"))
    assert body == {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
    assert orjson.loads(ANTHROPIC.error_body(502, "x"))["error"]["type"] == "api_error"
    assert orjson.loads(ANTHROPIC.error_body(413, "x"))["error"]["type"] == "request_too_large"


def test_openai_error_envelope():
    body = orjson.loads(OPENAI.error_body(401, "bad key"))
    assert body == {
        "error": {"message": "bad key", "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}
    }
    assert orjson.loads(OPENAI.error_body(504, "x"))["error"]["type"] == "server_error"


def test_gemini_error_envelope():
    body = orjson.loads(GEMINI.error_body(429, "quota"))
    assert body == {"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}}
    assert orjson.loads(GEMINI.error_body(504, "x"))["error"]["status"] == "DEADLINE_EXCEEDED"


def test_credential_headers():
    assert ANTHROPIC.credential("k") == ("x-api-key", "k")
    assert OPENAI.credential("k") == ("authorization", "Bearer k")
    assert GEMINI.credential("k") == ("x-goog-api-key", "k")


def test_guess():
    assert guess("/llm-gateway/x/v1/messages") is ANTHROPIC
    assert guess("/llm-gateway/x/v1beta/models/g:generateContent") is GEMINI
    assert guess("/llm-gateway/x/v1/chat/completions") is OPENAI


@pytest.mark.parametrize(
    ("dialect", "endpoint", "asks"),
    [
        (OPENAI, "chat", True),
        (OPENAI, "responses", False),
        (OPENAI, "embeddings", False),
        (ANTHROPIC, "messages", False),
        (GEMINI, "stream_generate", False),
    ],
)
def test_asks_stream_usage(dialect, endpoint, asks):
    """Only an OpenAI chat stream reports usage just when the request asks for it."""
    assert dialect.asks_stream_usage(endpoint) is asks


def test_stream_errors_in_each_provider_s_stream_format():
    """The event that ends a stream the gateway stopped: what each SDK reads as an error."""
    event, data = ANTHROPIC.stream_error("stopped", json_array=False).split(b"\n", 1)
    assert event == b"event: error" and data.startswith(b"data: ") and data.endswith(b"\n\n")
    assert orjson.loads(data[6:]) == {"type": "error", "error": {"type": "permission_error", "message": "stopped"}}

    sse = OPENAI.stream_error("stopped", json_array=False)
    assert sse.startswith(b"data: ") and sse.endswith(b"\n\n")
    assert orjson.loads(sse[6:]) == {
        "error": {"message": "stopped", "type": "invalid_request_error", "param": None, "code": "content_blocked"}
    }

    gemini = {"error": {"code": 403, "message": "stopped", "status": "PERMISSION_DENIED"}}
    sse = GEMINI.stream_error("stopped", json_array=False)
    assert sse.startswith(b"data: ") and sse.endswith(b"\r\n\r\n") and orjson.loads(sse[6:]) == gemini
    # The streamed JSON array: one more element, and the array closed.
    whole = b'[{"candidates": []}' + GEMINI.stream_error("stopped", json_array=True)
    assert orjson.loads(whole) == [{"candidates": []}, gemini]
