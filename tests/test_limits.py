"""Usage, cost and limits end to end, through the official SDKs and a real gateway."""

from __future__ import annotations

import sqlite3
import threading
import time

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import types as genai_types

from aiogw.limits import report
from tests.redisserver import redis_server_fixture, redis_url_fixture  # noqa: F401
from tests.served import BASE_TOML, LimitedGateway

LIMITS_TOML = BASE_TOML + """
[limits]
requests_per_minute = 1000
[[users]]
name = "rpm"
limits = {{ requests_per_minute = 2 }}
[[users]]
name = "broke"
limits = {{ daily_budget_usd = 0.00001 }}
[[users]]
name = "picky"
limits = {{ models = ["claude-*"] }}
[[users]]
name = "crowd"
limits = {{ max_concurrent = 3, daily_budget_usd = 0.001 }}
"""


@pytest.fixture(params=["memory", "redis"])
def lg(request, servers, gateway, tmp_path):
    """A gateway with LIMITS_TOML, its counters in its memory or in Redis ([limits]
    store, a database of the test's own): every test of it holds for both."""
    toml = LIMITS_TOML
    if request.param == "redis":
        toml = toml.replace("[limits]\n", f'[limits]\nstore = "{request.getfixturevalue("redis_url")}"\n', 1)
    g = LimitedGateway(servers, gateway.fake, gateway.fake_url, tmp_path / "state.db", toml=toml)
    yield g
    g.stop()


def _ask(client: anthropic.Anthropic, **kw):
    return client.messages.create(model="claude-haiku-4-5", max_tokens=64,
                                  messages=[{"role": "user", "content": "hello"}], **kw)


# --- usage and cost of every dialect (the session gateway: audit on, no limits) --------


def test_usage_and_cost_recorded_for_every_dialect(gw):
    since = gw.audit("SELECT coalesce(max(id), '') AS m FROM exchanges")[0]["m"]
    a = anthropic.Anthropic(base_url=gw.url("anthropic"), api_key=gw.key)
    o = openai.OpenAI(base_url=gw.url("openai") + "/v1", api_key=gw.key)
    g = genai.Client(api_key=gw.key, http_options=genai_types.HttpOptions(base_url=gw.url("google")))
    msg = [{"role": "user", "content": "hello"}]
    got = []
    r = a.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=msg)
    got.append((r.usage.input_tokens, r.usage.output_tokens))
    with a.messages.stream(model="claude-haiku-4-5", max_tokens=64, messages=msg) as s:
        final = s.get_final_message()
    got.append((final.usage.input_tokens, final.usage.output_tokens))
    r = o.chat.completions.create(model="gpt-4.1", messages=msg)
    got.append((r.usage.prompt_tokens, r.usage.completion_tokens))
    list(o.chat.completions.create(model="gpt-4.1", messages=msg, stream=True))  # usage asked for by the gateway
    got.append(None)
    r = o.responses.create(model="gpt-5", input="hello")
    got.append((r.usage.input_tokens, r.usage.output_tokens))
    events = list(o.responses.create(model="gpt-5", input="hello", stream=True))
    u = events[-1].response.usage
    got.append((u.input_tokens, u.output_tokens))
    r = g.models.generate_content(model="gemini-2.5-flash", contents="hello")
    got.append((r.usage_metadata.prompt_token_count, r.usage_metadata.candidates_token_count))
    chunks = list(g.models.generate_content_stream(model="gemini-2.5-flash", contents="hello"))
    got.append((chunks[-1].usage_metadata.prompt_token_count, chunks[-1].usage_metadata.candidates_token_count))
    rows = gw.audited(since, count=len(got))
    assert len(rows) == len(got)
    for row, sdk in zip(rows, got, strict=True):
        assert row["cost_usd"] and row["cost_usd"] > 0 and row["priced"] == 1, row
        assert row["output_tokens"] > 0
        if sdk is not None:
            assert (row["input_tokens"] + row["cache_read_tokens"] + row["cache_write_tokens"], row["output_tokens"]) == sdk
    assert [r["stream"] for r in rows] == [0, 1, 0, 1, 0, 1, 0, 1]
    price = {"claude-haiku-4-5": (1.0, 5.0), "gpt-4.1": (2.0, 8.0), "gpt-5": (1.25, 10.0), "gemini-2.5-flash": (0.3, 2.5)}
    for row in rows:
        inp, out = price[row["model"]]
        if not row["cache_read_tokens"] and not row["cache_write_tokens"]:
            assert row["cost_usd"] == pytest.approx((row["input_tokens"] * inp + row["output_tokens"] * out) / 1e6)


def test_without_the_audit_usage_is_read_alone_and_is_the_sdks(servers, gateway, tmp_path):
    """No audit, metrics, log or answer guard: only limits read usage, and they read the
    usage alone (the JSON body's usage object, a stream's usage events), not the whole
    answer; it is what each SDK reports (a stream whose answer guard logs is read
    whole: the scan needs it)."""
    bare = BASE_TOML.replace("flush_interval = 0.02", "enabled = false")
    g = LimitedGateway(servers, gateway.fake, gateway.fake_url, tmp_path / "state.db", toml=bare,
                       extra='[metrics]\nenabled = false\n[log]\nexchanges = false\n[guards]\nenabled = false\n'
                             '[limits]\nrequests_per_minute = 1000\n[[users]]\nname = "lim"\n')
    try:
        key = g.key("lim")
        a = anthropic.Anthropic(base_url=f"{g.base}/anthropic", api_key=key)
        o = openai.OpenAI(base_url=f"{g.base}/openai/v1", api_key=key)
        gc = genai.Client(api_key=key, http_options=genai_types.HttpOptions(base_url=f"{g.base}/google"))
        msg = [{"role": "user", "content": "hello"}]
        got = []
        r = a.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=msg)
        got.append((r.usage.input_tokens, r.usage.output_tokens))
        with a.messages.stream(model="claude-haiku-4-5", max_tokens=64, messages=msg) as s:
            u = s.get_final_message().usage
        got.append((u.input_tokens, u.output_tokens))
        r = o.chat.completions.create(model="gpt-4.1", messages=msg)
        got.append((r.usage.prompt_tokens, r.usage.completion_tokens))
        chunks = list(o.chat.completions.create(model="gpt-4.1", messages=msg, stream=True,
                                                stream_options={"include_usage": True}))
        got.append((chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens))
        r = o.responses.create(model="gpt-5", input="hello")
        got.append((r.usage.input_tokens, r.usage.output_tokens))
        u = list(o.responses.create(model="gpt-5", input="hello", stream=True))[-1].response.usage
        got.append((u.input_tokens, u.output_tokens))
        r = gc.models.generate_content(model="gemini-2.5-flash", contents="hello")
        got.append((r.usage_metadata.prompt_token_count, r.usage_metadata.candidates_token_count))
        u = list(gc.models.generate_content_stream(model="gemini-2.5-flash", contents="hello"))[-1].usage_metadata
        got.append((u.prompt_token_count, u.candidates_token_count))
        exchanges = g.of("lim", count=len(got))
        assert len(exchanges) == len(got)
        for ex, sdk in zip(exchanges, got, strict=True):
            assert ex.cost > 0 and ex.priced, (ex.dialect, ex.endpoint)
            assert (ex.usage.input + ex.usage.cache_read + ex.usage.cache_write, ex.usage.output) == sdk
        # No audit: only the usage was read, never the whole answer.
        assert [ex.reading.whole_read for ex in exchanges] == [False] * 8
    finally:
        g.stop()


def test_unknown_model_is_charged_the_default_and_flagged(gw):
    a = anthropic.Anthropic(base_url=gw.url("anthropic"), api_key=gw.key)
    a.messages.create(model="claude-from-the-future", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    ex = gw.last_exchange()
    assert ex.priced is False and ex.cost > 0


# --- limits --------------------------------------------------------------------------


def test_rpm_refusal_is_the_sdks_rate_limit_error_with_retry_after(lg):
    client = lg.anthropic("rpm", max_retries=0)
    _ask(client)
    _ask(client)
    with pytest.raises(anthropic.RateLimitError) as err:
        _ask(client)
    retry = int(err.value.response.headers["retry-after"])
    assert 1 <= retry <= 30
    assert "2 requests a minute" in err.value.message
    assert lg.of("rpm")[-1].reason == "rate_limit:requests_per_minute"
    oai = openai.OpenAI(base_url=f"{lg.base}/openai/v1", api_key=lg.key("rpm"), max_retries=0)
    with pytest.raises(openai.RateLimitError):
        oai.chat.completions.create(model="gpt-4.1", messages=[{"role": "user", "content": "hi"}])


def test_over_budget_is_refused_once_without_sdk_retries(lg):
    client = lg.anthropic("broke")  # the SDK's default: 2 retries on retryable errors
    _ask(client)  # the first fits (nothing spent yet) and spends more than the budget
    assert lg.of("broke")[-1].cost > 0.00001
    before = len(lg.of("broke"))
    with pytest.raises(anthropic.PermissionDeniedError) as err:
        _ask(client)
    assert "daily budget" in err.value.message and "resets at" in err.value.message
    assert len(lg.of("broke")) == before + 1  # one request: the SDK did not retry
    assert lg.of("broke")[-1].reason == "budget:daily_budget_usd"


def test_model_not_allowed(lg):
    client = lg.anthropic("picky", max_retries=0)
    _ask(client)
    with pytest.raises(anthropic.PermissionDeniedError, match="may not use model 'gpt-5'"):
        client.messages.create(model="gpt-5", max_tokens=8, messages=[{"role": "user", "content": "hi"}])


def test_spend_and_windows_survive_a_restart(servers, gateway, tmp_path):
    state = tmp_path / "state.db"
    first = LimitedGateway(servers, gateway.fake, gateway.fake_url, state, toml=LIMITS_TOML)
    _ask(first.anthropic("broke"))
    _ask(first.anthropic("rpm", max_retries=0))
    _ask(first.anthropic("rpm", max_retries=0))
    first.stop()
    spent = sqlite3.connect(state).execute("SELECT sum(usd) FROM limit_spend WHERE user = 'broke'").fetchone()[0]
    assert spent > 0.00001
    second = LimitedGateway(servers, gateway.fake, gateway.fake_url, state, toml=LIMITS_TOML)
    try:
        with pytest.raises(anthropic.PermissionDeniedError):
            _ask(second.anthropic("broke", max_retries=0))
        with pytest.raises(anthropic.RateLimitError):  # the window remembered its two requests
            _ask(second.anthropic("rpm", max_retries=0))
    finally:
        second.stop()


def test_budget_overshoot_is_bounded_by_the_requests_in_flight(lg):
    """Twelve agents at once against a budget of a few requests: at most max_concurrent
    are in flight, estimates of in-flight input count against the budget, and the spend
    ends at most max_concurrent requests' cost above it."""
    key = lg.key("crowd")
    results: list[str] = []

    def one() -> None:
        client = anthropic.Anthropic(base_url=f"{lg.base}/anthropic", api_key=key, max_retries=0)
        try:
            with client.messages.stream(model="claude-haiku-4-5", max_tokens=64,
                                        messages=[{"role": "user", "content": "x" * 2000}],
                                        extra_headers={"x-fake-gate": "crowd"}) as s:
                s.get_final_message()
            results.append("ok")
        except anthropic.APIStatusError as exc:
            results.append(str(exc.status_code))

    threads = [threading.Thread(target=one) for _ in range(12)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while len(results) < 9 and time.monotonic() < deadline:  # the refused answer at once
        time.sleep(0.02)
    lg.servers.call(lg.fake.open_gate, "crowd")
    for t in threads:
        t.join(30)
    # A client has its stream's last event a moment before the gateway's handler ends.
    admitted = [ex for ex in lg.of("crowd", timeout=10, count=12) if ex.status == 200]
    assert results.count("ok") == len(admitted) <= 3
    assert set(results) <= {"ok", "429", "403"} and len(results) == 12
    spent = sum(ex.cost for ex in admitted)
    biggest = max(ex.cost for ex in admitted)
    assert "403" in results  # the in-flight estimates reached the budget before the concurrency limit
    assert spent <= 0.001 + 3 * biggest
    # And now the budget is spent: the next one is refused outright.
    if spent >= 0.001:
        with pytest.raises(anthropic.PermissionDeniedError):
            _ask(lg.anthropic("crowd", max_retries=0))


def test_usage_report_groups_tokens_and_cost(gw):
    a = anthropic.Anthropic(base_url=gw.url("anthropic"), api_key=gw.key)
    _ask(a)
    gw.wait_for(lambda: gw.audit("SELECT 1 FROM exchanges WHERE model = 'claude-haiku-4-5'"), 10)
    by_model = gw.servers.run(gw.store.usage_rows("model", "alice", None, None))
    rows = {r[0]: r for r in by_model}
    assert rows["claude-haiku-4-5"][1] >= 1 and rows["claude-haiku-4-5"][7] > 0
    text = report.render(gw.servers.run(gw.store.usage_rows("day", None, None, None)), "day")
    assert text.splitlines()[0].startswith("DAY") and "TOTAL" in text.splitlines()[-1]


def test_reload_changes_limits_and_keeps_counters(lg):
    """What SIGHUP does (aiogw.app.reload): new limits apply to the next request, the
    window keeps what was already used."""
    client = lg.anthropic("rpm", max_retries=0)
    _ask(client)
    _ask(client)
    with pytest.raises(anthropic.RateLimitError):
        _ask(client)
    lg.path.write_text(lg.path.read_text().replace("requests_per_minute = 2 }", "requests_per_minute = 3 }"))
    assert lg.reload() == []  # nothing left for a restart
    _ask(client)  # a third one now fits; the two before still count
    with pytest.raises(anthropic.RateLimitError):
        _ask(client)


def test_a_stream_cut_short_is_charged_what_its_events_report(gw):
    """The upstream dies after two events (message_start and the first block): the
    input tokens message_start reported are charged."""
    a = anthropic.Anthropic(base_url=gw.url("anthropic"), api_key=gw.key, max_retries=0,
                            default_headers={"x-fake-fault": "die"})
    seen = []
    with pytest.raises(Exception, match="incomplete chunked read"):  # what the SDK raises direct too
        with a.messages.stream(model="claude-haiku-4-5", max_tokens=64,
                               messages=[{"role": "user", "content": "hello " * 50}]) as s:
            for event in s:
                seen.append(event.type)
    assert seen[0] == "message_start"
    ex = gw.wait_for(lambda: next((e for e in reversed(gw.exchanges) if e.outcome == "upstream_aborted"), None))
    assert ex is not None

    assert ex.reading.whole is not None and not ex.reading.whole.complete
    assert ex.reading.whole.usage.input > 0 and ex.cost == pytest.approx(
        (ex.reading.whole.usage.input * 1.0 + ex.reading.whole.usage.output * 5.0) / 1e6)


def test_refusals_are_audited_with_their_reason_and_gemini_sees_429(lg):
    client = lg.anthropic("rpm", max_retries=0)
    _ask(client)
    _ask(client)
    g = genai.Client(api_key=lg.key("rpm"), http_options=genai_types.HttpOptions(
        base_url=f"{lg.base}/google", retry_options=genai_types.HttpRetryOptions(attempts=1)))
    with pytest.raises(anthropic.RateLimitError):
        _ask(client)
    rows = lg.wait_for_audit("SELECT status, outcome, reason FROM exchanges WHERE user = 'rpm' ORDER BY id", 3)
    assert rows[-1] == (429, "refused", "rate_limit:requests_per_minute")
    from google.genai import errors as genai_errors

    with pytest.raises(genai_errors.ClientError) as err:
        g.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert err.value.code == 429


def test_stream_options_null_is_still_charged_and_unseen(gw):
    """`"stream_options": null` must not let a stream through uncharged: the gateway
    asks for usage there too, and the client still sees none."""
    import httpx

    body = {"model": "gpt-4.1", "stream": True, "stream_options": None, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.stream("POST", gw.url("openai") + "/v1/chat/completions", json=body,
                      headers={"Authorization": f"Bearer {gw.key}"}) as r:
        raw = r.read()
    assert b'"usage"' not in raw and raw.endswith(b"data: [DONE]\n\n")
    sent = orjson_loads(gw.fake.received[-1].body)
    assert sent["stream_options"] == {"include_usage": True}
    assert gw.last_exchange().cost > 0


def orjson_loads(data: bytes):
    import orjson

    return orjson.loads(data)


def test_a_compressing_upstream_is_asked_for_an_uncompressed_stream(servers, gateway, tmp_path):
    """The OpenAI SDK accepts gzip; to take the usage chunk out the gateway asks the
    upstream for identity, so the SDK sees the stream it would see direct."""
    from aiogw.fake_upstream import FakeConfig, FakeUpstream

    fake = FakeUpstream(FakeConfig(compress=True))
    port = servers.run(fake.start())
    try:
        g = LimitedGateway(servers, fake, f"http://127.0.0.1:{port}", tmp_path / "state.db", toml=LIMITS_TOML)
        try:
            client = openai.OpenAI(base_url=f"{g.base}/openai/v1", api_key=g.key("rpm"), max_retries=0)
            chunks = list(client.chat.completions.create(model="gpt-4.1", stream=True,
                                                         messages=[{"role": "user", "content": "hi"}]))
            assert all(c.choices for c in chunks) and all(c.usage is None for c in chunks)
            assert fake.received[-1].headers.get("accept-encoding") == "identity"
            assert g.last("rpm").cost > 0
        finally:
            g.stop()
    finally:
        servers.run(fake.stop())


def test_unmetered_endpoints_are_refused_to_users_with_model_or_budget_limits(lg):
    import httpx

    for user in ("picky", "broke"):
        r = httpx.post(f"{lg.base}/openai/v1/audio/speech", json={"model": "gpt-5", "input": "hi"},
                       headers={"Authorization": f"Bearer {lg.key(user)}"})
        assert r.status_code == 403 and "cannot tell the model or meter the cost" in r.json()["error"]["message"]
    r = httpx.post(f"{lg.base}/openai/v1/audio/speech", json={"model": "gpt-5", "input": "hi"},
                   headers={"Authorization": f"Bearer {lg.key('rpm')}"})
    assert r.status_code != 403  # no model or budget limits: forwarded (the fake has no such endpoint)
    r = httpx.get(f"{lg.base}/openai/v1/models", headers={"Authorization": f"Bearer {lg.key('picky')}"})
    assert r.status_code == 200


def test_reload_applies_the_user_list(lg):
    client = lg.anthropic("picky", max_retries=0)
    _ask(client)
    lg.path.write_text(lg.path.read_text().replace('[[users]]\nname = "picky"', '[[users]]\nname = "newcomer"'))
    assert lg.reload() == []
    with pytest.raises(anthropic.AuthenticationError, match="no longer in the gateway's config"):
        _ask(client)
    _ask(lg.anthropic("newcomer", max_retries=0))


def test_reload_can_switch_limits_on(servers, gateway, tmp_path):
    """A gateway started with nothing that reads usage (no audit, metrics, exchange log
    or limits) picks limits up on reload."""
    bare = BASE_TOML.replace("flush_interval = 0.02", "enabled = false")
    g = LimitedGateway(servers, gateway.fake, gateway.fake_url, tmp_path / "state.db", toml=bare,
                       extra='[metrics]\nenabled = false\n[log]\nexchanges = false\n[[users]]\nname = "rpm"\n')
    try:
        client = g.anthropic("rpm", max_retries=0)
        for _ in range(3):
            _ask(client)
        assert g.of("rpm", count=3)[-1].cost is None  # nothing was accounted
        g.path.write_text(g.path.read_text() + 'limits = { requests_per_minute = 1 }\n')
        g.reload()
        _ask(client)
        assert g.of("rpm", count=4)[-1].cost > 0
        with pytest.raises(anthropic.RateLimitError):
            _ask(client)
    finally:
        g.stop()


def test_gemini_rate_limit_carries_retry_info(lg):
    import httpx

    key = lg.key("rpm")
    url = f"{lg.base}/google/v1beta/models/gemini-2.5-flash:generateContent"
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    answers = [httpx.post(url, json=body, headers={"x-goog-api-key": key}) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    error = answers[-1].json()["error"]
    assert error["status"] == "RESOURCE_EXHAUSTED"
    assert error["details"][0]["@type"] == "type.googleapis.com/google.rpc.RetryInfo"
    assert error["details"][0]["retryDelay"] == f"{answers[-1].headers['retry-after']}s"


def test_spend_of_a_user_without_limits_is_stored_at_shutdown(servers, gateway, tmp_path):
    """Charged by the audit writer (deferred), and still in the stored spend after a
    clean stop: the writer drains before the store's last flush."""
    # The writer waits 5 s for a batch: at the stop, the exchange is still uncharged.
    slow = BASE_TOML.replace("flush_interval = 0.02", "flush_interval = 5")
    free = LimitedGateway(servers, gateway.fake, gateway.fake_url, tmp_path / "state.db", toml=slow,
                          extra='[[users]]\nname = "free"\n')
    try:
        _ask(free.anthropic("free", max_retries=0))
        assert not free.cfg.users[0].limits.any  # so the audit writer charges it
    finally:
        free.stop()
    spent = sqlite3.connect(free.state).execute("SELECT sum(usd) FROM limit_spend WHERE user = 'free'").fetchone()[0]
    assert spent and spent > 0


def test_a_failing_sink_costs_neither_the_record_nor_the_charge(servers, gateway, tmp_path):
    def broken(ex):
        raise RuntimeError("a metrics exporter fell over")

    g = LimitedGateway(servers, gateway.fake, gateway.fake_url, tmp_path / "state.db", toml=LIMITS_TOML, sinks=[broken])
    try:
        _ask(g.anthropic("picky", max_retries=0))
        g.wait_for_audit("SELECT id FROM exchanges WHERE user = 'picky' AND cost_usd > 0", 1)
        assert g.exchanges and g.exchanges[-1].user == "picky"  # the sink after it still ran
    finally:
        g.stop()
    assert sqlite3.connect(g.state).execute("SELECT count(*) FROM exchanges WHERE user = 'picky' AND cost_usd > 0"
                                            ).fetchone()[0] == 1


def test_readiness_follows_the_audit_writer_and_the_store(gw, monkeypatch):
    """/healthz says the process answers; /readyz whether to send it traffic. Neither
    needs a gateway key."""
    import httpx

    from aiogw.audit.writer import AuditWriter

    root = gw.base.rsplit("/llm-gateway", 1)[0]
    assert httpx.get(f"{root}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{root}/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert set(ready.json()["checks"]) == {"state_writable", "spend_saving", "audit_writer", "audit_keeping_up"}
    monkeypatch.setattr(AuditWriter, "alive", property(lambda self: False))
    down = httpx.get(f"{root}/readyz")
    assert down.status_code == 503 and down.json()["checks"]["audit_writer"] is False


def test_a_limited_users_stream_is_charged_at_once_and_reported_with_its_answers_findings(lg):
    """An Anthropic stream of a user with limits is charged from its usage events as it
    ends: the next request already meets the spent budget. Its answer is read whole and
    scanned later, by the audit writer, and the record still has the answer's finding
    and the same tokens."""
    secret = "Use AKIA4J7Q2ZRX5KD3MNPW for the deploy."  # a credential, logged in answers
    client = lg.anthropic("broke", max_retries=0, default_headers={"x-fake-text": secret, "x-fake-chunks": "8"})
    with client.messages.stream(model="claude-haiku-4-5", max_tokens=64,
                                messages=[{"role": "user", "content": "key?"}]) as s:
        final = s.get_final_message()
    assert "".join(b.text for b in final.content) == secret
    with pytest.raises(anthropic.PermissionDeniedError, match="daily budget"):
        _ask(client)  # admitted only if the stream was not charged yet
    rows = lg.wait_for_audit("SELECT outcome, input_tokens, output_tokens, findings, cost_usd FROM exchanges "
                             "WHERE user = 'broke' ORDER BY id", 2)
    assert rows[0][:4] == ("ok", final.usage.input_tokens, final.usage.output_tokens, 1) and rows[0][4] > 0.00001
    assert rows[1][0] == "refused"
    # The report (metrics) came after the answer's scan: the finding is counted.
    exposition = httpx.get(lg.base.removesuffix("/llm-gateway") + "/metrics").text
    assert 'aiogw_guard_findings_total{category="credential",place="response",action="log"} 1' in exposition
