"""What an operator's tools do with what agents and web pages wrote (issue 16).

Finding 6: terminal escapes in a model name, a message or an answer reach the audit
CLI, `keys list`, `usage` and /metrics as visible escapes, never raw. Finding 7: the
audit CLI shows, and export writes, every stored record, however deeply nested.
Finding 12: check-config --strict, AIOGW_CONFIG, the warning when no running gateway
uses the command's database, and `aiogw demo` without its extra.
"""

from __future__ import annotations

import configparser
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import anthropic
import httpx
import orjson
import pytest

from aiogw import config, running
from aiogw.app import start
from aiogw.audit.record import squeeze
from aiogw.fake_upstream import FakeConfig, FakeUpstream
from tests.builders import create_key, exchange, nested_json, write
from tests.conftest import PROVIDER_KEYS, free_port, poll
from tests.served import BASE_TOML, LimitedGateway
from tests.test_metrics import parse, scrape, scrape_until

pytestmark = pytest.mark.timeout(90)

# What a page, a tool result or a hostile agent can put in front of an operator: a window
# title (OSC 0), a cleared screen, a clipboard write (OSC 52), hidden text (SGR 8), a CSI
# as one C1 character, DEL, a carriage return that overwrites the line, and the bidi
# override and isolate that reorder it ("Trojan Source").
ESCAPES = (
    "\x1b]0;pwned\x07",
    "\x1b[2J",
    "\x1b]52;c;cm0gLXJmIH4=\x07",
    "\x1b[8mhidden\x1b[0m",
    "\x9b31m",
    "\x7f",
    "\rover",
    "\u202egnp.exe",
    "\u2066isolated\u2069",
)
RAW = ("\x1b", "\x07", "\x9b", "\x7f", "\r", "\u202e", "\u2066", "\u2069")
MODEL = "claude-evil" + "".join(ESCAPES)
MESSAGE = "first line\tafter a tab\nsecond line " + "".join(ESCAPES)
ANSWER = "the answer " + "".join(ESCAPES)
USER = "mallory\x1b[2J\u202e"
_SHOWN_AS_ESCAPES = {*range(0x20), 0x7F, *range(0x80, 0xA0), 0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067,
                     0x2068, 0x2069}


def visible(text: str) -> str:
    """How the tools show `text` on one line: each control character as an escape."""
    return "".join(
        (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}") if ord(c) in _SHOWN_AS_ESCAPES else c
        for c in text
    )


def aiogw(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "aiogw", *args], capture_output=True, text=True, timeout=60, env=env, cwd=cwd
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def assert_no_raw_controls(text: str) -> None:
    for char in RAW:
        assert char not in text, f"{char!r} reached the terminal raw in:\n{text!r}"


def route_toml(state: Path, upstream: str, credential: str = '{ env = "FAKE_ANTHROPIC" }') -> str:
    return textwrap.dedent(f"""
        [state]
        path = "{state}"
        [audit]
        flush_interval = 0.01
        [[routes]]
        name = "anthropic"
        dialect = "anthropic"
        upstream = "{upstream}"
        credential = {credential}
        [[users]]
        name = "alice"
        """)


@pytest.fixture(scope="module")
def hostile(gateway, tmp_path_factory):
    """A gateway whose provider answers with escapes, after an agent sent them in its
    model name and message, and a body nested 600 deep."""
    tmp = tmp_path_factory.mktemp("hostile")
    fake = FakeUpstream(FakeConfig(text=ANSWER))
    fake_url = f"http://127.0.0.1:{gateway.servers.run(fake.start())}"
    path = tmp / "aiogw.toml"
    path.write_text(route_toml(tmp / "state.db", fake_url))
    cfg = config.load(path, env=PROVIDER_KEYS)
    runner, port = gateway.servers.run(start(cfg, port=0))
    base = f"http://127.0.0.1:{port}/llm-gateway/anthropic"
    try:
        _, key = create_key(cfg.state_path, "alice")
        with anthropic.Anthropic(api_key=key, base_url=base, max_retries=0) as client:
            answer = client.messages.create(
                model=MODEL, max_tokens=16, messages=[{"role": "user", "content": MESSAGE}]
            )
        assert ANSWER in answer.content[0].text  # the agent gets the provider's text as it was
        body = b'{"model":"m","max_tokens":8,"messages":[{"role":"user","content":' + nested_json(600, b'"deep"', arrays=True) + b"}]}"
        httpx.post(f"{base}/v1/messages", content=body, headers={"x-api-key": key,
                   "content-type": "application/json"}, timeout=30)  # answered as the gateway decides
        create_key(cfg.state_path, USER)  # a key store written by anyone with the file
    finally:
        gateway.servers.run(runner.cleanup())  # drains the audit queue
        gateway.servers.run(fake.stop())
    return path


def ids(path: Path, where: str = "1", *args) -> list[str]:
    """Exchange ids of the gateway whose config is `path`, oldest first."""
    conn = sqlite3.connect(path.parent / "state.db")
    try:
        return [row[0] for row in conn.execute(f"SELECT id FROM exchanges WHERE {where} ORDER BY id", args)]
    finally:
        conn.close()


@pytest.fixture
def umask():
    """`aiogw.cli.main` narrows the process's umask, as the command does: put it back."""
    mask = os.umask(0o022)
    os.umask(mask)
    yield
    os.umask(mask)


# --- finding 6: terminal escapes --------------------------------------------------------


def test_audit_list_show_and_conversation_show_escapes_never_send_them(hostile):
    listed = aiogw("audit", "list", "--config", str(hostile))
    assert_no_raw_controls(listed.stdout + listed.stderr)
    assert "claude-evil\\x1b]0;pwned" in listed.stdout
    (ident,) = ids(hostile, "model = ?", MODEL)
    shown = aiogw("audit", "show", ident, "--config", str(hostile)).stdout
    assert_no_raw_controls(shown)
    assert f"model {visible(MODEL)}" in shown
    assert "\\x1b]52;c;cm0gLXJmIH4=\\x07" in shown and "\\x1b[8mhidden" in shown and "\\u202egnp.exe" in shown
    # A message body keeps its own lines and tabs; everything else is escaped.
    assert "--- user\nfirst line\tafter a tab\nsecond line \\x1b]0;pwned\\x07" in shown
    assert "== answer\nthe answer \\x1b]0;pwned\\x07" in shown and "\\x0dover" in shown
    for args in (("conversation", ident), ("conversation", ident, "--full")):
        out = aiogw("audit", *args, "--config", str(hostile))
        assert out.returncode == 0 and visible(MODEL)[:20] in out.stdout
        assert_no_raw_controls(out.stdout + out.stderr)


def test_usage_and_keys_list_show_escapes(hostile):
    usage = aiogw("usage", "--by", "model", "--config", str(hostile))
    assert usage.returncode == 0 and visible(MODEL) in usage.stdout
    assert_no_raw_controls(usage.stdout)
    listed = aiogw("keys", "list", "--config", str(hostile))
    assert listed.returncode == 0 and visible(USER) in listed.stdout
    assert_no_raw_controls(listed.stdout + listed.stderr)


def test_json_output_escapes_every_control_and_reads_back_the_same(hostile):
    """JSON escapes C0 controls itself (ESC is \\u001b); DEL, C1 and the bidi characters
    are escaped too, as \\u escapes that mean the same characters."""
    (ident,) = ids(hostile, "model = ?", MODEL)
    shown = aiogw("audit", "show", ident, "--json", "--config", str(hostile)).stdout
    exported = aiogw("audit", "export", "--config", str(hostile)).stdout
    for out in (shown, exported):
        assert_no_raw_controls(out)
        assert "\\u001b]0;pwned\\u0007" in out and "\\u202e" in out and "\\u009b" in out and "\\u007f" in out
    record = orjson.loads(shown)
    assert record["model"] == MODEL
    assert record["request"]["messages"][0]["content"] == MESSAGE
    assert ANSWER in record["response"]["message"]["content"][0]["text"]
    assert MODEL in [orjson.loads(line)["model"] for line in exported.splitlines()]


def test_metrics_labels_carry_no_raw_control_characters(servers, gateway, tmp_path):
    g = LimitedGateway(servers, gateway.fake, gateway.fake_url, tmp_path / "state.db", toml=BASE_TOML,
                       extra='[[users]]\nname = "alice"\n')
    try:
        client = g.anthropic("alice", max_retries=0)
        # The second shows as the first does: one series, never two of the same labels.
        for model in (MODEL, "claude-m\x1b", "claude-m\\x1b"):
            client.messages.create(model=model, max_tokens=8, messages=[{"role": "user", "content": "hi"}])
        scrape_until(g, lambda s: s.total("aiogw_requests_total") == 3)
        text = scrape(g).text
    finally:
        g.stop()
    assert_no_raw_controls(text)
    s = parse(text)  # also: no duplicate series
    assert s.by("aiogw_requests_total", "model") == {(visible(MODEL),): 1, ("claude-m\\x1b",): 2}


# --- finding 7: records nested deeper than JSON tools read --------------------------------


@pytest.fixture(scope="module")
def deep_records(tmp_path_factory):
    """Records as the writer of today and of before store them, and as a writer that
    keeps a deep request's raw body: the request whole, in parts, nested 250 to 1,100
    deep; a text column that is not UTF-8."""
    import asyncio


    tmp = tmp_path_factory.mktemp("deep")
    state = tmp / "state.db"
    made = []
    now = time.time()
    for n, (depth, split) in enumerate(((250, True), (300, False), (600, False), (1000, False), (1100, False))):
        ex = exchange(now - 10 + n, [{"role": "user", "content": "x"}], session=f"s-{depth}")  # ids in this order
        body = b'{"model":"claude-sonnet-4-6","max_tokens":64,'
        if split:  # a system prompt past SPLIT_MIN: the messages are stored as parts
            body += b'"system":' + orjson.dumps(ex.json["system"]) + b","
        body += b'"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":'
        body += nested_json(depth, b'"deep"', arrays=True) + b"}]}]}"
        ex.body, ex.json = body, (json.loads(body) if depth < 900 else None)
        made.append(ex)
    asyncio.run(write(state, made))
    conn = sqlite3.connect(state)
    ids = [row[0] for row in conn.execute("SELECT id FROM exchanges ORDER BY id")]
    with conn:
        # What a writer that keeps a deep request's raw body stores, whatever this one did.
        for ident, ex in zip(ids[1:], made[1:], strict=True):
            conn.execute("UPDATE payloads SET request_meta = NULL, request_raw = ? WHERE id = ?",
                         (squeeze(ex.body), ident))
        conn.execute("UPDATE payloads SET response = ? WHERE id = ?", (squeeze(b'{"deep":' + nested_json(400, b'"deep"', arrays=True) + b"}"),
                     ids[1]))
        conn.execute("UPDATE exchanges SET user_agent = CAST(x'ff1b5b324a' AS TEXT) WHERE id = ?", (ids[2],))
    conn.close()
    path = tmp / "aiogw.toml"
    path.write_text(route_toml(state, "http://127.0.0.1:9"))
    return path, ids, made


def test_show_and_conversation_never_crash_on_a_deep_record(deep_records):
    path, ids, _ = deep_records
    for ident in ids:
        for args in (("show", ident), ("show", ident, "--json"), ("conversation", ident, "--full")):
            result = aiogw("audit", *args, "--config", str(path))
            assert result.returncode == 0, (args, result.stderr)
            assert_no_raw_controls(result.stdout)
    split, whole = (aiogw("audit", "show", ident, "--config", str(path)).stdout for ident in ids[:2])
    # 250 deep in a message stored apart: the page shows it; only its JSON record is too deep.
    assert '[tool result t]\n[[[[' in split and '"deep"]]]]' in split
    assert "[tool result t]\n[nested too deeply to show: 269 levels" in whole
    assert "== answer\n[nested too deeply to show: 401 levels" in whole
    # A stored text that is not UTF-8 (no writer of today stores one): shown, escaped.
    assert "· \ufffd\\x1b[2J" in aiogw("audit", "show", ids[2], "--config", str(path)).stdout


def test_export_writes_every_record_and_each_line_reads_back(deep_records):
    path, ids, made = deep_records
    lines = aiogw("audit", "export", "--config", str(path)).stdout.splitlines()
    records = [orjson.loads(line) for line in lines]  # orjson reads 1,024 levels: each line is within them
    assert [r["id"] for r in records] == ids
    by_id = dict(zip(ids, made, strict=True))
    for record in records[:4]:
        request = record["request"]
        assert request["aiogw_not_shown"].startswith("nested too deeply to show")
        assert request["depth"] > 250 and request["bytes"] == len(request["json"].encode())
        # The stored request, whole: the JSON text of what the agent sent (rebuilt from
        # its parts for the first).
        if record["id"] == ids[0]:
            assert orjson.loads(request["json"]) == orjson.loads(by_id[record["id"]].body)
        else:
            assert request["json"] == by_id[record["id"]].body.decode()
    assert records[1]["response"]["depth"] == 401
    # Past 1,024 levels the stored body is not read as JSON at all: it is kept as its text.
    assert records[4]["request"] == made[4].body.decode()
    shown = orjson.loads(aiogw("audit", "show", ids[0], "--json", "--config", str(path)).stdout)
    assert shown["request"]["aiogw_not_shown"].startswith("nested too deeply") and shown["model"]


def test_records_of_a_deep_body_sent_through_a_gateway_are_shown(hostile):
    """Whatever the gateway made of the 600-deep body, the CLI reads its record."""
    every = ids(hostile)
    assert len(every) == 2
    for ident in every:
        for args in (("show", ident), ("show", ident, "--json"), ("conversation", ident, "--full")):
            result = aiogw("audit", *args, "--config", str(hostile))
            assert result.returncode in (0, 1), result.stderr  # 1: no conversation, said without a traceback
    exported = [orjson.loads(line) for line in aiogw("audit", "export", "--config", str(hostile)).stdout.splitlines()]
    assert [r["id"] for r in exported] == every


# --- finding 12: check-config --strict, AIOGW_CONFIG, the running gateway, the demo ---------


def test_check_config_strict_fails_on_each_unset_provider_key(tmp_path):
    empty = tmp_path / "empty.key"
    empty.write_text("\n")
    path = tmp_path / "aiogw.toml"
    path.write_text(route_toml(tmp_path / "state.db", "http://127.0.0.1:9", '{ env = "AIOGW_TEST_UNSET_KEY" }')
                    + textwrap.dedent(f"""
                    [[routes]]
                    name = "filed"
                    dialect = "openai"
                    upstream = "http://127.0.0.1:9"
                    credential = {{ file = "{empty}" }}
                    [[routes]]
                    name = "own"
                    dialect = "openai"
                    upstream = "http://127.0.0.1:9"
                    credential = "client"
                    """))
    env = {"PATH": os.environ["PATH"]}
    lenient = aiogw("check-config", str(path), env=env)
    assert lenient.returncode == 0 and "ok, 3 routes" in lenient.stdout
    assert "warning" in lenient.stderr
    strict = aiogw("check-config", str(path), "--strict", env=env)
    assert strict.returncode == 1 and "ok, 3 routes" not in strict.stdout
    for out in (lenient.stderr, strict.stderr):
        assert "route anthropic: the provider key variable AIOGW_TEST_UNSET_KEY is not set" in out
        assert f"route filed: the provider key file {empty} is empty" in out
        assert "route own" not in out
    empty.write_text("sk-from-a-file\n")
    ok = aiogw("check-config", str(path), "--strict", env={**env, "AIOGW_TEST_UNSET_KEY": "sk-set"})
    assert ok.returncode == 0 and ok.stderr == "" and "ok, 3 routes" in ok.stdout
    # As the other commands take it (a new user's first try): --config, or AIOGW_CONFIG.
    named = aiogw("check-config", "--config", str(path), "--strict", env={**env, "AIOGW_TEST_UNSET_KEY": "sk-set"})
    assert named.returncode == 0 and "ok, 3 routes" in named.stdout
    by_env = aiogw("check-config", "--strict", env={**env, "AIOGW_CONFIG": str(path)})
    assert by_env.returncode == 1 and "1 of 3 routes has no provider key" in by_env.stderr
    none = aiogw("check-config", env=env)
    assert none.returncode == 2 and "check-config needs a file" in none.stderr and "Traceback" not in none.stderr


def test_aiogw_config_names_the_file_when_config_is_not_given(tmp_path):
    path = tmp_path / "gateway.toml"
    path.write_text(route_toml(tmp_path / "gateway.db", "http://127.0.0.1:9"))
    other = tmp_path / "other.toml"
    other.write_text(route_toml(tmp_path / "other.db", "http://127.0.0.1:9"))
    env = {"PATH": os.environ["PATH"], "AIOGW_CONFIG": str(path)}
    made = aiogw("keys", "create", "alice", env=env, cwd=tmp_path)
    assert made.returncode == 0 and str(tmp_path / "gateway.db") in made.stderr
    assert (tmp_path / "gateway.db").exists() and not (tmp_path / "var").exists()
    assert "alice" in aiogw("keys", "list", env=env, cwd=tmp_path).stdout
    for command in (("audit", "list"), ("usage",)):
        result = aiogw(*command, env=env, cwd=tmp_path)
        # The gateway never ran: no record yet, in the file AIOGW_CONFIG names.
        assert result.returncode == 0 and result.stdout == "no exchanges match\n", result
        assert f"state: {tmp_path / 'gateway.db'}" in result.stderr, result.stderr
    # --config wins over the variable.
    assert "other.db" in aiogw("keys", "list", "--config", str(other), env=env, cwd=tmp_path).stderr
    missing = aiogw("serve", "--port", "0", env={**env, "AIOGW_CONFIG": str(tmp_path / "nope.toml")})
    assert missing.returncode == 2 and f"{tmp_path / 'nope.toml'}: cannot read the config file" in missing.stderr


@pytest.fixture
def announced(tmp_path, monkeypatch):
    """A gateway's announcement, made by another process as `aiogw serve` makes it,
    in a runtime folder of the test's own."""
    where = tmp_path / "run"
    monkeypatch.setattr(running, "folder", lambda runtime_dir=None: where)
    path = tmp_path / "gateway.toml"
    path.write_text(route_toml(tmp_path / "gateway.db", "http://127.0.0.1:9"))
    code = ("import sys; from pathlib import Path; from aiogw import running\n"
            f"a = running.announce(Path({str(tmp_path / 'gateway.db')!r}), {str(path)!r}, where=Path({str(where)!r}))\n"
            "print('ready', flush=True); sys.stdin.read(); a.close()")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    yield proc, path
    if proc.poll() is None:
        proc.kill()
    proc.communicate()


def test_key_and_audit_commands_warn_when_the_running_gateway_uses_another_database(announced, tmp_path, capsys,
                                                                                     umask):
    from aiogw.cli import main

    proc, gateway_config = announced
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(route_toml(tmp_path / "wrong.db", "http://127.0.0.1:9"))
    assert main(["keys", "create", "alice", "--config", str(wrong)]) == 0
    out = capsys.readouterr()
    assert out.out.startswith("aiogw-")  # the key alone on stdout, as before
    assert out.err.startswith("created ")  # the command's own line first, the warning after it
    assert f"uses the state database {tmp_path / 'wrong.db'}, which no running gateway uses" in out.err
    assert f"the gateway of pid {proc.pid} uses {tmp_path / 'gateway.db'}, config {gateway_config}" in out.err
    assert f"--config {gateway_config}, or export AIOGW_CONFIG={gateway_config}" in out.err
    for command in (["keys", "list"], ["audit", "list"], ["usage"]):
        main([*command, "--config", str(wrong)])
        assert "which no running gateway uses" in capsys.readouterr().err, command
    main(["keys", "list", "--config", str(gateway_config)])  # the gateway's own database: nothing to say
    assert "warning" not in capsys.readouterr().err
    proc.communicate("")  # the gateway stops and takes its entry away
    main(["keys", "list", "--config", str(wrong)])
    assert "warning" not in capsys.readouterr().err


def test_a_killed_gateways_entry_is_ignored_and_removed(announced, tmp_path, capsys, umask):
    from aiogw.cli import main

    proc, _ = announced
    proc.kill()
    proc.wait()
    entry = tmp_path / "run" / f"{proc.pid}.json"
    assert entry.exists()  # it had no chance to remove it
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(route_toml(tmp_path / "wrong.db", "http://127.0.0.1:9"))
    main(["keys", "list", "--config", str(wrong)])
    assert "warning" not in capsys.readouterr().err
    assert not entry.exists()


def test_the_demo_without_its_sdks_names_its_extra():
    code = ("import sys; sys.modules['anthropic'] = None; sys.modules['openai'] = None\n"
            "from aiogw.cli import main; sys.exit(main(['demo']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and done.stdout == ""
    assert "needs the anthropic and openai SDKs" in done.stderr
    assert "pip install 'aiogw[demo]'" in done.stderr and "Traceback" not in done.stderr
    cfg = configparser.ConfigParser()
    cfg.read(Path(__file__).parent.parent / "setup.cfg")
    demo = cfg["options.extras_require"]["demo"].split()
    assert {d.split(">")[0].split("=")[0] for d in demo} >= {"anthropic", "openai"}


def test_aiogw_serve_announces_its_database_while_it_runs(gateway, tmp_path):
    """End to end: `aiogw serve` announces itself where the commands look by default;
    a key command given another config warns, and the entry goes with SIGTERM."""
    import signal

    path = tmp_path / "gateway.toml"
    port = free_port()
    path.write_text(f"[server]\nport = {port}\n" + route_toml(tmp_path / "gateway.db", gateway.fake_url))
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(route_toml(tmp_path / "wrong.db", gateway.fake_url))
    proc = subprocess.Popen([sys.executable, "-m", "aiogw", "serve", "--config", str(path)],
                            env={"PATH": os.environ["PATH"]}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def healthy() -> bool:
            assert proc.poll() is None, f"aiogw serve exited {proc.returncode}"
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
            except httpx.TransportError:
                return False

        assert poll(healthy, 20), "aiogw serve did not answer /healthz within 20 s"
        assert proc.pid in [g.pid for g in running.running()]
        warned = aiogw("keys", "list", "--config", str(wrong))
        assert f"the gateway of pid {proc.pid} uses {tmp_path / 'gateway.db'}, config {path}" in warned.stderr
        assert f"the gateway of pid {proc.pid}" not in aiogw("keys", "list", "--config", str(path)).stderr
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert proc.pid not in [g.pid for g in running.running()]
    assert not (running.folder() / f"{proc.pid}.json").exists()
