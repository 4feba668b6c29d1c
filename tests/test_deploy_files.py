"""The files for several instances behind a load balancer (issue #19, item 7):
systemd/aiogw@.service, the instance configs a.toml.example and b.toml.example with
instances.env.example, and the balancers haproxy.cfg.example and nginx.conf.example.

Offline: the template passes `systemd-analyze verify`, keeps aiogw.service's sandbox
and differs from it only where an instance must; the instance configs load, fit the
template and differ only in port and state path; each balancer's file passes its own
check (`haproxy -c`, `nginx -t`) and holds what README promises of it: timeouts above
the gateway's own, a retry only while no byte of a request reached a gateway, no
buffering, a new connection to a gateway per request, /metrics not passed on.

Live: each balancer, from its example with only the addresses changed (and a header
naming the instance that answered, for the test), in front of two real gateways
(`aiogw serve`, two workers each, as the examples configure) before the fake upstream.
Requests reach both; then one gateway gets SIGTERM with streams open on each of its
workers: there /readyz answers 503 while it drains, the balancer sends every new
request to the other one with not one failing (some of them tried the stopped one
first), the open streams, through the balancer and direct, end whole, and the stopped
gateway exits 0.

A test whose binary is absent is skipped: systemd-analyze (systemd), haproxy, nginx
(nginx-light is enough).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import textwrap
import time
import tomllib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.client import HTTPConnection, HTTPResponse
from pathlib import Path
from typing import Any

import anthropic
import orjson
import pytest

from aiogw import config, keys
from aiogw.config_routes import Timeouts
from aiogw.fake_upstream import GATE_HEADER, TEXT_HEADER, FakeConfig, FakeUpstream
from aiogw.store.base import KeyRecord
from aiogw.store.sqlite import key_table
from tests.builders import prepare
from tests.conftest import FAKE_ROUTES, LoopThread, free_port, poll
from tests.served import Served
from tests.test_systemd_unit import checkout_copy
from tests.test_systemd_unit import directives as unit_lines

SYSTEMD = Path(__file__).resolve().parent.parent / "systemd"
TEMPLATE = SYSTEMD / "aiogw@.service"
SINGLE = SYSTEMD / "aiogw.service"
HAPROXY_EXAMPLE = SYSTEMD / "haproxy.cfg.example"
NGINX_EXAMPLE = SYSTEMD / "nginx.conf.example"
INSTANCES = {"a": SYSTEMD / "a.toml.example", "b": SYSTEMD / "b.toml.example"}
INSTANCES_ENV = SYSTEMD / "instances.env.example"

_SBIN = os.pathsep.join((os.environ.get("PATH", ""), "/usr/sbin", "/sbin"))  # nginx lives there
ANALYZE = shutil.which("systemd-analyze")
HAPROXY = shutil.which("haproxy", path=_SBIN)
NGINX = shutil.which("nginx", path=_SBIN)
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed (apt-get install systemd)")
BALANCERS = {"haproxy": HAPROXY, "nginx": NGINX}
INSTALL = {"haproxy": "apt-get install haproxy", "nginx": "apt-get install nginx-light"}

# Where an instance of the template differs from aiogw.service, and nowhere else.
INSTANCE_KEYS = {
    ("Unit", "Description"), ("Unit", "AssertPathExists"), ("Service", "ExecStart"), ("Service", "User"),
    ("Service", "StateDirectory"), ("Service", "EnvironmentFile"), ("Service", "SyslogIdentifier"),
}


# --- reading the files ---------------------------------------------------------------


def directives(path: Path) -> dict[tuple[str, str], list[str]]:
    """(section, key) -> every value assigned, in order, of a unit file."""
    out: dict[tuple[str, str], list[str]] = {}
    for section, key, value in unit_lines(path.read_text()):
        out.setdefault((section, key), []).append(value)
    return out


def service(path: Path, key: str) -> list[str]:
    return directives(path).get(("Service", key), [])


def lines(path: Path) -> list[str]:
    """A balancer file's statements: comments and blank lines gone."""
    return [s for raw in path.read_text().splitlines() if (s := raw.split("#", 1)[0].strip())]


def statement(path: Path, prefix: str) -> list[str]:
    """The rest of every statement that starts with `prefix` (nginx's `;` dropped)."""
    return [line[len(prefix):].strip().rstrip(";").strip() for line in lines(path)
            if line == prefix or line.startswith(prefix + " ")]


def seconds(value: str) -> float:
    """A balancer's duration: `11m`, `660s`, `660`, `1h`, `500ms`."""
    found = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", value)
    assert found, value
    return float(found.group(1)) * {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[found.group(2)]


def env_names(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))


def named_variables(value: Any) -> set[str]:
    """Every { env = "VAR" } in a parsed TOML document."""
    if isinstance(value, dict):
        found = {value["env"]} if isinstance(value.get("env"), str) else set()
        return found.union(*(named_variables(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(named_variables(v) for v in value))
    return set()


def stop_timeout(unit: Path) -> float:
    (value,) = service(unit, "TimeoutStopSec")
    return seconds(value)


# --- the template unit -----------------------------------------------------------------


@needs_analyze
def test_the_template_verifies_and_keeps_the_exposure_low(tmp_path: Path) -> None:
    # A copy that starts this checkout's aiogw; an instance of a template is verified by
    # naming it: systemd-analyze loads aiogw@.service from the same folder.
    checkout_copy(TEMPLATE, tmp_path)
    result = subprocess.run([ANALYZE, "verify", str(tmp_path / "aiogw@a.service")], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "aiogw@" not in result.stderr, result.stderr  # a warning about our unit: an unknown or bad key
    result = subprocess.run([ANALYZE, "security", "--offline=true", "--no-pager", str(tmp_path / "aiogw@a.service")],
                            capture_output=True, text=True, timeout=60)
    if "offline" in result.stderr and result.returncode != 0:
        pytest.skip(f"this systemd-analyze cannot assess a unit file offline (needs systemd >= 250): {result.stderr}")
    found = re.search(r"Overall exposure level for aiogw@a\.service: (\d+\.\d+)", result.stdout)
    assert found, result.stdout + result.stderr
    assert float(found.group(1)) < 2.0, result.stdout  # as aiogw.service (tests/test_systemd_unit.py)


def test_the_template_is_the_single_unit_but_for_the_instance() -> None:
    """Same protocol, drain, reload, restart and sandbox as aiogw.service: a change to
    one that the other misses fails here."""
    single, template = directives(SINGLE), directives(TEMPLATE)
    for key in (single.keys() | template.keys()) - INSTANCE_KEYS:
        assert single.get(key) == template.get(key), f"{key}: aiogw.service {single.get(key)}, template {template.get(key)}"
    assert template[("Service", "ExecStart")] == ["/opt/aiogw/.venv/bin/aiogw serve --config /etc/aiogw/%i.toml"]
    assert template[("Unit", "AssertPathExists")] == ["/etc/aiogw/%i.toml"]
    # Its own user (nothing of another instance readable; no port shared by SO_REUSEPORT
    # across instances) and its own state directory, where its config puts the spool.
    assert template[("Service", "User")] == ["aiogw-%i"]
    assert template[("Service", "StateDirectory")] == ["aiogw-%i"]
    assert template[("Service", "EnvironmentFile")] == ["-/etc/aiogw/env", "-/etc/aiogw/%i.env"]
    assert "%i" in template[("Service", "SyslogIdentifier")][0]


def test_both_units_signal_every_process_of_a_stop() -> None:
    """KillMode=control-group (the default, said): systemd's SIGTERM reaches each worker
    as well as the supervisor, which forwards its own; serving._Stops counts the two as
    one stop (tests/test_workers.py: a worker's own second SIGTERM does not cut)."""
    for unit in (SINGLE, TEMPLATE):
        assert service(unit, "KillMode") == ["control-group"], unit.name
        assert service(unit, "NotifyAccess") == ["main"], unit.name  # the supervisor only
        assert stop_timeout(unit) >= config.Server().drain_seconds + 10, unit.name


# --- the instance configs --------------------------------------------------------------


def instance_configs() -> dict[str, config.Config]:
    env = {name: "set" for name in env_names(INSTANCES_ENV)}
    return {name: config.load(path, env=env) for name, path in INSTANCES.items()}


def test_the_env_example_names_every_variable_of_the_instances() -> None:
    names = env_names(INSTANCES_ENV)
    assert all(value == "" for value in names.values()), "an example holds no secret"
    assert set(env_names(SYSTEMD / "env.example")) <= set(names)  # the provider keys, as for aiogw.service
    for path in INSTANCES.values():
        assert named_variables(tomllib.loads(path.read_text())) == set(names), path.name


def test_instance_configs_share_everything_but_port_and_state_path() -> None:
    raw = {name: tomllib.loads(path.read_text()) for name, path in INSTANCES.items()}
    for doc in raw.values():
        del doc["server"]["port"], doc["state"]["path"]
    assert raw["a"] == raw["b"]
    a, b = instance_configs().values()
    assert a.server.port != b.server.port


def test_instance_configs_fit_the_template() -> None:
    for name, cfg in instance_configs().items():
        assert cfg.state_path.parent == Path(f"/var/lib/aiogw-{name}"), "StateDirectory=aiogw-%i"
        # Shared state and limits, each password from the environment, several workers.
        assert cfg.state_url and cfg.state_url.startswith("postgresql://") and cfg.state_password == "set"
        assert cfg.limits_store is not None and cfg.limits_store.password == "set"
        assert cfg.server.workers > 1
        assert cfg.server.drain_seconds + 10 <= stop_timeout(TEMPLATE)


# --- the balancers, offline --------------------------------------------------------------


def test_the_balancers_point_at_the_instances() -> None:
    wanted = {f"{cfg.server.host}:{cfg.server.port}" for cfg in instance_configs().values()}
    haproxy = {line.split()[0]: line.split()[1] for line in statement(HAPROXY_EXAMPLE, "server")}
    assert set(haproxy.values()) == wanted
    assert all("check" in line.split() for line in statement(HAPROXY_EXAMPLE, "server"))
    assert {line.split()[0] for line in statement(NGINX_EXAMPLE, "server") if ":" in line} == wanted


def test_the_balancers_wait_longer_than_the_gateway() -> None:
    """Inactivity timeouts above the gateway's own (first byte 600 s, 300 s between two
    chunks): a slow provider is reported by the gateway, in its provider's envelope."""
    longest = max(Timeouts().first_byte, Timeouts().idle)
    timeouts = {line.split()[0]: seconds(line.split()[1]) for line in statement(HAPROXY_EXAMPLE, "timeout")}
    for name in ("client", "server"):
        assert timeouts[name] > longest, name
    for name in ("proxy_read_timeout", "proxy_send_timeout", "send_timeout"):
        (value,) = statement(NGINX_EXAMPLE, name)
        assert seconds(value) > longest, name
    (body,) = statement(NGINX_EXAMPLE, "client_max_body_size")
    assert body.endswith("m") and int(body[:-1]) * 1024 * 1024 >= config.Server().max_body_bytes


def test_the_balancers_retry_only_what_reached_no_gateway() -> None:
    assert statement(HAPROXY_EXAMPLE, "retry-on") == ["conn-failure"]
    options = statement(HAPROXY_EXAMPLE, "option")
    assert "redispatch 1" in options and "http-server-close" in options
    assert "forwardfor" in options  # the agent's address, for a gateway that trusts this balancer
    for never in ("http-buffer-request", "http-keep-alive"):
        assert never not in options, never
    text = "\n".join(lines(HAPROXY_EXAMPLE))
    assert "shutdown-sessions" not in text and "\ncompression" not in text
    assert statement(HAPROXY_EXAMPLE, "http-check send")[0].startswith("meth GET uri /readyz ")
    assert statement(HAPROXY_EXAMPLE, "http-check expect") == ["status 200"]

    (passed_on,) = statement(NGINX_EXAMPLE, "proxy_next_upstream")
    assert set(passed_on.split()) <= {"error", "timeout"}, passed_on  # no non_idempotent, no http_5xx
    assert statement(NGINX_EXAMPLE, "proxy_buffering") == ["off"]
    assert statement(NGINX_EXAMPLE, "proxy_request_buffering") == ["off"]
    assert not statement(NGINX_EXAMPLE, "keepalive")  # a new connection to a gateway per request
    assert "X-Forwarded-For $proxy_add_x_forwarded_for" in statement(NGINX_EXAMPLE, "proxy_set_header")


def test_haproxy_accepts_its_example() -> None:
    if HAPROXY is None:
        pytest.skip(f"haproxy is not installed ({INSTALL['haproxy']})")
    result = subprocess.run([HAPROXY, "-c", "-f", str(HAPROXY_EXAMPLE)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stdout + result.stderr, result.stdout + result.stderr


def test_nginx_accepts_its_example(tmp_path: Path) -> None:
    if NGINX is None:
        pytest.skip(f"nginx is not installed ({INSTALL['nginx']})")
    conf = tmp_path / "nginx.conf"
    conf.write_text(nginx_main(tmp_path, f"include {NGINX_EXAMPLE};"))
    result = subprocess.run([NGINX, "-e", "stderr", "-t", "-p", str(tmp_path), "-c", str(conf)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "[warn]" not in result.stderr, result.stderr


def nginx_main(tmp: Path, http: str, *, serve: bool = False) -> str:
    """An nginx.conf of the test's own around an http{} level file: everything nginx
    writes stays in `tmp`; serving, one process in the foreground."""
    temps = "\n".join(f"{kind}_temp_path {tmp}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    head = "daemon off;\nmaster_process off;\n" if serve else ""
    return f"{head}pid {tmp}/nginx.pid;\nerror_log stderr;\nevents {{}}\nhttp {{\naccess_log off;\n{temps}\n{http}\n}}\n"


# --- the balancers, live -----------------------------------------------------------------

MODEL = "claude-sonnet-4-6"
HI = [{"role": "user", "content": "hi"}]
HELD = "the answer of a stream held open across the hand-over"
WORKERS = 2
INSTANCE_TOML = """
[server]
host = "127.0.0.1"
port = {port}
workers = {workers}
drain_seconds = 30
[state]
path = "{state}"
[audit]
flush_interval = 0.02
""" + FAKE_ROUTES


class Instance(Served):
    """One gateway: `aiogw serve` with WORKERS workers on a port of its own. The two
    share one gateway key (the same record in each one's SQLite state: here they share
    no database, which tests/test_scale_out.py covers)."""

    def __init__(self, tmp_path: Path, fake_url: str, key: tuple[KeyRecord, str, str]) -> None:
        self.shared_key = key
        super().__init__(tmp_path, fake_url)

    def write(self, extra: str = "", drain: float = 30, port: int | None = None, upstream: str | None = None) -> None:
        self.path.write_text(textwrap.dedent(INSTANCE_TOML).format(
            port=self.port, workers=WORKERS, state=self.state, fake=self.fake_url))

    def make_key(self) -> str:
        record, key, digest = self.shared_key
        prepare(self.state)
        key_table.create(self.state, record, digest)
        return key


@dataclass
class Balancer:
    """A balancer process in the foreground, from its example with the addresses
    changed; `served` reads which instance answered a response, and how many before it
    refused the connection."""

    proc: subprocess.Popen
    port: int
    served: Callable[[Any], tuple[str, int]]
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def swap(text: str, changes: dict[str, str]) -> str:
    for old, new in changes.items():
        assert text.count(old) == 1, f"{old!r} is not once in the example"
        text = text.replace(old, new)
    return text


def start_haproxy(tmp: Path, ports: dict[str, int]) -> Balancer:
    port = free_port()
    cfg = tmp / "haproxy.cfg"
    cfg.write_text(swap(HAPROXY_EXAMPLE.read_text(), {
        "bind :8080": f"bind 127.0.0.1:{port}",
        "server a 127.0.0.1:8081 ": f"server a 127.0.0.1:{ports['a']} ",
        "server b 127.0.0.1:8082 ": f"server b 127.0.0.1:{ports['b']} ",
        "    log /dev/log local0\n": "    log stderr format short local0 notice\n",
        # haproxy raises its file limit to twice maxconn at start: more than a test may have.
        "    maxconn 20000\n": "    maxconn 1000\n",
        "\nbackend aiogw\n": "\nbackend aiogw\n    http-response set-header x-served-by %[srv_name]\n"
                           "    http-response set-header x-retries %rc\n",
    }))
    log = tmp / "haproxy.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([HAPROXY, "-db", "-f", str(cfg)], stdin=subprocess.DEVNULL, stdout=out, stderr=out)

    def served(headers: Any) -> tuple[str, int]:
        return headers["x-served-by"], int(headers["x-retries"].lstrip("+"))

    return Balancer(proc, port, served, log)


def start_nginx(tmp: Path, ports: dict[str, int]) -> Balancer:
    port = free_port()
    site = swap(NGINX_EXAMPLE.read_text(), {
        "listen 8080;": f"listen 127.0.0.1:{port};",
        "server 127.0.0.1:8081 ": f"server 127.0.0.1:{ports['a']} ",
        "server 127.0.0.1:8082 ": f"server 127.0.0.1:{ports['b']} ",
        "proxy_pass http://aiogw;": "proxy_pass http://aiogw;\n        add_header x-served-by $upstream_addr always;",
    })
    conf = tmp / "nginx.conf"
    conf.write_text(nginx_main(tmp, site, serve=True))
    log = tmp / "nginx.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([NGINX, "-e", "stderr", "-p", str(tmp), "-c", str(conf)], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=out)
    names = {f"127.0.0.1:{p}": name for name, p in ports.items()}

    def served(headers: Any) -> tuple[str, int]:
        tried = headers["x-served-by"].split(", ")  # every server tried, the one that answered last
        return names[tried[-1]], len(tried) - 1

    return Balancer(proc, port, served, log)


@pytest.fixture(scope="module")
def fake(servers: LoopThread) -> Iterator[tuple[LoopThread, FakeUpstream, str]]:
    upstream = FakeUpstream(FakeConfig())
    try:
        yield servers, upstream, f"http://127.0.0.1:{servers.run(upstream.start())}"
    finally:
        servers.run(upstream.stop())


def readyz(conn: HTTPConnection) -> tuple[int, dict]:
    conn.request("GET", "/readyz")
    response = conn.getresponse()
    return response.status, orjson.loads(response.read())


def per_worker(port: int, each: int, timeout: float = 20) -> dict[int, list[HTTPConnection]]:
    """`each` kept-alive connections to every worker of the gateway on `port` (its
    /readyz names the worker that owns the connection; the kernel spreads new ones)."""
    found: dict[int, list[HTTPConnection]] = {n: [] for n in range(WORKERS)}
    deadline = time.monotonic() + timeout
    while any(len(c) < each for c in found.values()):
        assert time.monotonic() < deadline, f"not {each} connections to each worker: {found}"
        conn = HTTPConnection("127.0.0.1", port, timeout=15)
        status, body = readyz(conn)
        assert status == 200, body
        if len(found[body["worker"]]) < each:
            found[body["worker"]].append(conn)
        else:
            conn.close()
    return found


def hold(conn: HTTPConnection, key: str, gate: str) -> HTTPResponse:
    """A stream on this very connection, its first event read; the rest waits for `gate`."""
    body = orjson.dumps({"model": MODEL, "max_tokens": 64, "stream": True, "messages": HI})
    conn.request("POST", "/llm-gateway/anthropic/v1/messages", body, {
        "x-api-key": key, "anthropic-version": "2023-06-01", "content-type": "application/json",
        GATE_HEADER: gate, TEXT_HEADER: HELD,
    })
    response = conn.getresponse()
    assert response.status == 200, response.read()
    while not (line := response.readline()).startswith(b"data:"):
        assert line, "the stream ended before its first event"
    return response


def text_of(events: Iterator[Any]) -> str:
    return "".join(e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["haproxy", "nginx"])
def test_a_stopping_gateway_hands_its_traffic_over(kind: str, tmp_path: Path, fake) -> None:
    if BALANCERS[kind] is None:
        pytest.skip(f"{kind} is not installed ({INSTALL[kind]})")
    loop, upstream, fake_url = fake
    shared_key = keys.new_key("alice")
    gateways: dict[str, Instance] = {}
    balancer: Balancer | None = None
    direct: list[HTTPConnection] = []
    try:
        for name in ("a", "b"):
            gateways[name] = Instance(tmp_path / name, fake_url, shared_key)
        a = gateways["a"]
        balancer = (start_haproxy if kind == "haproxy" else start_nginx)(tmp_path, {n: g.port for n, g in gateways.items()})
        client = anthropic.Anthropic(api_key=shared_key[1], base_url=f"{balancer.base}/llm-gateway/anthropic",
                                     max_retries=0)  # a failure is seen, not retried away by the SDK

        def ask(stream: bool = False) -> tuple[str, int] | str:
            """Who answered through the balancer, and its retries; or what went wrong."""
            try:
                if stream:
                    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=16, messages=HI, stream=True)
                    assert text_of(raw.parse()), "an empty stream"
                else:
                    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=16, messages=HI)
                    assert raw.parse().content[0].text
                return balancer.served(raw.headers)
            except (anthropic.APIError, AssertionError) as exc:
                return f"{type(exc).__name__}: {exc}"

        def up() -> bool:
            assert balancer.proc.poll() is None, f"{kind} exited: {balancer.log.read_text()}"
            return not isinstance(ask(), str)

        assert poll(up, 10), f"{kind} serves nothing: {balancer.log.read_text()}"
        # Both instances serve, streams included, one after the other (least connections,
        # ties in turn).
        before = [ask(stream=i % 2 == 1) for i in range(6)]
        assert all(not isinstance(r, str) for r in before), before
        assert {who for who, _ in before} == {"a", "b"}, before

        # Streams held open on each instance through the balancer (the second goes where
        # the first is not), and on each worker of the one to stop, directly: its drain
        # lasts until the gates open. Each first event came through: nothing buffers.
        gate = f"{kind}-held"
        held = []
        for _ in range(2):
            raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=64, messages=HI, stream=True,
                                                           extra_headers={GATE_HEADER: gate, TEXT_HEADER: HELD})
            events = iter(raw.parse())
            assert next(events).type == "message_start"
            held.append((balancer.served(raw.headers)[0], events))
        assert sorted(who for who, _ in held) == ["a", "b"], held
        conns = per_worker(a.port, each=2)
        direct = [c for pair in conns.values() for c in pair]
        streams = [hold(pair[0], a.key, gate) for pair in conns.values()]

        a.send(signal.SIGTERM)  # its supervisor, which forwards it to both workers
        for worker, (_, conn) in conns.items():
            def draining(conn: HTTPConnection = conn) -> dict | None:
                status, body = readyz(conn)  # a kept-alive connection: the port itself is closed
                return body if status == 503 else None
            body = poll(draining, 10)
            assert body and body["checks"]["not_stopping"] is False and body["worker"] == worker, body

        # The hand-over: at once, before any health check could notice, one at a time
        # and eight at a time. Every request answered, by b.
        after = [ask(stream=i % 2 == 1) for i in range(10)]
        with ThreadPoolExecutor(8) as pool:
            after += list(pool.map(ask, [i % 2 == 1 for i in range(16)]))
        failed = [r for r in after if isinstance(r, str)]
        assert not failed, f"{len(failed)} of {len(after)} requests failed: {failed[:3]}"
        assert {who for who, _ in after} == {"b"}, after
        assert any(retries for _, retries in after), "no request went to the stopped gateway first: nothing handed over"
        assert a.proc.poll() is None, "the gateway stopped before its streams ended"

        loop.call(upstream.open_gate, gate)
        for who, events in held:
            assert text_of(events) == HELD, f"the stream through {kind} on {who} was cut"
        for response in streams:
            assert b"message_stop" in response.read(), "a direct stream on the stopping gateway was cut"
        assert a.proc.wait(15) == 0, a.stderr()[-3000:]
        assert "Traceback" not in a.stderr(), a.stderr()[-3000:]

        last = [ask() for _ in range(4)]
        assert all(not isinstance(r, str) and r[0] == "b" for r in last), last
    finally:
        for conn in direct:
            conn.close()
        if balancer is not None:
            balancer.stop()
        for gateway in gateways.values():
            gateway.stop(timeout=20)
