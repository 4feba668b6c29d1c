"""The real agents through the gateway: Claude Code and the Codex CLI, offline.

Each runs one non-interactive turn against the gateway, which forwards to the fake
upstream; the fake model asks for a shell tool call, the agent really runs it and sends
its output back, and the fake answers with it. Installed by `make install-agents`;
skipped without them, except in CI, where a missing agent is a failure.
"""

import json
import os
import shutil
import subprocess

import orjson
import pytest
from sdk_helpers import assert_no_gateway_key

pytestmark = [pytest.mark.agents, pytest.mark.timeout(180)]

TOOL_OUTPUT = "aiogw-tool-42"  # what the fake's shell command prints; not in the command itself


def agent(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed: CI must run `make install-agents` first")
        pytest.skip(f"{name} not installed (make install-agents)")
    return path


def run(argv: list[str], home, env: dict[str, str]) -> subprocess.CompletedProcess:
    # A clean environment: no stray provider keys, a throwaway home, no terminal.
    base = {"PATH": os.environ["PATH"], "HOME": str(home), "TERM": "dumb", "LANG": "C.UTF-8"}
    return subprocess.run(
        argv, cwd=home, env={**base, **env}, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=150
    )


def posts(gw, path: str) -> list:
    return [r for r in gw.fake.received if r.method == "POST" and r.path == path]


def test_claude_code_tool_turn(gw, tmp_path):
    claude = agent("claude")
    result = run(
        [
            claude,
            "-p",
            "Print the gateway marker with the Bash tool.",
            "--allowedTools",
            "Bash",
            "--output-format",
            "json",
        ],
        tmp_path,
        {
            "ANTHROPIC_BASE_URL": gw.url("anthropic"),
            "ANTHROPIC_API_KEY": gw.key,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
        },
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout)
    assert out["is_error"] is False and TOOL_OUTPUT in out["result"]

    calls = posts(gw, "/v1/messages")
    # Two streamed turns: Claude Code silently retries without streaming when a stream
    # breaks, so exactly two streaming requests prove the relay worked.
    assert len(calls) == 2 and all(c.query == "beta=true" for c in calls)
    bodies = [orjson.loads(c.body) for c in calls]
    assert all(b["stream"] is True for b in bodies)
    (result_block,) = [block for block in bodies[1]["messages"][-1]["content"] if block.get("type") == "tool_result"]
    assert TOOL_OUTPUT in json.dumps(result_block["content"]) and not result_block.get("is_error")
    for c in calls:
        assert c.headers["x-api-key"] == "sk-ant-fake"
        assert "claude-code-" in c.headers["anthropic-beta"]
        assert c.headers.get("x-claude-code-session-id")
    assert_no_gateway_key(gw)
    gw.last_exchange()  # every exchange handed on by the finisher, the last one too
    messages = [ex for ex in gw.exchanges if ex.endpoint == "messages"]
    assert [(ex.user, ex.stream, ex.outcome) for ex in messages] == [("alice", True, "ok")] * 2


def test_codex_tool_turn(gw, tmp_path):
    codex = agent("codex")
    (tmp_path / "codex-home").mkdir()
    # Codex ignores OPENAI_BASE_URL: a custom provider is how it takes a base URL.
    provider = [
        "-c",
        "model_provider=aiogw",
        "-c",
        "model_providers.aiogw.name=aiogw",
        "-c",
        f'model_providers.aiogw.base_url="{gw.url("openai")}/v1"',
        "-c",
        "model_providers.aiogw.env_key=AIOGW_KEY",
        "-c",
        "model_providers.aiogw.wire_api=responses",
        "-c",
        "analytics.enabled=false",
    ]
    result = run(
        [
            codex,
            "exec",
            "--skip-git-repo-check",
            "--ephemeral",
            "-s",
            "workspace-write",
            "-m",
            "gpt-5-codex",
            *provider,
            "--disable",
            "plugins",
            "Print the gateway marker with your shell tool.",
        ],
        tmp_path,
        {"CODEX_HOME": str(tmp_path / "codex-home"), "AIOGW_KEY": gw.key},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert TOOL_OUTPUT in result.stdout

    calls = posts(gw, "/v1/responses")
    assert len(calls) == 2
    bodies = [orjson.loads(c.body) for c in calls]
    assert all(b["stream"] is True for b in bodies)
    outputs = [item for item in bodies[1]["input"] if item.get("type") == "function_call_output"]
    assert outputs and TOOL_OUTPUT in json.dumps(outputs[-1]["output"])
    assert all(c.headers["authorization"] == "Bearer sk-openai-fake" for c in calls)
    assert_no_gateway_key(gw)
    gw.last_exchange()  # every exchange handed on by the finisher, the last one too
    responses = [ex for ex in gw.exchanges if ex.endpoint == "responses"]
    assert [(ex.user, ex.stream, ex.outcome) for ex in responses] == [("alice", True, "ok")] * 2
