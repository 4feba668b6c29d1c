"""`aiogw audit ...` over a real gateway's state: what an operator reads."""

import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import anthropic
import orjson
import pytest
from conftest import PROVIDER_KEYS

from aiogw import config, keys
from aiogw.app import start
from aiogw.store import make_store
from tests.stores import made_ready, pg_state

pytestmark = pytest.mark.timeout(60)


@dataclass
class Audited:
    """A config whose state holds a short history, and the environment its commands need."""

    path: Path
    env: dict[str, str]
    pg_database: str | None = None  # on PostgreSQL: the database's name


@pytest.fixture(scope="module")
def audited(gateway, tmp_path_factory, request):
    """A gateway of its own with a short history: two conversations and a refusal, on
    the store of the session gateway's kind (each test here runs on both)."""
    tmp = tmp_path_factory.mktemp("audit-cli")
    state, env, database = "", {}, None
    if gateway.cfg.state_url is not None:
        url = request.getfixturevalue("pg_server").create_database()
        state, env = pg_state(url)
        database = urllib.parse.urlsplit(url).path.lstrip("/")
    path = tmp / "aiogw.toml"
    path.write_text(
        textwrap.dedent(f"""
        [state]
        path = "state.db"
        {{state}}[audit]
        flush_interval = 0.01
        [[routes]]
        name = "anthropic"
        dialect = "anthropic"
        upstream = "{gateway.fake_url}"
        credential = {{{{ env = "FAKE_ANTHROPIC" }}}}
        [[users]]
        name = "alice"
        [[users]]
        name = "bob"
        """).format(state=state)
    )
    cfg = config.load(path, env={**PROVIDER_KEYS, **env})
    store = make_store(cfg.state_path, cfg.state_url, cfg.state_password)
    gateway.servers.run(made_ready(store))
    runner, port = gateway.servers.run(start(cfg, port=0))
    base = f"http://127.0.0.1:{port}/llm-gateway/anthropic"
    try:
        for user, session in (("alice", "s-alice"), ("bob", "s-bob")):
            record, key, digest = keys.new_key(user)
            gateway.servers.run(store.create_key(record, digest))
            with anthropic.Anthropic(
                api_key=key, base_url=base, max_retries=0, default_headers={"X-Claude-Code-Session-Id": session}
            ) as c:
                messages = [{"role": "user", "content": f"{user} asks about the secret plan"}]
                for _ in range(2):
                    answer = poll_create(c, model=f"claude-{user}-1", max_tokens=16, system="Be brief.",
                                         messages=messages)
                    messages += [
                        {"role": "assistant", "content": answer.content[0].text},
                        {"role": "user", "content": "go on"},
                    ]
        with (
            anthropic.Anthropic(api_key="aiogw-wrong", base_url=base, max_retries=0) as c,
            pytest.raises(anthropic.AuthenticationError),
        ):
            c.messages.create(model="m", max_tokens=1, messages=[{"role": "user", "content": "x"}])
    finally:
        gateway.servers.run(runner.cleanup())  # drains the audit queue
        gateway.servers.run(store.close())
    return Audited(path, env, database)


def poll_create(client, **kwargs):
    """The first request with a key just made: on PostgreSQL the gateway learns of it by
    its NOTIFY, a moment after the command returned (README: keys)."""
    deadline = time.monotonic() + 5
    while True:
        try:
            return client.messages.create(**kwargs)
        except anthropic.AuthenticationError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def aiogw(audited, *args):
    path, env = (audited.path, audited.env) if isinstance(audited, Audited) else (audited, {})
    result = subprocess.run(
        [sys.executable, "-m", "aiogw", "audit", *args, "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **env},
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_list_and_filters(audited):
    out = aiogw(audited, "list").stdout.splitlines()
    assert out[0].startswith("ID") and len(out) == 1 + 5
    assert len(aiogw(audited, "list", "--user", "bob").stdout.splitlines()) == 1 + 2
    refused = aiogw(audited, "list", "--outcome", "refused").stdout.splitlines()
    assert len(refused) == 1 + 1 and refused[0].endswith("REASON") and refused[1].endswith(" auth")
    assert len(aiogw(audited, "list", "--model", "claude-alice-*").stdout.splitlines()) == 1 + 2
    assert len(aiogw(audited, "list", "--status", "401").stdout.splitlines()) == 1 + 1
    assert aiogw(audited, "list", "--since", "1h", "--limit", "2").stdout.count("\n") == 1 + 2 + 1  # and "more match"
    assert "no exchanges match" in aiogw(audited, "list", "--until", "2000-01-01").stdout
    bad = aiogw(audited, "list", "--since", "yesterday-ish")
    assert bad.returncode == 2 and "cannot read the time" in bad.stderr
    inverted = aiogw(audited, "list", "--since", "1d", "--until", "7d")
    assert inverted.returncode == 2 and "--since 1d is after --until 7d" in inverted.stderr
    assert "Traceback" not in inverted.stderr


def test_show(audited):
    newest_ok = aiogw(audited, "list", "--outcome", "ok", "--limit", "1").stdout.splitlines()[1].split()[0]
    text = aiogw(audited, "show", newest_ok).stdout
    assert "== system" in text and "Be brief." in text
    assert "== messages (3)" in text and "go on" in text
    assert "== answer" in text and "route        anthropic" in text
    record = orjson.loads(aiogw(audited, "show", newest_ok, "--json").stdout)
    assert record["request"]["messages"][0]["content"].endswith("asks about the secret plan")
    assert record["response"]["complete"] is True
    missing = aiogw(audited, "show", "01NOPE")
    assert missing.returncode == 1 and "no exchange" in missing.stderr


def test_conversation(audited):
    text = aiogw(audited, "conversation", "s-alice").stdout
    assert text.startswith("conversation s-alice of alice: 2 exchanges")
    any_id = aiogw(audited, "list", "--user", "bob", "--limit", "1").stdout.splitlines()[1].split()[0]
    assert aiogw(audited, "conversation", any_id).stdout.startswith("conversation s-bob of bob: 2 exchanges")
    unknown = aiogw(audited, "conversation", "s-nobody")
    assert unknown.returncode == 1 and "no conversation or exchange 's-nobody'" in unknown.stderr
    # A request refused before its body was read has no conversation: say so, not "no exchange".
    refused = aiogw(audited, "list", "--outcome", "refused").stdout.splitlines()[1].split()[0]
    alone = aiogw(audited, "conversation", refused)
    assert alone.returncode == 1 and "belongs to no conversation" in alone.stderr
    assert f"aiogw audit show {refused}" in alone.stderr and "Traceback" not in alone.stderr
    full = aiogw(audited, "conversation", "s-bob", "--full").stdout
    assert full.count("== answer") == 2
    # The second turn resends the first: only what is new is printed again.
    first, second = full.split("=" * 80)[1:]
    assert "== system\nBe brief." in first and "== messages (1)\n" in first
    assert "== system: as in the turn before" in second and "Be brief." not in second
    assert "== messages (3; the first 1 as in the turn before)" in second
    assert second.count("bob asks about the secret plan") == 0 and "--- user\ngo on" in second


def test_export_is_jsonl_with_payloads(audited):
    lines = aiogw(audited, "export", "--user", "alice").stdout.splitlines()
    records = [orjson.loads(line) for line in lines]
    assert [r["user"] for r in records] == ["alice", "alice"]
    assert records[0]["id"] < records[1]["id"]
    assert all(r["request"]["system"] == "Be brief." for r in records)


def test_prune_deletes_old_records_and_unused_content(audited, tmp_path, request):
    copy = copied(audited, tmp_path, request)
    nothing = aiogw(copy, "prune", "--before", "2000-01-01").stdout
    assert "deleted 0 exchanges and 0 stored contents" in nothing
    future = aiogw(copy, "prune", "--before", time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 3600)))
    assert future.returncode == 2 and "in the future" in future.stderr and "--before now" in future.stderr
    dry = aiogw(copy, "prune", "--before", "now", "--dry-run")
    assert dry.returncode == 0 and "would delete 5 exchanges" in dry.stdout
    assert len(aiogw(copy, "list").stdout.splitlines()) == 1 + 5  # nothing deleted
    everything = aiogw(copy, "prune", "--before", "now")
    assert "deleted 5 exchanges" in everything.stdout
    assert "no exchanges match" in aiogw(copy, "list").stdout
    if copy.pg_database is None:
        conn = sqlite3.connect(copy.path.parent / "state.db")
        counts = [conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in ("blobs", "payloads")]
    else:
        pg = request.getfixturevalue("pg_server")
        counts = [int(pg.sql(f"SELECT count(*) FROM {table}", database=copy.pg_database).strip())
                  for table in ("blobs", "payloads")]
    assert counts == [0, 0]


def copied(audited: Audited, tmp_path: Path, request) -> Audited:
    """The history in a state of the test's own, to change: the folder copied, or the
    database made from it as a template."""
    shutil.copytree(audited.path.parent, tmp_path / "copy")
    path = tmp_path / "copy" / "aiogw.toml"
    if audited.pg_database is None:
        return Audited(path, audited.env)
    name = f"copy_{secrets.token_hex(4)}"
    request.getfixturevalue("pg_server").sql(f"CREATE DATABASE {name} TEMPLATE {audited.pg_database} OWNER aiogw")
    path.write_text(path.read_text().replace(f"/{audited.pg_database}\"", f"/{name}\""))
    return Audited(path, audited.env, name)


def test_a_conversation_is_one_users(tmp_path):
    """Two users' agents may send the same session id, or open alike without one: each
    user's exchanges are a conversation of their own."""
    import asyncio

    from test_audit_store import exchange, write

    history = [{"role": "user", "content": "fix the parser"}]
    made = []
    for user in ("alice", "bob"):
        for session in ("s-shared", None):
            ex = exchange(time.time(), history, session=session)
            ex.user = user
            made.append(ex)
    state = tmp_path / "state.db"
    asyncio.run(write(state, made))
    path = tmp_path / "aiogw.toml"
    path.write_text(f'[state]\npath = "{state}"\n[[routes]]\nname = "anthropic"\ndialect = "anthropic"\n'
                    'upstream = "http://127.0.0.1:9"\ncredential = { env = "FAKE_ANTHROPIC" }\n')

    shared = aiogw(path, "conversation", "s-shared").stdout
    assert "conversation s-shared of alice: 1 exchange\n" in shared
    assert "conversation s-shared of bob: 1 exchange\n" in shared
    rows = aiogw(path, "export").stdout.splitlines()
    opened = {r["user"]: r["conversation"] for r in map(orjson.loads, rows) if r["conversation"].startswith("p-")}
    assert opened.keys() == {"alice", "bob"} and opened["alice"] != opened["bob"]
    alone = aiogw(path, "conversation", opened["alice"]).stdout
    assert alone.startswith(f"conversation {opened['alice']} of alice: 1 exchange\n") and " bob " not in alone


def test_list_says_when_more_match_than_it_shows(audited):
    shown = aiogw(audited, "list", "--limit", "2").stdout.splitlines()
    assert len(shown) == 1 + 2 + 1 and shown[-1].startswith("(the newest 2 shown; more match")
    assert "more match" not in aiogw(audited, "list", "--limit", "5").stdout
    for bad in ("0", "-1", "lots", "9223372036854775807"):
        refused = aiogw(audited, "list", "--limit", bad)
        assert refused.returncode == 2 and "expected a whole number from 1 to 1000000000" in refused.stderr


def test_a_file_that_is_not_a_database_is_named_without_a_traceback(tmp_path):
    state = tmp_path / "state.db"
    state.write_text("not a database\n")
    path = tmp_path / "aiogw.toml"
    path.write_text(f'[state]\npath = "{state}"\n[[routes]]\nname = "anthropic"\ndialect = "anthropic"\n'
                    'upstream = "http://127.0.0.1:9"\ncredential = { env = "FAKE_ANTHROPIC" }\n')
    for command in (["audit", "list"], ["keys", "list"], ["usage"], ["serve", "--port", "0"]):
        result = subprocess.run([sys.executable, "-m", "aiogw", *command, "--config", str(path)],
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 2, (command, result.stderr)
        assert "Traceback" not in result.stderr
        assert "the state database cannot be used: file is not a database; check [state] path" in result.stderr


def test_the_state_database_is_its_owners_alone(tmp_path):
    path = tmp_path / "aiogw.toml"
    path.write_text(f'[state]\npath = "{tmp_path}/var/state.db"\n[[routes]]\nname = "anthropic"\n'
                    'dialect = "anthropic"\nupstream = "http://127.0.0.1:9"\ncredential = { env = "FAKE_ANTHROPIC" }\n')
    import os

    # Started with a permissive umask, as a login shell's: aiogw narrows its own.
    made = subprocess.run([sys.executable, "-m", "aiogw", "keys", "create", "alice", "--config", str(path)],
                          capture_output=True, text=True, timeout=30, preexec_fn=lambda: os.umask(0o022))
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "var").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "var" / "state.db").stat().st_mode & 0o777 == 0o600


def test_no_database_without_a_config_asks_for_the_config(tmp_path):
    for command in (["audit", "list"], ["usage"]):
        result = subprocess.run([sys.executable, "-m", "aiogw", *command], capture_output=True, text=True,
                                timeout=30, cwd=tmp_path)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert "no state database at" in result.stderr
        assert "no --config given: pass the gateway's config file" in result.stderr


def test_keys_usage_and_migrate_commands_on_the_same_state(audited, tmp_path, request):
    copy = copied(audited, tmp_path, request)

    def run(*args):
        result = subprocess.run([sys.executable, "-m", "aiogw", *args, "--config", str(copy.path)],
                                capture_output=True, text=True, timeout=30, env={**os.environ, **copy.env})
        assert "Traceback" not in result.stderr, result.stderr
        return result

    listed = run("keys", "list")
    assert listed.returncode == 0 and [line.split()[1] for line in listed.stdout.splitlines()[1:]] == ["alice", "bob"]
    assert "password" not in listed.stderr and "state: " in listed.stderr
    made = run("keys", "create", "alice")
    key_id = made.stderr.split()[1]
    assert made.returncode == 0 and made.stdout.startswith("aiogw-")
    assert run("keys", "revoke", key_id).stdout == f"revoked {key_id}\n"
    assert run("keys", "revoke", key_id).returncode == 1
    second, third = (run("keys", "create", "bob").stderr.split()[1] for _ in range(2))
    assert run("keys", "revoke", "--user", "bob").stdout.startswith("revoked 3 keys of bob: ")  # bob's first too
    assert run("keys", "revoke", "--user", "bob").returncode == 1
    assert run("keys", "revoke").returncode == 2 and run("keys", "revoke", key_id, "--user", "bob").returncode == 2
    assert {line.split()[0] for line in run("keys", "list").stdout.splitlines() if "revoked" in line} >= {
        key_id, second, third}
    assert f"{key_id}" in run("keys", "list").stdout
    usage = run("usage", "--by", "model").stdout
    assert "claude-alice-1" in usage and "claude-bob-1" in usage and "TOTAL" in usage
    assert run("migrate").stdout == "the schema is up to date (version 1)\n"
