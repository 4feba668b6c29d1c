"""Prices, buckets, the ledger's rules and the usage-chunk filter: plain data."""

from __future__ import annotations

import pytest

from aiogw import config
from aiogw.dialects import Usage
from aiogw.errors import NotAllowed, RateLimited
from aiogw.limits.buckets import Bucket
from aiogw.limits.ledger import Ledger
from aiogw.limits.prices import PriceTable
from aiogw.limits.settings import Limits, PriceSettings
from aiogw.limits.usagechunk import UsageChunkFilter

NOW = 1_790_000_000.0  # 2026-09-21, mid-day UTC


def test_price_lookup_by_id_date_alias_and_prefix():
    table = PriceTable()
    sonnet = table.lookup("claude-sonnet-4-5")
    assert sonnet is not None and (sonnet.input, sonnet.output) == (3.0, 15.0)
    assert table.lookup("claude-sonnet-4-5-20250929") is sonnet or table.lookup("claude-sonnet-4-5-20250929") == sonnet
    assert table.lookup("claude-3-7-sonnet-latest").input == 3.0  # alias
    assert table.lookup("gpt-4.1-2025-04-14").output == 8.0  # dated id with dashes
    assert table.lookup("gpt-5-2099-01-01").input == 1.25  # a date the table never heard of
    assert table.lookup("models/gemini-2.5-flash").output == 2.5  # Gemini's resource name
    assert table.lookup("gpt-4o-2024-05-13").input == 5.0  # its own entry beats the date rule
    assert table.lookup("llama-3-70b") is None


def test_cost_with_cache_parts_and_unknown_models():
    table = PriceTable(PriceSettings({"input": 1.0, "output": 2.0}, {"my-model": {"input": 10.0, "output": 20.0}}))
    usage = Usage(input=1_000_000, output=1_000_000, cache_read=1_000_000, cache_write=2_000_000, cache_write_1h=1_000_000)
    # 1 + 5 + 0.10 + 1.25 (5-minute write) + 2 (1-hour write)
    assert table.cost("claude-haiku-4-5", usage) == (pytest.approx(1 + 5 + 0.10 + 1.25 + 2.0), True)
    assert table.cost("my-model", Usage(input=1_000_000)) == (pytest.approx(10.0), True)
    assert table.cost("nobody-knows", Usage(input=1_000_000, output=1_000_000)) == (pytest.approx(3.0), False)


def test_long_context_tier_bills_the_whole_request():
    table = PriceTable()
    short = Usage(input=100_000, output=1_000)
    long = Usage(input=150_000, cache_read=60_000, output=1_000)  # prompt 210k > 200k
    assert table.cost("claude-sonnet-4-5", short)[0] == pytest.approx((100_000 * 3 + 1_000 * 15) / 1e6)
    assert table.cost("claude-sonnet-4-5", long)[0] == pytest.approx((150_000 * 6 + 60_000 * 0.6 + 1_000 * 22.5) / 1e6)


def test_bucket_refills_continuously_and_allows_no_double_burst():
    b = Bucket(60, NOW)
    for _ in range(60):
        assert b.wait(1, NOW) == 0
        b.take(1)
    assert b.wait(1, NOW) == pytest.approx(1.0)  # one a second comes back
    assert b.wait(1, NOW + 0.5) == pytest.approx(0.5)
    # Past a "minute boundary" only what refilled is there: 30 s bring back 30, not 60.
    b.refill(NOW + 30)
    assert b.level == pytest.approx(30)
    assert Bucket(10, NOW).wait(50, NOW) == 0  # a need above capacity waits for a full bucket only


def test_ledger_refusals_name_the_limit_and_reset():
    ledger = Ledger(Limits(), {
        "r": Limits(requests_per_minute=2),
        "t": Limits(tokens_per_minute=1000),
        "c": Limits(max_concurrent=1),
        "d": Limits(daily_budget_usd=1.0),
        "m": Limits(models=("claude-*",), routes=("anthropic*",)),
    })
    ledger.admit("r", "anthropic", "x", 0, 0, NOW)
    ledger.admit("r", "anthropic", "x", 0, 0, NOW)
    with pytest.raises(RateLimited) as err:
        ledger.admit("r", "anthropic", "x", 0, 0, NOW)
    assert err.value.retry_after == 30 and err.value.kind == "rate_limit:requests_per_minute"
    held = ledger.admit("t", "anthropic", "x", 900, 0, NOW)
    with pytest.raises(RateLimited) as err:
        ledger.admit("t", "anthropic", "x", 200, 0, NOW)
    assert "1000 tokens a minute" in err.value.message
    ledger.settle("t", held, 100, 0.0, NOW)  # it used 100, not 900: the window gets 800 back
    ledger.admit("t", "anthropic", "x", 200, 0, NOW)
    one = ledger.admit("c", "anthropic", "x", 0, 0, NOW)
    with pytest.raises(RateLimited):
        ledger.admit("c", "anthropic", "x", 0, 0, NOW)
    ledger.settle("c", one, 0, 0.0, NOW)
    ledger.admit("c", "anthropic", "x", 0, 0, NOW)
    spend = ledger.admit("d", "anthropic", "x", 0, 0, NOW)
    ledger.settle("d", spend, 10, 1.5, NOW)
    with pytest.raises(NotAllowed) as err:
        ledger.admit("d", "anthropic", "x", 0, 0, NOW)
    assert "$1.50 of the daily budget of $1.00" in err.value.message and "resets at 2026-09-22 00:00 UTC" in err.value.message
    ledger.admit("d", "anthropic", "x", 0, 0, NOW + 86_400)  # a new day
    with pytest.raises(NotAllowed, match="may not use model 'gpt-5'"):
        ledger.admit("m", "anthropic", "gpt-5", 0, 0, NOW)
    with pytest.raises(NotAllowed, match="may not use route 'openai'"):
        ledger.admit("m", "openai", "claude-x", 0, 0, NOW)
    ledger.admit("m", "anthropic", "claude-haiku-4-5", 0, 0, NOW)


def test_in_flight_estimates_count_against_the_budget():
    ledger = Ledger(Limits(daily_budget_usd=1.0), {})
    first = ledger.admit("u", "a", "m", 1000, 0.6, NOW)
    ledger.admit("u", "a", "m", 1000, 0.6, NOW)  # 0.6 in flight: still under the budget
    with pytest.raises(NotAllowed):  # 1.2 in flight: over it
        ledger.admit("u", "a", "m", 1000, 0.6, NOW)
    ledger.settle("u", first, 1000, 0.1, NOW)  # it cost 0.1: 0.7 committed, room again
    ledger.admit("u", "a", "m", 1000, 0.2, NOW)


def test_reconfigure_keeps_counters():
    ledger = Ledger(Limits(requests_per_minute=10), {})
    for _ in range(10):
        ledger.admit("u", "a", "m", 0, 0, NOW)
    ledger.reconfigure(Limits(requests_per_minute=20), {})
    for _ in range(10):
        ledger.admit("u", "a", "m", 0, 0, NOW)
    with pytest.raises(RateLimited):
        ledger.admit("u", "a", "m", 0, 0, NOW)


STREAM = (
    b'data: {"id":"c1","choices":[{"index":0,"delta":{"content":"a \\"usage\\":null"}}],"usage":null}\n\n'
    b'data: {"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}\n\n'
    b'data: {"id":"c1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}\n\n'
    b"data: [DONE]\n\n"
)
EXPECTED = (
    b'data: {"id":"c1","choices":[{"index":0,"delta":{"content":"a \\"usage\\":null"}}]}\n\n'
    b'data: {"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)


def test_usage_filter_at_every_split():
    for cut in range(len(STREAM) + 1):
        for cut2 in range(cut, len(STREAM) + 1, 7):
            f = UsageChunkFilter()
            out = f.feed(STREAM[:cut]) + f.feed(STREAM[cut:cut2]) + f.feed(STREAM[cut2:]) + f.end()
            assert out == EXPECTED, (cut, cut2)


def test_limits_config_defaults_and_user_overrides(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(
        '[[routes]]\nname = "a"\ndialect = "anthropic"\nupstream = "http://127.0.0.1:1"\ncredential = "client"\n'
        "[limits]\nrequests_per_minute = 600\ndaily_budget_usd = 50.0\n"
        '[[users]]\nname = "build-agent"\nlimits = { requests_per_minute = 60, models = ["claude-*"] }\n'
        '[prices]\ndefault = { input = 1.0, output = 2.0 }\n[prices.models."mine"]\ninput = 0.5\noutput = 1.5\n'
    )
    cfg = config.load(path, env={})
    assert cfg.limits == Limits(requests_per_minute=600, daily_budget_usd=50.0)
    assert cfg.users[0].limits == Limits(requests_per_minute=60, daily_budget_usd=50.0, models=("claude-*",))
    assert PriceTable(cfg.prices).lookup("mine").input == 0.5
    path.write_text(path.read_text().replace("daily_budget_usd = 50.0", 'daily_budget_usd = "lots"'))
    with pytest.raises(config.ConfigError, match=r"limits\.daily_budget_usd: expected an amount in USD"):
        config.load(path, env={})


def test_small_budgets_are_shown_to_the_cent_fraction():
    ledger = Ledger(Limits(daily_budget_usd=0.00001), {})
    held = ledger.admit("u", "a", "m", 10, 0.000002, NOW)
    ledger.settle("u", held, 10, 0.0000183, NOW)
    with pytest.raises(NotAllowed, match=r"spent \$0\.000018 of the daily budget of \$0\.00001;"):
        ledger.admit("u", "a", "m", 10, 0.0, NOW)


def test_a_lowered_limit_never_waits_more_than_a_minute():
    b = Bucket(100, NOW)
    b.take(100)
    b.resize(2)
    assert b.wait(1, NOW) <= 60
    b.take(1_000_000)  # far more than estimated
    assert b.wait(1, NOW) <= 120


@pytest.mark.parametrize("value", [0, -1, 1.5, True])
def test_zero_or_odd_limits_are_config_errors(tmp_path, value):
    path = tmp_path / "c.toml"
    path.write_text(
        '[[routes]]\nname = "a"\ndialect = "anthropic"\nupstream = "http://127.0.0.1:1"\ncredential = "client"\n'
        f"[limits]\nrequests_per_minute = {str(value).lower()}\n"
    )
    with pytest.raises(config.ConfigError, match="expected a whole number of 1 or more"):
        config.load(path, env={})


@pytest.mark.parametrize(("extra", "message"), [
    ('[prices.models."mine"]\ninput = 1.0\n', r'prices\.models\."mine": needs at least input and output'),
    ('[prices.models."mine"]\ninput = -1.0\noutput = 1.0\n', r'prices\.models\."mine"\.input: expected USD per million'),
    ('[prices]\ndefault = 3.0\n', r"prices\.default: expected a table of prices"),
    ('[prices.models."mine"]\ninput = 1.0\noutput = 2.0\nlong_context = { input = 2.0 }\n',
     r'long_context: expected \{ above = TOKENS'),
    ('[limits]\nroutes = ["anthropc"]\n', r"limits\.routes: no route named 'anthropc'; the routes are a"),
    ('[limits]\nmodels = "claude-*"\n', r"limits\.models: expected a list of names or glob patterns"),
    ('[limits]\nhourly_budget_usd = 1.0\n', r"limits\.hourly_budget_usd: unknown key"),
])
def test_price_and_limit_mistakes_are_named(tmp_path, extra, message):
    path = tmp_path / "c.toml"
    path.write_text(
        '[[routes]]\nname = "a"\ndialect = "anthropic"\nupstream = "http://127.0.0.1:1"\ncredential = "client"\n' + extra
    )
    with pytest.raises(config.ConfigError, match=message):
        config.load(path, env={})


def test_one_exchange_failing_to_settle_leaves_the_others_of_its_turn_settled():
    """Settlement runs in a batch at the end of the loop turn: an exchange whose
    settlement raises is logged, and the others of the batch are still charged and
    release their slots. A price that cannot be computed still releases the slot."""
    import asyncio

    import orjson

    from aiogw.exchange import Exchange
    from aiogw.limits.accounting import Accountant, ChargeNow
    from aiogw.limits.admission import LimitAdmission

    class Prices(PriceTable):
        def cost(self, model, usage):
            if model == "broken-model":
                raise ValueError("a price table bug")
            return super().cost(model, usage)

    class Books(Ledger):
        def settle(self, user, admission, tokens, usd, now):
            if user == "bad":
                raise RuntimeError("a ledger bug")
            super().settle(user, admission, tokens, usd, now)

    ledger = Books(Limits(max_concurrent=10), {})
    accountant = Accountant(ledger, Prices())
    admit = LimitAdmission(accountant)
    charge = ChargeNow(accountant)
    answer = orjson.dumps({"type": "message", "usage": {"input_tokens": 10, "output_tokens": 5}})

    async def turn() -> list[Exchange]:
        done = []
        for user, model in (("u", "claude-haiku-4-5"), ("bad", "claude-haiku-4-5"), ("u", "broken-model"),
                            ("u", "claude-haiku-4-5")):
            ex = Exchange("POST")
            ex.user, ex.route, ex.dialect, ex.endpoint, ex.model = user, "anthropic", "anthropic", "messages", model
            ex.body, ex.status, ex.response_body = b"{}", 200, answer
            admit.check(ex)
            ex.first_byte()
            ex.finish()
            charge.end(ex)
            done.append(ex)
        await asyncio.sleep(0)  # the end of the turn
        return done

    first, _bad, unpriced, last = asyncio.run(turn())
    assert first.cost > 0 and last.cost > 0 and unpriced.cost is None
    assert ledger.states["u"].in_flight == 0  # every slot of the user released, the unpriced one's too
    assert first.usage is not None and last.usage is not None  # settled
