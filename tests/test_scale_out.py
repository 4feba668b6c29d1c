"""Two gateway instances as one (issue #19, item 5): separate processes (`aiogw serve`)
on ports of their own, sharing one PostgreSQL ([state] url: keys, audit, spend) and one
Redis ([limits] store), before the fake upstream, driven with the official SDKs,
alternating between the instances as a load balancer would.

What must hold: a limit holds across both as it would in one gateway (requests a
minute, requests in flight, the daily budget within its stated overshoot), also for a
user busy enough that each instance admits it on a lease (aiogw.limits.lease); a key
revoked through one is refused by the other within a second; an instance killed in the
middle of streams costs the other nothing, and its reservations expire after
`reservation_seconds`; every exchange of both is in one audit trail and one usage report.

The limits' tests fail unless the limits are shared through Redis: an instance that
counts on its own admits the whole limit, and both together twice it (as they did
before aiogw.limits.shared). The key and audit tests hold through PostgreSQL alone.

Streams are held open by the fake upstream's gates (`x-fake-gate`): a gated stream
sends its first event, then waits until the test opens its gate, so "in flight at
once" is a state the test sets up, not a timing it hopes for.
"""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import asyncpg
import httpx
import openai
import pytest

from aiogw.fake_upstream import GATE_HEADER, TEXT_HEADER, FakeConfig, FakeUpstream
from aiogw.keys import new_key
from aiogw.store import make_store
from tests.conftest import FAKE_ROUTES, LoopThread, pg_rows, poll
from tests.redisserver import RedisServer, redis_server_fixture  # noqa: F401
from tests.served import Served
from tests.stores import made_ready, pg_state
from tests.test_metrics import parse

MODEL = "scale-test"
HI = [{"role": "user", "content": "hi"}]
# The fake model's answer to the streams: 100 words are 100 output tokens, at the price
# below $0.01 an exchange, its input (a token or two) next to nothing. So a budget is
# crossed by output, which no reservation covers: the case the overshoot bound is about.
ANSWER = " ".join(["word"] * 100)
RESERVATION_SECONDS = 5  # the least the config takes: the kill test waits for it
RATE = 60  # requests a minute
# A rate large enough to be leased (aiogw.limits.lease): a grant is at most 1/32 of what
# is left, 40 requests at first, none once fewer than 64 are left. Small enough that the
# SDK's requests outrun its refill (about 21 a second) and reach it within seconds.
LEASED_RATE = 1280
LEASED_THREADS = 16
LEASED_TAIL_S = 0.5  # sent on after both refused: five flushes, every grant used or given back
CONCURRENT = 3
BUDGET_USD = 0.2  # about twenty exchanges: two instances each admitting it would spend twice that
STREAMS = 12  # in flight at once when the budget is crossed
# DESIGN.md §8: a change (a key revoked) reaches every worker and instance within a
# second. Counted from when `aiogw keys revoke` has returned, so its start-up is not.
PROPAGATION_S = 1.0

USERS = {
    "paced": f"{{ requests_per_minute = {RATE} }}",
    "leased": f"{{ requests_per_minute = {LEASED_RATE} }}",
    "spender": f"{{ daily_budget_usd = {BUDGET_USD} }}",
    "streamer": f"{{ max_concurrent = {CONCURRENT} }}",
    "survivor": f"{{ max_concurrent = {CONCURRENT} }}",
    "revoked": None,
    "removed": None,
    "audited": None,
    "bystander": None,
}

CONFIG = """
[server]
host = "127.0.0.1"
port = {port}
drain_seconds = {drain}
[state]
path = "{state}"
{pg}[audit]
flush_interval = 0.02
[limits]
store = "{redis}"
reservation_seconds = {reservation}
[prices.models."{model}"]
input = 1.0
output = 100.0
""" + FAKE_ROUTES


@dataclass
class Shared:
    """What every instance's config names: the fake, the database, the Redis."""

    fake_url: str
    pg_lines: str  # [state] url and password = { env }
    env: dict[str, str]  # the database password's variable
    redis_url: str

    def config(self, port: int, state: Path, drain: float) -> str:
        text = textwrap.dedent(CONFIG).format(
            port=port, drain=drain, state=state, pg=self.pg_lines, redis=self.redis_url,
            reservation=RESERVATION_SECONDS, model=MODEL, fake=self.fake_url,
        )
        for user, limits in USERS.items():
            text += f'[[users]]\nname = "{user}"\n' + (f"limits = {limits}\n" if limits else "")
        return text


class Instance(Served):
    """One gateway instance: `aiogw serve` on a port of its own, on the shared state.
    Its keys are made in the database before it starts (see `cluster`)."""

    def __init__(self, tmp_path: Path, shared: Shared) -> None:
        self.shared = shared
        # A short drain: the tests open every gate before they end, and a stop of the
        # module's instances should not wait on a stream a failed test left.
        super().__init__(tmp_path, shared.fake_url, drain=2, env=shared.env)

    def write(self, extra: str = "", drain: float = 30, port: int | None = None, upstream: str | None = None) -> None:
        self.path.write_text(self.shared.config(self.port if port is None else port, self.state, drain))

    def make_key(self) -> str:
        return ""

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        """`aiogw ARGS --config` this instance's file, as an operator runs it."""
        return subprocess.run([sys.executable, "-m", "aiogw", *args, "--config", str(self.path)],
                              capture_output=True, text=True, timeout=60, env=self.env)


@dataclass
class Cluster:
    a: Instance
    b: Instance
    shared: Shared
    tmp: Path
    fake: FakeUpstream
    servers: LoopThread
    sql: Any  # an asyncpg connection on `servers`, for the audit table
    keys: dict[str, tuple[str, str]]  # user -> (key id, key)
    restarts: int = 0

    @property
    def both(self) -> tuple[Instance, Instance]:
        return self.a, self.b

    def revive(self) -> None:
        """Start again an instance a test killed, so each test finds two."""
        for name in ("a", "b"):
            instance = getattr(self, name)
            if not instance.alive:
                instance.kill()
                self.restarts += 1
                setattr(self, name, Instance(self.tmp / f"{name}{self.restarts}", self.shared))

    def anthropic(self, instance: Instance, user: str) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=f"{instance.base}/llm-gateway/anthropic", api_key=self.keys[user][1],
                                   max_retries=0)

    def openai(self, instance: Instance, user: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{instance.base}/llm-gateway/openai/v1", api_key=self.keys[user][1],
                             max_retries=0)

    def clients(self, user: str) -> list[anthropic.Anthropic]:
        """One client per instance: job i goes to instance i % 2."""
        return [self.anthropic(instance, user) for instance in self.both]

    def open_gate(self, name: str) -> None:
        self.servers.call(self.fake.open_gate, name)

    def records(self, user: str) -> list[dict]:
        return self.servers.run(pg_rows(self.sql, "SELECT * FROM exchanges WHERE user = ? ORDER BY id", user))

    def recorded(self, user: str, count: int, timeout: float = 15.0) -> list[dict]:
        """The user's audit records once there are `count`: both writers have stored
        them, and (a record is made after its exchange is charged) charged them."""
        rows = poll(lambda: (r := self.records(user)) and len(r) >= count and r, timeout)
        assert rows and len(rows) == count, f"expected {count} audit records of {user}, found {len(rows or [])}"
        return rows


@pytest.fixture(scope="module")
def cluster(servers: LoopThread, pg_server, redis_server: RedisServer, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("scale")
    fake = FakeUpstream(FakeConfig())
    fake_url = f"http://127.0.0.1:{servers.run(fake.start())}"
    url = pg_server.create_database()
    store = make_store(tmp / "keys.db", url)
    servers.run(made_ready(store))  # migrated, as `aiogw migrate` does
    keys = {}
    for user in USERS:
        record, key, digest = new_key(user)
        servers.run(store.create_key(record, digest))
        keys[user] = (record.id, key)
    sql = servers.run(asyncpg.connect(url))
    pg_lines, env = pg_state(url)
    shared = Shared(fake_url, pg_lines, env, redis_server.new_database())
    started: list[Instance] = []
    try:
        started.append(Instance(tmp / "a", shared))
        started.append(Instance(tmp / "b", shared))
        made = Cluster(started[0], started[1], shared, tmp, fake, servers, sql, keys)
        yield made
        started = list(made.both)
    finally:
        for instance in started:
            instance.stop()
        servers.run(sql.close())
        servers.run(store.close())
        servers.run(fake.stop())
        pg_server.drop_database(url.rsplit("/", 1)[1])


@pytest.fixture
def pair(cluster: Cluster) -> Cluster:
    cluster.revive()
    return cluster


# --- helpers ------------------------------------------------------------------------

_gates = itertools.count()


def gate(what: str) -> str:
    """A gate name no other stream of the run has."""
    return f"{what}-{next(_gates)}"


def ask(client: anthropic.Anthropic) -> anthropic.types.Message:
    return client.messages.create(model=MODEL, max_tokens=16, messages=HI)


def open_stream(client: anthropic.Anthropic, name: str) -> anthropic.Stream:
    """A stream held open after its first event until the gate `name` opens; returns
    once the gateway has admitted it (its headers came), or raises its refusal."""
    return client.messages.create(model=MODEL, max_tokens=256, messages=HI, stream=True,
                                  extra_headers={GATE_HEADER: name, TEXT_HEADER: ANSWER})


def drain(stream: anthropic.Stream) -> str:
    """The stream's text, read to its end."""
    text = []
    with stream:
        for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                text.append(event.delta.text)
    return "".join(text)


def attempt(call: Callable[[], Any]) -> Any:
    """What a call gave: its result, or the refusal the SDK raised (not raised here)."""
    try:
        return call()
    except anthropic.APIStatusError as exc:
        return exc


def at_once(calls: list[Callable[[], Any]], threads: int | None = None) -> list[Any]:
    """The calls in threads (by default one each, all started together); their
    `attempt`s, in order."""
    with ThreadPoolExecutor(threads or len(calls)) as pool:
        return list(pool.map(attempt, calls))


def refusals(outcomes: list[Any]) -> list[anthropic.APIStatusError]:
    return [o for o in outcomes if isinstance(o, anthropic.APIStatusError)]


def port_of(outcome: anthropic.APIStatusError) -> int:
    return outcome.response.url.port


def assert_rate_limited(outcomes: list[Any], what: str) -> None:
    """Each one a 429 with a Retry-After the SDK would wait for."""
    for outcome in outcomes:
        assert isinstance(outcome, anthropic.RateLimitError), f"{what}: expected a 429, got {said(outcome)}"
        assert int(outcome.response.headers["retry-after"]) >= 1


def leased_admissions(instance: Instance) -> float:
    """The instance's `aiogw_limits_leased_admissions_total`: admissions it made on a
    lease, with no round trip to Redis."""
    scraped = parse(httpx.get(f"{instance.base}/metrics").raise_for_status().text)
    value = scraped.value("aiogw_limits_leased_admissions_total")
    assert value is not None, "no aiogw_limits_leased_admissions_total in /metrics"
    return value


def said(outcome: Any) -> str:
    if isinstance(outcome, anthropic.APIStatusError):
        return f"{outcome.status_code} {outcome.message}"
    return "an admitted stream" if isinstance(outcome, anthropic.Stream) else type(outcome).__name__


# --- the limits, shared through Redis -------------------------------------------------


def test_requests_per_minute_hold_across_both_instances(pair):
    clients = pair.clients("paced")
    sent = 100
    started = time.monotonic()
    outcomes = at_once([lambda i=i: ask(clients[i % 2]) for i in range(sent)], threads=16)
    span = time.monotonic() - started
    refused = refusals(outcomes)
    admitted = sent - len(refused)
    # The bucket holds 60 and refills one a second: a burst shorter than a second gets
    # exactly 60, and one more for each second it lasted (the span measured here holds
    # the gateways' own, so the bound is safe). Counted apart, the two would admit 100.
    assert RATE <= admitted <= RATE + int(span), f"{admitted} of {sent} admitted in {span:.2f} s"
    assert_rate_limited(refused, "over the rate")
    assert {port_of(r) for r in refused} == {i.port for i in pair.both}, "both instances refuse"


def test_a_busy_users_rate_holds_across_both_instances_on_leases(pair):
    """A user each instance admits often enough to be leased: both admit on their own
    share, with no round trip, and together still admit what one gateway would."""
    clients = pair.clients("leased")
    ports = {i.port for i in pair.both}
    before = [leased_admissions(i) for i in pair.both]
    outcomes: list[Any] = []
    started, both_refused = time.monotonic(), None
    for _ in range(3 * LEASED_RATE // 64):  # three times the limit: far more than it takes
        outcomes += at_once([lambda i=i: ask(clients[i % 2]) for i in range(64)], threads=LEASED_THREADS)
        if both_refused is None and {port_of(r) for r in refusals(outcomes)} == ports:
            both_refused = time.monotonic()
        if both_refused is not None and time.monotonic() >= both_refused + LEASED_TAIL_S:
            break
    else:
        pytest.fail(f"{len(outcomes)} requests never met the limit on both instances")
    span = time.monotonic() - started
    refused = refusals(outcomes)
    admitted = [o for o in outcomes if isinstance(o, anthropic.types.Message)]
    assert len(admitted) + len(refused) == len(outcomes)
    # A grant is taken out of the bucket before it is used: never more than the limit
    # and what it refilled meanwhile (the span measured here holds Redis's own). And
    # what a lease did not use goes back: none of the limit is lost in one.
    refill = int(span * LEASED_RATE / 60)
    assert LEASED_RATE <= len(admitted) <= LEASED_RATE + refill, (
        f"{len(admitted)} of {len(outcomes)} admitted in {span:.2f} s (refill {refill})")
    assert_rate_limited(refused, "over the leased rate")
    after = [leased_admissions(i) for i in pair.both]
    leased = [a - b for a, b in zip(after, before, strict=True)]
    assert all(n > 0 for n in leased), f"admissions on a lease, instance by instance: {leased}"
    # Admitted on a lease or through Redis, each exchange is in the one audit trail and
    # the usage report once: its record made by the instance that served it.
    rows = pair.recorded("leased", len(outcomes))
    served = [row["request_id"] for row in rows if row["status"] == 200]
    assert sorted(served) == sorted(m._request_id for m in admitted)
    assert sum(row["status"] == 429 for row in rows) == len(refused)
    usage = pair.a.cli("usage", "--user", "leased")
    assert usage.returncode == 0, usage.stderr
    (line,) = [line for line in usage.stdout.splitlines() if line.startswith("leased ")]
    cells = [cell.replace(",", "") for cell in line.split()]
    assert (int(cells[1]), int(cells[2])) == (len(outcomes), len(refused))  # REQUESTS, REFUSED


def test_max_concurrent_holds_across_both_instances(pair):
    clients = pair.clients("streamer")
    name = gate("concurrent")
    outcomes = at_once([lambda i=i: open_stream(clients[i % 2], name) for i in range(8)])
    admitted = [o for o in outcomes if isinstance(o, anthropic.Stream)]
    try:
        assert len(admitted) == CONCURRENT, f"{len(admitted)} of 8 streams admitted at once across both instances"
        assert_rate_limited(refusals(outcomes), "over the concurrency")
    finally:
        pair.open_gate(name)
        for stream in admitted:
            drain(stream)
    # Their slots are back once they have ended (the handler ends a moment after the
    # client read the last event): each instance admits again.
    for client in clients:
        assert poll(lambda c=client: isinstance(attempt(lambda: ask(c)), anthropic.types.Message), 5)


def test_a_daily_budget_holds_across_both_within_the_in_flight_bound(pair):
    clients = pair.clients("spender")
    outcomes: list[Any] = []
    last: list[Any] = []
    sent = 0
    for _ in range(8):  # three rounds cross it; eight is where it was never crossed
        name = gate("budget")
        last = at_once([lambda i=i, name=name: open_stream(clients[i % 2], name) for i in range(STREAMS)])
        pair.open_gate(name)
        for stream in last:
            if isinstance(stream, anthropic.Stream):
                assert drain(stream) == ANSWER
        outcomes += last
        sent += STREAMS
        # The round charged before the next starts: twelve in flight at a time, no more.
        pair.recorded("spender", sent)
        if len(refusals(last)) == STREAMS:
            break
    else:
        pytest.fail(f"the daily budget of ${BUDGET_USD} was never reached in {sent} streams")
    costs = [row["cost_usd"] for row in pair.records("spender") if row["status"] == 200]
    one, spent = max(costs), sum(costs)
    # The bound: what the exchanges in flight at the crossing spend beyond what was
    # reserved for them (their input estimate) — at most twelve whole exchanges.
    # Counted apart, each instance would spend the whole budget: about twice it.
    assert BUDGET_USD <= spent <= BUDGET_USD + STREAMS * one, (
        f"spent ${spent:.4f} in {len(costs)} exchanges of ${one:.4f} on a budget of ${BUDGET_USD}")
    for refusal in refusals(outcomes):
        assert isinstance(refusal, anthropic.PermissionDeniedError), f"over the budget: expected a 403, got {said(refusal)}"
    assert {port_of(r) for r in refusals(last)} == {i.port for i in pair.both}
    for client in clients:  # and it stays refused on both
        assert isinstance(attempt(lambda c=client: ask(c)), anthropic.PermissionDeniedError)


# --- keys and the audit, shared through PostgreSQL -----------------------------------


def test_a_key_revoked_through_one_instance_is_refused_by_the_other_within_a_second(pair):
    key_id, _ = pair.keys["revoked"]
    a, b = (pair.anthropic(instance, "revoked") for instance in pair.both)
    assert ask(a).type == ask(b).type == "message"  # both know the key
    revoked = pair.a.cli("keys", "revoke", key_id)
    assert revoked.returncode == 0, revoked.stderr

    def refused(client: anthropic.Anthropic) -> bool:
        return isinstance(attempt(lambda: ask(client)), anthropic.AuthenticationError)

    assert poll(lambda: refused(b), PROPAGATION_S), "the other instance still serves a key revoked a second ago"
    assert poll(lambda: refused(a), PROPAGATION_S)


def test_a_user_removed_through_one_instance_is_refused_by_the_other_within_a_second(pair):
    """`aiogw keys revoke --user`: every key of the user, one command, heard by both."""
    a, b = (pair.anthropic(instance, "removed") for instance in pair.both)
    assert ask(a).type == ask(b).type == "message"
    removed = pair.a.cli("keys", "revoke", "--user", "removed")
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.startswith("revoked 1 key of removed: ")

    def refused(client: anthropic.Anthropic) -> bool:
        return isinstance(attempt(lambda: ask(client)), anthropic.AuthenticationError)

    assert poll(lambda: refused(b), PROPAGATION_S), "the other instance still serves a user removed a second ago"
    assert poll(lambda: refused(a), PROPAGATION_S)
    assert pair.b.cli("keys", "revoke", "--user", "removed").returncode == 1  # nothing left to revoke


def test_every_exchange_of_both_instances_is_in_one_audit_trail_and_usage_report(pair):
    served: dict[str, str] = {}  # the provider's request id -> the instance's port
    for i in range(8):
        instance = pair.both[i % 2]
        if i % 4 < 2:
            answer = pair.anthropic(instance, "audited").messages.create(model=MODEL, max_tokens=16, messages=HI)
        else:
            answer = pair.openai(instance, "audited").chat.completions.create(model=MODEL, messages=HI)
        served[answer._request_id] = instance.port
    assert set(served.values()) == {i.port for i in pair.both}
    rows = pair.recorded("audited", len(served))
    assert {row["request_id"] for row in rows} == set(served)
    # One trail, whichever instance's config the operator reads it with.
    listed = pair.a.cli("audit", "list", "--user", "audited")
    assert listed.returncode == 0, listed.stderr
    assert _listed_ids(listed.stdout) == {row["id"] for row in rows}
    usage = pair.b.cli("usage", "--user", "audited")
    assert usage.returncode == 0, usage.stderr
    (line,) = [line for line in usage.stdout.splitlines() if line.startswith("audited ")]
    cells = line.split()
    assert int(cells[1]) == len(served)  # REQUESTS
    assert float(cells[7]) == pytest.approx(sum(row["cost_usd"] for row in rows), abs=1e-6)  # COST USD


def _listed_ids(table: str) -> set[str]:
    """The ID column of `aiogw audit list`'s table."""
    lines = table.splitlines()
    assert lines and lines[0].startswith("ID"), table
    return {line.split()[0] for line in lines[1:] if line.strip() and not line.startswith("(")}


# --- an instance killed mid-stream ------------------------------------------------------


def test_an_instance_killed_mid_stream_leaves_the_other_serving_and_its_slots_expire(pair):
    """Instance A dies with two streams of a max_concurrent = 3 user open, B has the
    third. B serves on; A's reservations, renewed by no one now, expire after
    reservation_seconds and B admits two more, not three: its own stream, older than
    reservation_seconds by then, is renewed by B and still holds its slot."""
    on_a, on_b = pair.clients("survivor")
    dead_gate, live_gate = gate("killed"), gate("live")
    dead = [open_stream(on_a, dead_gate) for _ in range(2)]
    live = open_stream(on_b, live_gate)
    regained: list[anthropic.Stream] = []
    try:
        # B counts A's two: the user's three slots are taken across both.
        assert_rate_limited([attempt(lambda: open_stream(on_b, live_gate))], "a fourth stream, on B")
        pair.a.send(signal.SIGKILL)
        pair.a.proc.wait(10)
        killed = time.monotonic()
        assert ask(pair.anthropic(pair.b, "bystander")).type == "message"  # B serves on
        while len(regained) < 2 and time.monotonic() < killed + RESERVATION_SECONDS + 10:
            outcome = attempt(lambda: open_stream(on_b, live_gate))
            if isinstance(outcome, anthropic.Stream):
                regained.append(outcome)
            else:
                assert_rate_limited([outcome], "while A's reservations hold")
                time.sleep(0.1)  # the pace of asking, not an assertion
        assert len(regained) == 2, f"B admitted {len(regained)} of A's two slots back after A was killed"
        assert_rate_limited([attempt(lambda: open_stream(on_b, live_gate))],
                            "a fourth stream once A's expired (B's own, renewed, holds its slot)")
    finally:
        pair.open_gate(live_gate)
        pair.open_gate(dead_gate)
        for stream in dead:
            stream.close()
    for stream in (live, *regained):
        assert drain(stream) == ANSWER  # B's streams end whole
