"""Operations on a running gateway: reload (SIGHUP, and `aiogw.app.reload` itself),
drain on SIGTERM/SIGINT, and a bug of its own answered as the provider would.

In-process gateways serve two fakes (A and B) on the session's loop, so a reload can
move a route from one to the other; streams are held mid-way with the fake's
`x-fake-gate` header and let go with `open_gate`, so nothing here depends on timing.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import threading
import time

import anthropic
import httpx
import openai
import orjson
import pytest

from aiogw import config
from aiogw.app import PROXY, reload
from aiogw.fake_upstream import FakeConfig, FakeUpstream
from aiogw.guards.answer_stage import AnswerStage
from aiogw.stage import Stages
from tests.conftest import PROVIDER_KEYS
from tests.test_exchange_log import Served, serving
from tests.test_limits import LimitedGateway
from tests.test_metrics import parse

HI = [{"role": "user", "content": "hello"}]
HEAD = """
[server]
host = "127.0.0.1"
port = {port}
[state]
path = "{state}"
[audit]
flush_interval = 0.02
[[users]]
name = "alice"
[[users]]
name = "pat"
guards = {{ pii = "{pii}" }}
"""
ACME = "[[guards.patterns]]\nid = \"acme-token\"\ncategory = \"credential\"\nexpression = 'acme_[A-Za-z0-9]{32}'\n"


def route(name: str, url: str, dialect: str = "anthropic") -> str:
    env = {"anthropic": "FAKE_ANTHROPIC", "openai": "FAKE_OPENAI"}[dialect]
    return f'[[routes]]\nname = "{name}"\ndialect = "{dialect}"\nupstream = "{url}"\ncredential = {{ env = "{env}" }}\n'


class Fake:
    def __init__(self, servers) -> None:
        self.upstream = FakeUpstream(FakeConfig())
        self.url = f"http://127.0.0.1:{servers.run(self.upstream.start())}"
        self.received = self.upstream.received


@pytest.fixture(scope="module")
def fakes(servers):
    a, b = Fake(servers), Fake(servers)
    yield a, b
    for f in (a, b):
        servers.run(f.upstream.stop())


class Reloadable(LimitedGateway):
    """A LimitedGateway whose whole config file is written by the test."""

    def __init__(self, servers, fake: Fake, state, *routes: str, **kw) -> None:
        super().__init__(servers, fake.upstream, fake.url, state, toml="", extra=self.text(state, *routes, **kw))

    @staticmethod
    def text(state, *routes: str, extra: str = "", pii: str = "block", port: int = 0) -> str:
        return HEAD.format(port=port, state=state, pii=pii) + "".join(routes) + extra

    def rewrite(self, *routes: str, **kw) -> list[str]:
        self.path.write_text(self.text(self.state, *routes, **kw))
        return self.reload()

    @property
    def proxy(self):
        return self.runner.app[PROXY]


@pytest.fixture
def served(gateway, tmp_path):
    yield from serving(gateway, tmp_path)


@pytest.fixture
def rg(servers, fakes, tmp_path):
    a, _ = fakes
    g = Reloadable(servers, a, tmp_path / "state.db", route("anthropic", a.url), route("openai", a.url, "openai"))
    yield g
    g.stop()


class Streamer(threading.Thread):
    """One streamed answer in a thread: the text as it came, the final message or the error."""

    def __init__(self, client: anthropic.Anthropic) -> None:
        super().__init__(daemon=True)
        self.client, self.started = client, threading.Event()
        self.text: list[str] = []
        self.events: list[str] = []
        self.final = self.error = None

    def run(self) -> None:
        try:
            with self.client.messages.stream(model="claude-haiku-4-5", max_tokens=64, messages=HI) as s:
                for event in s:
                    self.events.append(event.type)
                    self.text += [event.text] if event.type == "text" else []
                    self.started.set()
                self.final = s.get_final_message()
        except Exception as exc:  # the test reads it
            self.error = exc
        finally:
            self.started.set()


def gated(client_of, gate: str, text: str) -> Streamer:
    """A stream the fake holds after its first event until `open_gate(gate)`."""
    s = Streamer(client_of(default_headers={"x-fake-gate": gate, "x-fake-chunks": "12", "x-fake-text": text}))
    s.start()
    assert s.started.wait(30) and s.error is None, s.error
    return s


def wait(predicate, timeout: float = 30, what: str = "a condition"):
    return Served.wait(predicate, timeout, what)


# --- reload, in process ------------------------------------------------------------------


def test_a_route_added_by_reload_serves(rg, fakes):
    a, b = fakes
    with pytest.raises(anthropic.NotFoundError) as err:
        anthropic.Anthropic(base_url=f"{rg.base}/claude-b", api_key=rg.key("alice"), max_retries=0).messages.create(
            model="m", max_tokens=8, messages=HI)
    assert err.value.body["error"]["type"] == "not_found_error"
    assert rg.rewrite(route("anthropic", a.url), route("openai", a.url, "openai"), route("claude-b", b.url)) == []
    before = len(b.received)
    client = anthropic.Anthropic(base_url=f"{rg.base}/claude-b", api_key=rg.key("alice"), max_retries=0)
    assert client.messages.create(model="m", max_tokens=8, messages=HI).content[0].text
    assert len(b.received) == before + 1 and b.received[-1].headers["x-api-key"] == PROVIDER_KEYS["FAKE_ANTHROPIC"]


def test_a_moved_route_sends_new_requests_to_the_new_upstream_while_a_stream_ends_on_the_old(rg, fakes, servers):
    a, b = fakes
    old = rg.proxy.upstreams["anthropic"]
    text = "one two three four five six seven eight nine ten eleven twelve thirteen"
    stream = gated(lambda **kw: rg.anthropic("alice", max_retries=0, **kw), f"move-{id(rg)}", text)
    a_before, b_before = len(a.received), len(b.received)
    assert rg.rewrite(route("anthropic", b.url), route("openai", a.url, "openai")) == []
    rg.anthropic("alice", max_retries=0).messages.create(model="m", max_tokens=8, messages=HI)
    assert (len(a.received), len(b.received)) == (a_before, b_before + 1)
    assert old.session is not None and not old.session.closed  # the stream still uses it
    servers.call(a.upstream.open_gate, f"move-{id(rg)}")
    stream.join(30)
    assert stream.error is None and "".join(stream.text) == text
    assert stream.final.stop_reason == "end_turn" and stream.events[-1] == "message_stop"
    wait(lambda: old.session.closed, what="the retired upstream to close")


def test_a_removed_route_answers_404_in_its_providers_envelope(rg, fakes):
    a, _ = fakes
    oai = openai.OpenAI(base_url=f"{rg.base}/openai/v1", api_key=rg.key("alice"), max_retries=0)
    assert oai.chat.completions.create(model="gpt-4.1", messages=HI).choices
    assert rg.rewrite(route("anthropic", a.url)) == []
    with pytest.raises(openai.NotFoundError) as err:
        oai.chat.completions.create(model="gpt-4.1", messages=HI)
    body = err.value.response.json()
    assert set(body) == {"error"} and "no route named 'openai'" in body["error"]["message"]
    assert rg.anthropic("alice", max_retries=0).messages.create(model="m", max_tokens=8, messages=HI).content


def test_a_guard_pattern_added_by_reload_blocks(rg, fakes):
    a, _ = fakes
    secret = [{"role": "user", "content": "deploy with acme_Q7fK2mZp9RtX4vLb8NcW3sHd6JyU1eGa"}]
    client = rg.anthropic("alice", max_retries=0)
    client.messages.create(model="m", max_tokens=8, messages=secret)
    assert rg.rewrite(route("anthropic", a.url), extra=ACME) == []
    sent = len(a.received)
    with pytest.raises(anthropic.PermissionDeniedError) as err:
        client.messages.create(model="m", max_tokens=8, messages=secret)
    assert "acme-token" in err.value.message and len(a.received) == sent


def test_a_users_guard_policy_change_applies(rg, fakes):
    a, _ = fakes
    email = [{"role": "user", "content": "write to maria.gonzalez@fastmail.com about the invoice"}]
    client = rg.anthropic("pat", max_retries=0)
    with pytest.raises(anthropic.PermissionDeniedError):
        client.messages.create(model="m", max_tokens=8, messages=email)
    assert rg.rewrite(route("anthropic", a.url), pii="redact") == []
    client.messages.create(model="m", max_tokens=8, messages=email)
    forwarded = a.received[-1].body
    assert b"[REDACTED:email]" in forwarded and b"maria.gonzalez" not in forwarded


def test_guards_that_do_not_compile_change_nothing(rg, fakes):
    a, b = fakes
    bad = ACME.replace("acme_[A-Za-z0-9]{32}", "acme_(unclosed")
    with pytest.raises((ValueError, config.ConfigError), match="acme-token"):
        rg.rewrite(route("anthropic", b.url), extra=bad)
    assert sorted(rg.proxy.upstreams) == ["anthropic", "openai"]
    before = len(a.received)
    rg.anthropic("alice", max_retries=0).messages.create(model="m", max_tokens=8, messages=HI)
    assert len(a.received) == before + 1


def test_a_new_port_needs_a_restart(rg, fakes):
    a, _ = fakes
    assert rg.rewrite(route("anthropic", a.url), port=1) == ["server.port"]
    assert rg.anthropic("alice", max_retries=0).messages.create(model="m", max_tokens=8, messages=HI).content


def test_a_request_still_uploading_during_a_reload_is_served(rg, fakes):
    a, b = fakes
    old = rg.proxy.upstreams["anthropic"]
    body = orjson.dumps({"model": "m", "max_tokens": 8, "messages": HI})
    host, port = rg.base.split("//")[1].split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            f"POST /llm-gateway/anthropic/v1/messages HTTP/1.1\r\nHost: gw\r\nx-api-key: {rg.key('alice')}\r\n"
            f"anthropic-version: 2023-06-01\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n".encode() + body[:10]
        )
        wait(lambda: rg.proxy.inflight == 1, what="the gateway to take the request")
        sent_a = len(a.received)
        rg.rewrite(route("anthropic", b.url), route("openai", a.url, "openai"))
        # Were the retired upstream closed under this request, it would be within
        # milliseconds: a bounded look (no assertion) gives that a chance to show.
        deadline = time.monotonic() + 1
        while not old.session.closed and time.monotonic() < deadline:
            time.sleep(0.01)
        sock.sendall(body[10:])
        status = sock.recv(65536).split(b"\r\n", 1)[0]
    assert status == b"HTTP/1.1 200 OK"
    assert len(a.received) == sent_a + 1  # on the upstream it was routed to
    wait(lambda: old.session.closed, what="the retired upstream to close once idle")


def test_the_last_reload_wins(rg, fakes, tmp_path, servers):
    a, b = fakes
    first = tmp_path / "first.toml"  # adds a pattern: compiled in a thread
    first.write_text(rg.text(rg.state, route("anthropic", a.url), extra=ACME))
    second = tmp_path / "second.toml"  # the pattern taken out again, a route added
    second.write_text(rg.text(rg.state, route("anthropic", a.url), route("claude-b", b.url)))
    configs = [config.load(p, env=PROVIDER_KEYS) for p in (first, second)]

    async def both():
        return await asyncio.gather(*(reload(rg.runner.app, c) for c in configs))

    servers.run(both())
    assert sorted(rg.proxy.upstreams) == ["anthropic", "claude-b"]


# --- reload by SIGHUP ----------------------------------------------------------------------


def reloads(s: Served, result: str) -> float:
    return parse(httpx.get(f"{s.base}/metrics").text).value("aiogw_config_reloads_total", result=result) or 0


def serves(s: Served, name: str) -> bool:
    client = anthropic.Anthropic(base_url=f"{s.base}/llm-gateway/{name}", api_key=s.key, max_retries=0)
    try:
        return bool(client.messages.create(model="m", max_tokens=8, messages=HI).content)
    except anthropic.NotFoundError:
        return False
    finally:
        client.close()


@pytest.mark.timeout(120)
def test_sighup_applies_a_new_route_and_names_what_needs_a_restart(served, gateway):
    s = served()
    assert not serves(s, "claude-b")
    s.write(route("claude-b", gateway.fake_url))
    s.send(signal.SIGHUP)
    wait(lambda: serves(s, "claude-b"), what="the new route")
    assert reloads(s, "applied") == 1
    s.write(route("claude-b", gateway.fake_url), port=1)
    s.send(signal.SIGHUP)
    wait(lambda: "applied only at restart: server" in s.stderr(), what="the restart notice")
    assert reloads(s, "applied") == 2 and serves(s, "anthropic")  # still on its port
    assert s.stop() == 0


@pytest.mark.timeout(120)
@pytest.mark.parametrize("bad", [
    "[[routes]\nname = ",  # not TOML
    ACME.replace("acme_[A-Za-z0-9]{32}", "acme_(unclosed"),  # a pattern Hyperscan refuses
], ids=["not-toml", "bad-pattern"])
def test_sighup_with_an_invalid_file_keeps_the_running_config(served, gateway, bad):
    s = served(route("claude-b", gateway.fake_url))
    s.write(bad)  # and without claude-b: nothing of it may apply
    s.send(signal.SIGHUP)
    wait(lambda: "reload refused, the running config stays" in s.stderr(), what="the refusal")
    assert reloads(s, "refused") == 1 and reloads(s, "applied") == 0
    assert serves(s, "claude-b") and serves(s, "anthropic")
    assert s.stop() == 0
    assert "Traceback" not in s.stderr()


# --- drain ---------------------------------------------------------------------------------


@pytest.mark.timeout(120)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_streams_open_at_stop_finish_and_the_process_exits_0(served, gateway, sig):
    s = served(drain=60)
    gates = [f"drain-{sig.name}-{i}-{time.monotonic_ns()}" for i in range(3)]
    texts = [f"answer number {i}" + " word" * 10 for i in range(3)]
    streams = [gated(s.anthropic, g, t) for g, t in zip(gates, texts, strict=True)]
    s.send(sig)
    wait(lambda: "aiogw stopping: 3 open exchanges" in s.stderr(), what="the drain to begin")

    def refused() -> bool:
        try:
            httpx.get(f"{s.base}/healthz")
        except httpx.ConnectError:
            return True
        return False

    wait(refused, what="the listener to close")  # new connections refused, the streams still open
    for g in gates:
        gateway.servers.call(gateway.fake.open_gate, g)
    for stream in streams:
        stream.join(60)
    assert s.stop(timeout=60) == 0
    for stream, text in zip(streams, texts, strict=True):
        assert stream.error is None and "".join(stream.text) == text
        assert stream.final.stop_reason == "end_turn" and stream.events[-1] == "message_stop"
    rows = s.audit("SELECT id, outcome, stream FROM exchanges ORDER BY id")
    assert [(r["outcome"], r["stream"]) for r in rows] == [("ok", 1)] * 3
    logged = sorted((line["id"], line["outcome"]) for line in map(orjson.loads, s.stdout().splitlines()))
    assert logged == [(r["id"], "ok") for r in rows]
    assert "Traceback" not in s.stderr()


@pytest.mark.timeout(120)
def test_a_stream_past_the_drain_period_is_cut_and_audited_as_shutdown(served):
    s = served(drain=1)
    stream = gated(s.anthropic, f"never-{time.monotonic_ns()}", "never sent in full")  # the gate never opens
    s.send(signal.SIGTERM)
    stream.join(60)
    assert s.stop(timeout=60) == 0
    # What the agent sees: the body ended early, which the SDK raises as its connection error.
    assert stream.final is None and isinstance(stream.error, anthropic.APIConnectionError), repr(stream.error)
    assert "message_stop" not in stream.events and "".join(stream.text) != "never sent in full"
    (row,) = s.audit("SELECT id, outcome, reason, stream FROM exchanges")
    assert row.pop("id") == orjson.loads(s.stdout())["id"]  # its log line is out too
    assert row == {"outcome": "shutdown", "reason": "gateway stopping: drain period over", "stream": 1}


def refused_while_draining(rg, servers) -> tuple[httpx.Response, anthropic.APIStatusError]:
    """What the SIGTERM handler sets first, then /readyz and a request; back to serving after."""
    async def draining(on: bool) -> None:
        rg.proxy.draining = on

    servers.run(draining(True))
    try:
        ready = httpx.get(f"{rg.base.removesuffix('/llm-gateway')}/readyz")
        with pytest.raises(anthropic.APIStatusError) as err:
            rg.anthropic("alice", max_retries=0).messages.create(model="m", max_tokens=8, messages=HI)
    finally:
        servers.run(draining(False))
    return ready, err.value


def test_draining_readyz_is_503_and_a_request_gets_the_providers_503(rg, servers):
    ready, err = refused_while_draining(rg, servers)
    assert ready.status_code == 503 and ready.json()["checks"]["not_stopping"] is False
    assert err.status_code == 503 and err.body["error"]["type"] == "overloaded_error"
    assert err.response.headers["retry-after"] == "1"
    assert httpx.get(f"{rg.base.removesuffix('/llm-gateway')}/readyz").status_code == 200
    (row,) = rg.wait_for_audit("SELECT outcome, reason FROM exchanges", 1)
    assert row == ("refused", "draining")


def test_a_draining_refusal_is_counted_as_a_refusal(rg, servers):
    refused_while_draining(rg, servers)
    rg.wait_for_audit("SELECT id FROM exchanges", 1)  # the metrics are reported as the record is built
    metrics = httpx.get(f"{rg.base.removesuffix('/llm-gateway')}/metrics").text.splitlines()
    assert 'aiogw_refusals_total{reason="draining"} 1' in metrics


# --- an exception of the gateway's own -----------------------------------------------------


def _with_stages(proxy, change) -> None:
    """New requests run on the running stage list, changed (as a reload would switch it)."""
    stages = proxy.stages
    proxy.configure(proxy.users, proxy.upstreams, Stages(change(list(stages.stages)), stages.keeps_answer))


def _answer_guard(stages: list, guard) -> list:
    """The list with its answer guard's stage on `guard` instead."""
    assert any(isinstance(s, AnswerStage) for s in stages)
    return [AnswerStage(guard, s.deferrable) if isinstance(s, AnswerStage) else s for s in stages]


class Exploding:
    def check(self, ex):
        raise RuntimeError("a bug with a secret-looking message")


def test_an_unexpected_error_is_a_500_in_the_providers_envelope_and_audited(rg, servers, caplog):
    async def add_bug() -> None:
        _with_stages(rg.proxy, lambda stages: [*stages, Exploding()])

    servers.run(add_bug())
    with pytest.raises(anthropic.InternalServerError) as err:
        rg.anthropic("alice", max_retries=0).messages.create(model="m", max_tokens=8, messages=HI)
    assert err.value.status_code == 500 and err.value.body["error"]["type"] == "api_error"
    assert "unexpected error" in err.value.message and "secret-looking" not in err.value.response.text
    oai = openai.OpenAI(base_url=f"{rg.base}/openai/v1", api_key=rg.key("alice"), max_retries=0)
    with pytest.raises(openai.InternalServerError) as oerr:
        oai.chat.completions.create(model="gpt-4.1", messages=HI)
    assert "unexpected error" in oerr.value.response.json()["error"]["message"]
    rows = rg.wait_for_audit("SELECT route, status, outcome, reason FROM exchanges ORDER BY id", 2)
    assert rows == [("anthropic", 500, "gateway_error", "internal"), ("openai", 500, "gateway_error", "internal")]
    logged = [r for r in caplog.records if r.name == "aiogw.proxy" and r.exc_info]
    assert len(logged) == 2 and all(r.exc_info[0] is RuntimeError for r in logged)


class BrokenWatch:
    blocked = None
    findings = ()

    def feed(self, chunk):
        raise RuntimeError("a bug in the answer guard")

    def finish(self):
        pass


class BrokenAnswers:
    """An answer guard whose stream watch fails on the first chunk, after it went out
    (under `block`: a stream is watched chunk by chunk only then)."""

    def action(self, user):
        return "block"

    def watch(self, *args):
        return BrokenWatch()


class BrokenScan:
    """An answer guard under `log` whose scan of the answer read back fails."""

    def action(self, user):
        return "log"

    def scan_message(self, *args):
        raise RuntimeError("a bug in the answer guard")


def test_a_failing_scan_of_a_logged_answer_costs_neither_the_answer_nor_its_usage(rg, servers, caplog):
    async def add_bug() -> None:
        _with_stages(rg.proxy, lambda stages: _answer_guard(stages, BrokenScan()))

    servers.run(add_bug())
    client = rg.anthropic("alice", max_retries=0)
    with client.messages.stream(model="m", max_tokens=8, messages=HI, extra_headers={"x-fake-chunks": "5"}) as stream:
        message = stream.get_final_message()
    assert message.stop_reason == "end_turn"
    rows = rg.wait_for_audit("SELECT status, outcome, input_tokens > 0, output_tokens > 0 FROM exchanges", 1)
    assert rows == [(200, "ok", 1, 1)]
    assert any(r.name == "aiogw.guards" and r.exc_info and r.exc_info[0] is RuntimeError for r in caplog.records)


def test_an_unexpected_error_mid_stream_cuts_it_and_is_audited(rg, servers, caplog):
    async def add_bug() -> None:
        _with_stages(rg.proxy, lambda stages: _answer_guard(stages, BrokenAnswers()))

    servers.run(add_bug())
    client = rg.anthropic("alice", max_retries=0)
    events = []
    with pytest.raises(Exception, match="incomplete chunked read"):  # the SDK's HTTP client: a truncated body
        with client.messages.stream(model="m", max_tokens=8, messages=HI,
                                    extra_headers={"x-fake-chunks": "5", "x-fake-delay": "0.05"}) as stream:
            for event in stream:
                events.append(event.type)
    assert events and "message_stop" not in events  # its head went out, then it was cut
    rows = rg.wait_for_audit("SELECT status, outcome, reason, stream FROM exchanges", 1)
    assert rows == [(200, "gateway_error", "internal", 1)]
    assert any(r.name == "aiogw.proxy" and r.exc_info and r.exc_info[0] is RuntimeError for r in caplog.records)


def test_the_reload_line_names_the_users_it_changed(tmp_path):
    from aiogw.app import changes as _changes

    base = ('[[routes]]\nname = "anthropic"\ndialect = "anthropic"\nupstream = "http://127.0.0.1:9"\n'
            'credential = { env = "FAKE_ANTHROPIC" }\n')

    def load(users: str):
        path = tmp_path / "aiogw.toml"
        path.write_text(base + users)
        return config.load(path, env=PROVIDER_KEYS)

    old = load('[[users]]\nname = "ratey"\nlimits = { requests_per_minute = 2 }\n[[users]]\nname = "gone"\n'
               '[[users]]\nname = "same"\n')
    new = load('[[users]]\nname = "ratey"\nlimits = { requests_per_minute = 5 }\n[[users]]\nname = "same"\n'
               '[[users]]\nname = "newcomer"\n')
    assert _changes(old, new) == ["users (+newcomer, -gone, ~ratey limits)"]
    assert _changes(new, new) == []
    # [limits] changed: every user's limits did, and one word says so.
    raised = load('[limits]\nrequests_per_minute = 9\n[[users]]\nname = "ratey"\nlimits = { requests_per_minute = 5 }\n'
                  '[[users]]\nname = "same"\n[[users]]\nname = "newcomer"\n')
    assert _changes(new, raised) == ["limits"]
