"""No audit record is lost: back-pressure refuses instead of dropping, SIGTERM drains,
and SIGKILL costs at most the last batch interval."""

import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import anthropic
import httpx
import pytest
from conftest import PROVIDER_KEYS, free_port

from aiogw import config
from aiogw.app import RUNTIME, start
from tests.builders import create_key

HI = [{"role": "user", "content": "hi"}]


def count(db, where="1=1"):
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(f"SELECT count(*) FROM exchanges WHERE {where}").fetchone()[0]
    finally:
        conn.close()


def gateway_toml(tmp_path, fake_url, port=0, audit="") -> str:
    path = tmp_path / "aiogw.toml"
    path.write_text(
        textwrap.dedent(f"""
        [server]
        port = {port}
        [state]
        path = "state.db"
        [audit]
        {audit}
        [[routes]]
        name = "anthropic"
        dialect = "anthropic"
        upstream = "{fake_url}"
        credential = {{ env = "FAKE_ANTHROPIC" }}
        """)
    )
    return path


@pytest.mark.timeout(60)
def test_a_full_queue_refuses_new_requests_and_loses_nothing(gateway, tmp_path):
    path = gateway_toml(tmp_path, gateway.fake_url, audit="queue_size = 2\nbatch_size = 1\nflush_interval = 0.01")
    cfg = config.load(path, env=PROVIDER_KEYS)
    _, key = create_key(cfg.state_path, "carol")
    runner, port = gateway.servers.run(start(cfg))
    runtime = runner.app[RUNTIME]
    finisher, (_, writer) = runtime.parts.finisher, runtime.audit
    client = anthropic.Anthropic(api_key=key, base_url=f"http://127.0.0.1:{port}/llm-gateway/anthropic", max_retries=0)
    try:
        client.messages.create(model="m", max_tokens=4, messages=HI)
        assert gateway.wait_for(lambda: writer.written == 1)
        # Another writer holds the database: the audit writer blocks, records wait.
        blocker = sqlite3.connect(cfg.state_path, timeout=10, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        answered = 1
        refused = None
        for _ in range(6):
            try:
                client.messages.create(model="m", max_tokens=4, messages=HI)
                answered += 1
            except anthropic.APIStatusError as exc:
                refused = exc
                break
        assert refused is not None, "the gateway kept accepting with a full audit queue"
        assert refused.status_code == 503
        assert refused.body["error"]["type"] == "overloaded_error"
        assert refused.response.headers["retry-after"] == "1"
        assert finisher.refused == 1
        blocker.execute("ROLLBACK")
        blocker.close()
        # The writer catches up and the gateway accepts again.
        assert gateway.wait_for(lambda: finisher.depth == 0 and writer.depth == 0, timeout=20)
        client.messages.create(model="m", max_tokens=4, messages=HI)
        answered += 1
        assert gateway.wait_for(lambda: writer.written == answered, timeout=20)
        assert count(cfg.state_path) == answered
    finally:
        gateway.servers.run(runner.cleanup())


def serve(path):
    env = {"PATH": "/usr/bin:/bin", **PROVIDER_KEYS}
    return subprocess.Popen(
        [sys.executable, "-m", "aiogw", "serve", "--config", str(path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_healthy(port):
    for _ in range(400):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.025)
    raise AssertionError("gateway did not start")


@pytest.mark.timeout(90)
def test_sigterm_mid_load_leaves_one_record_per_answer(gateway, tmp_path):
    port = free_port()
    path = gateway_toml(tmp_path, gateway.fake_url, port=port, audit="flush_interval = 0.5")
    cfg = config.load(path, env=PROVIDER_KEYS)
    _, key = create_key(cfg.state_path, "dave")
    proc = serve(path)
    answers, lock = [], threading.Lock()

    def agent(n):
        # Streams of 10 events 50 ms apart: many are open when SIGTERM arrives.
        c = anthropic.Anthropic(
            api_key=key,
            base_url=f"http://127.0.0.1:{port}/llm-gateway/anthropic",
            max_retries=0,
            default_headers={"x-fake-chunks": "10", "x-fake-delay": "0.05"},
        )
        for _ in range(n):
            try:
                with c.messages.stream(model="m", max_tokens=16, messages=HI) as s:
                    s.get_final_message()
            except Exception:
                return
            with lock:
                answers.append(1)

    try:
        wait_healthy(port)
        threads = [threading.Thread(target=agent, args=(50,)) for _ in range(12)]
        for t in threads:
            t.start()
        while len(answers) < 30:
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        for t in threads:
            t.join(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    _, err = proc.communicate()
    assert "Traceback" not in err, err
    assert count(cfg.state_path, "outcome = 'ok'") == len(answers)
    # Exchanges cut by the shutdown are recorded too, as what they were, never as ok: a
    # keep-alive client's next request can reach the server while it drains, and aiohttp
    # cancels it ('shutdown') or the gateway refuses it ('draining', a 503).
    assert count(
        cfg.state_path,
        "outcome NOT IN ('ok', 'client_aborted', 'upstream_aborted', 'shutdown') AND reason IS NOT 'draining'",
    ) == 0


@pytest.mark.timeout(90)
def test_sigkill_loses_at_most_the_last_batch_interval(gateway, tmp_path, capsys):
    port = free_port()
    interval = 0.5
    path = gateway_toml(tmp_path, gateway.fake_url, port=port, audit=f"flush_interval = {interval}")
    cfg = config.load(path, env=PROVIDER_KEYS)
    _, key = create_key(cfg.state_path, "erin")
    proc = serve(path)
    answered_at = []
    try:
        wait_healthy(port)
        c = anthropic.Anthropic(api_key=key, base_url=f"http://127.0.0.1:{port}/llm-gateway/anthropic", max_retries=0)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            c.messages.create(model="m", max_tokens=4, messages=HI)
            answered_at.append(time.monotonic())
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        killed = time.monotonic()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    recorded = count(cfg.state_path)
    missing = len(answered_at) - recorded
    recent = sum(1 for t in answered_at if killed - t <= interval + 0.1)
    conn = sqlite3.connect(cfg.state_path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with capsys.disabled():
        print(
            f"\n[audit] SIGKILL after {len(answered_at)} answers: {missing} records missing "
            f"(answers within the last {interval}s batch interval: {recent})"
        )
    assert 0 <= missing <= recent
