"""Where limits meet the request path: admission before forwarding, accounting after.

`LimitCheck` is the preflight check (after the guards): it estimates the request's
input tokens and asks the `Ledger` to admit it. `UsageRequest` makes OpenAI chat
streams report usage: it asks the upstream for it and marks the exchange so the relay
removes what the client did not ask for. `Accountant.finish` runs when an exchange
ends: it reads the usage from the response (the provider's own fields, streams
included), prices it, releases the request's slot and charges the user (or leaves that
to the audit writer, see `Accountant`).

The input estimate is the body's bytes over four. JSON punctuation, keys and escapes
make it run high: 2.1-2.6 times the fake upstream's count (`python -m bench.limits`).
High is the safe side: it only holds a minute's token window until the exchange ends
and the provider's own count corrects it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import orjson

from aiogw import answer as answers
from aiogw.dialects import Usage
from aiogw.errors import GatewayError, NotAllowed
from aiogw.exchange import Exchange
from aiogw.limits.ledger import Ledger
from aiogw.limits.prices import PriceTable
from aiogw.preflight import CONTINUE, REWRITE, Refuse, Verdict

log = logging.getLogger("aiogw.limits")

# Endpoints whose requests produce no billed tokens.
_FREE = frozenset(("count_tokens", "input_tokens", "models", "probe"))


def estimate_tokens(ex: Exchange) -> int:
    """Input tokens a request will be billed, before the provider says: bytes / 4."""
    if ex.body is None or ex.endpoint in _FREE:
        return 0
    return len(ex.body) // 4


class LimitCheck:
    __slots__ = ("accountant",)

    def __init__(self, accountant: Accountant) -> None:
        self.accountant = accountant  # its ledger and prices: a reload replaces them there

    def check(self, ex: Exchange) -> Verdict:
        ledger = self.accountant.ledger
        if ex.user is None or not ledger.limited(ex.user):
            return CONTINUE
        if ex.endpoint == "other" and ex.method not in ("GET", "HEAD"):
            limits = ledger.limits(ex.user)
            if limits.models is not None or limits.daily_budget_usd is not None or limits.monthly_budget_usd is not None:
                # Fail closed: an endpoint the gateway does not read (batches, audio, files
                # ...) could use any model and would never be charged.
                return Refuse(NotAllowed(
                    f"aiogw: user {ex.user!r} has model or budget limits, and the gateway cannot tell the model "
                    f"or meter the cost of {ex.method} {ex.path}; ask the gateway operator for a user without "
                    "them for this endpoint.",
                    kind="limit:unmetered_endpoint",
                ))
        tokens = estimate_tokens(ex)
        prices = self.accountant.prices
        price = prices.lookup(ex.model) or prices.default
        try:
            ex.held = ledger.admit(ex.user, ex.route, ex.model, tokens, tokens * price.input / 1e6, time.time())
        except GatewayError as err:
            return Refuse(err)
        ex.estimate = tokens
        return CONTINUE


class UsageRequest:
    """OpenAI chat streams carry usage only when the client set
    `stream_options.include_usage`; without it the gateway could not charge them."""

    __slots__ = ("accountant",)

    def __init__(self, accountant: Accountant) -> None:
        self.accountant = accountant

    def check(self, ex: Exchange) -> Verdict:
        if ex.dialect != "openai" or ex.endpoint != "chat" or not ex.stream or ex.json is None:
            return CONTINUE
        if not self.accountant.active:
            return CONTINUE
        options = ex.json.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage") is True:
            return CONTINUE
        if "stream_options" not in ex.json and ex.body is not None and ex.body.lstrip()[:1] == b"{":
            # Spliced in front: the client's bytes stay as they were after it.
            body = ex.body.lstrip()
            sep = b"," if body[1:].lstrip()[:1] != b"}" else b""
            ex.body = b'{"stream_options":{"include_usage":true}' + sep + body[1:]
            ex.json["stream_options"] = {"include_usage": True}
        elif options is None or isinstance(options, dict):  # null, or an object without it
            ex.json["stream_options"] = {**(options or {}), "include_usage": True}
            ex.body = orjson.dumps(ex.json)
        else:
            return CONTINUE  # not an object: the upstream will say what is wrong with it
        ex.strip_usage = True
        return REWRITE


class Accountant:
    """Usage and cost of every finished exchange, into the ledger. `active` when
    something needs them (the audit, or limits for any user); a reload may switch it.

    With the audit on, an exchange of a user without limits is settled by the audit
    writer when it reads the answer for the record (`deferred`): a stream's answer is
    then read once, in the writer's short slices, not in one piece on the loop as the
    stream ends. A user with limits is charged at once: the windows and budgets need
    the real usage before the next request. Where the dialect can read a stream's usage
    from its usage events alone (all but Gemini's JSON array), that is all that
    happens on the loop; the answer is read whole, scanned and reported by the writer as
    for everyone else (a 500-event answer read whole on the loop held the next streams'
    first bytes back).

    What is settled on the loop is settled in a batch at the end of the loop turn the
    exchange ended in, before the next turn reads new requests: the same code for every
    exchange of a busy turn runs with warm caches, which halved limits' cost a 1 KB
    request in the gateway (bench.limits). Until then the exchange counts as in flight,
    so no budget or window is crossed by more than the bound in aiogw.limits.ledger.
    """

    __slots__ = ("_due", "active", "deferred", "done", "ledger", "prices")

    def __init__(self, ledger: Ledger, prices: PriceTable, active: bool = True, deferred: bool = False) -> None:
        self.ledger = ledger
        self.prices = prices
        self.active = active
        self.deferred = deferred
        # Told of every exchange once it is settled (metrics, the log line): with its
        # usage and cost known, whichever of the two paths above settled it.
        self.done: Callable[[Exchange], None] | None = None
        self._due: list[Exchange] = []

    def finish(self, ex: Exchange) -> None:
        if ex.held is None:
            if not self.active:
                return
            if self.deferred and (ex.user is None or not self.ledger.limited(ex.user)):
                ex.settle_later = True
                return
        elif self.deferred and self._chargeable(ex):
            try:
                usage = answers.usage_only(ex)
            except Exception:
                log.exception("limits: could not read the usage of a %s %s stream", ex.dialect, ex.endpoint)
                usage = None
            if usage is not None:
                self._charge(ex, usage)
                ex.settle_later = True  # the writer reads, scans and reports it
                return
        ex.settle_later = True  # here at the turn's end, or by the audit writer if it comes first
        self._due.append(ex)
        if len(self._due) == 1:
            asyncio.get_running_loop().call_soon(self._settle_due)

    def _settle_due(self) -> None:
        due, self._due = self._due, []
        for ex in due:
            if ex.settle_later:
                try:
                    self.settle(ex)
                except Exception:  # one exchange's trouble must not leave the others unsettled
                    log.exception("limits: could not settle a %s %s exchange", ex.dialect, ex.endpoint)

    def settle(self, ex: Exchange) -> None:
        """Read the usage, price it, charge the user, release the request's slot; then
        report the exchange. One charged already (`finish`) is only read and reported."""
        if ex.usage is None:
            try:
                usage = self.usage(ex)
            except Exception:  # accounting must never cost the exchange its slot or record
                log.exception("limits: could not read the usage of a %s %s exchange", ex.dialect, ex.endpoint)
                usage = Usage()
            self._charge(ex, usage)
        else:
            try:
                answers.read(ex)  # the whole answer, and its scan, before the report
            except Exception:
                log.exception("could not read the answer of a %s %s exchange", ex.dialect, ex.endpoint)
        # Cleared once usage and cost are on the exchange: a test's thread waits on it.
        ex.settle_later = False
        if self.done is not None:
            try:
                self.done(ex)
            except Exception:  # a metric or log line must not cost the exchange its record
                log.exception("could not report a %s %s exchange", ex.dialect, ex.endpoint)

    @staticmethod
    def _chargeable(ex: Exchange) -> bool:
        return bool(ex.stream and ex.model and ex.t_first_byte is not None and ex.status < 400 and ex.endpoint not in _FREE)

    def _charge(self, ex: Exchange, usage: Usage) -> None:
        tokens = usage.input + usage.output + usage.cache_read + usage.cache_write
        if tokens:
            # An unknown model is charged the default price; ex.priced = False says so
            # (the audit record, aiogw_unpriced_exchanges_total, the log line).
            try:
                ex.cost, ex.priced = self.prices.cost(ex.model or _answer_model(ex), usage)
            except Exception:  # still counted in the token window, and the slot released
                log.exception("limits: could not price a %s exchange of %r", ex.dialect, ex.model)
        if ex.user is not None and (ex.held is not None or tokens):
            self.ledger.settle(ex.user, ex.held, tokens, ex.cost or 0.0, time.time())
        ex.held = None
        ex.usage = usage

    def usage(self, ex: Exchange) -> Usage:
        if ex.t_first_byte is None or ex.status >= 400 or ex.endpoint in _FREE:
            return Usage()
        if not self.deferred and ex.scan_answer is None and ex.model:
            # No audit, no scan waiting: nothing else reads this answer, so the usage
            # alone (parsing the whole answer cost limits ~10 µs a request).
            found = answers.usage_only(ex)
            if found is not None:
                return found
        _, answer = answers.read(ex)
        return answer.usage if answer is not None else Usage()


def _answer_model(ex: Exchange) -> str | None:
    return getattr(ex.answer, "model", None)
