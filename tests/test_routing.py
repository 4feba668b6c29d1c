import pytest

from aiogw import routing
from aiogw.errors import BadRequest, NotFound

MOUNT = "/llm-gateway"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/llm-gateway/anthropic/v1/messages?beta=true", ("anthropic", "/v1/messages", "beta=true")),
        ("/llm-gateway/openai/v1/chat/completions", ("openai", "/v1/chat/completions", "")),
        (
            "/llm-gateway/google/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            ("google", "/v1beta/models/gemini-2.5-flash:streamGenerateContent", "alt=sse"),
        ),
        ("/llm-gateway/anthropic", ("anthropic", "/", "")),
        ("/llm-gateway/anthropic/", ("anthropic", "/", "")),
        ("/llm-gateway/openai//v1///models/", ("openai", "/v1/models", "")),
        # An absolute URL in the path is just more path on the route's own host.
        ("/llm-gateway/openai/http://evil.example/v1", ("openai", "/http:/evil.example/v1", "")),
        ("/llm-gateway/openai/v1/models/a%20b", ("openai", "/v1/models/a%20b", "")),
    ],
)
def test_split(raw, expected):
    assert routing.split(raw, MOUNT) == expected


def test_split_without_mount():
    assert routing.split("/openai/v1/models", "") == ("openai", "/v1/models", "")


@pytest.mark.parametrize("raw", ["/", "/other/openai/v1", "/llm-gatewayx/openai/v1", "/llm-gateway", "/llm-gateway/"])
def test_outside_mount_is_not_found(raw):
    with pytest.raises(NotFound):
        routing.split(raw, MOUNT)


@pytest.mark.parametrize(
    "raw",
    [
        "/llm-gateway/openai/../admin",
        "/llm-gateway/openai/v1/../../x",
        "/llm-gateway/openai/v1/%2e%2e/x",
        "/llm-gateway/openai/v1/%2E./x",
        "/llm-gateway/openai/v1/./models",
        "/llm-gateway/openai/v1%2fmodels",
        "/llm-gateway/openai/v1%2Fmodels",
        "/llm-gateway/openai/v1%5cmodels",
        "/llm-gateway/openai/v1\\models",
        "/llm-gateway/openai/v1/%00",
        "/llm-gateway/openai/v1/%0d%0aHost:x",
    ],
)
def test_unsafe_paths_are_refused(raw):
    with pytest.raises(BadRequest):
        routing.split(raw, MOUNT)
