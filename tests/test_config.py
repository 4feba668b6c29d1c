import textwrap

import pytest

from aiogw import config
from aiogw.config_reader import ConfigError


def write(tmp_path, text):
    path = tmp_path / "aiogw.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_defaults_route_to_the_real_providers(tmp_path):
    cfg = config.load(None, env={"ANTHROPIC_API_KEY": "sk-ant-x"})
    assert cfg.source == "<defaults>"
    assert (cfg.server.host, cfg.server.port, cfg.server.mount) == ("127.0.0.1", 8080, "/llm-gateway")
    assert [(r.name, r.dialect, r.upstream) for r in cfg.routes] == [
        ("anthropic", "anthropic", "https://api.anthropic.com"),
        ("openai", "openai", "https://api.openai.com"),
        ("google", "gemini", "https://generativelanguage.googleapis.com"),
    ]
    assert cfg.routes[0].credential.secret == "sk-ant-x"
    assert cfg.routes[1].credential.secret is None  # unset: reported at start, refused per request
    assert cfg.state_path.name == "aiogw.db"


def test_full_file(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text("sk-from-file\n")
    path = write(
        tmp_path,
        f"""
        [server]
        host = "0.0.0.0"
        port = 9000
        mount = "/gw/"
        max_body_bytes = 2048
        [state]
        path = "state/gw.db"
        [upstream]
        connect_timeout = 2
        idle_timeout = 30
        [[routes]]
        name = "vllm"
        dialect = "openai"
        upstream = "http://10.0.0.5:8000/"
        credential = {{ file = "{key_file}" }}
        first_byte_timeout = 5
        [[routes]]
        name = "claude-own-key"
        dialect = "anthropic"
        upstream = "https://api.anthropic.com"
        credential = "client"
        [[users]]
        name = "build-agent"
        """,
    )
    cfg = config.load(path, env={})
    assert cfg.server.mount == "/gw"
    assert cfg.server.max_body_bytes == 2048
    assert cfg.state_path == tmp_path / "state" / "gw.db"
    vllm, own = cfg.routes
    assert vllm.upstream == "http://10.0.0.5:8000"
    assert vllm.credential.secret == "sk-from-file"
    assert (vllm.timeouts.connect, vllm.timeouts.first_byte, vllm.timeouts.idle) == (2.0, 5.0, 30.0)
    assert own.credential.source == "client"
    assert own.timeouts.first_byte == 600.0
    assert cfg.user_names() == {"build-agent"}
    assert "sk-from-file" not in repr(cfg)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[server]\nport = 'x'\n", "server.port: expected a whole number"),
        ("[server]\nport = 70000\n", "server.port: expected a whole number from 0 to 65535"),
        ("[server]\nprot = 1\n", "server.prot: unknown key"),
        ("[serve]\n", "serve: unknown key"),
        (
            "[[routes]]\nname='a'\ndialect='cohere'\nupstream='https://x'\ncredential='client'\n",
            "routes[0].dialect: expected one of anthropic, openai, gemini",
        ),
        (
            "[[routes]]\nname='a'\ndialect='openai'\nupstream='ftp://x'\ncredential='client'\n",
            "routes[0].upstream: expected an http(s) base URL",
        ),
        (
            "[[routes]]\nname='a/b'\ndialect='openai'\nupstream='https://x'\ncredential='client'\n",
            "routes[0].name: expected a name",
        ),
        (
            "[[routes]]\nname='a'\ndialect='openai'\nupstream='https://x'\ncredential='mine'\n",
            "routes[0].credential: expected { env",
        ),
        (
            "[[routes]]\nname='a'\ndialect='openai'\nupstream='https://x'\ncredential={file='/nonexistent/k'}\n",
            "routes[0].credential: cannot read credential file",
        ),
        (
            "[[routes]]\nname='a'\ndialect='openai'\nupstream='https://x'\ncredential='client'\nidle_timeout=-1\n",
            "routes[0].idle_timeout: expected a number of seconds",
        ),
        (
            "[[routes]]\nname='a'\ndialect='openai'\nupstream='https://x'\ncredential='client'\n[[routes]]\nname='a'\ndialect='openai'\nupstream='https://y'\ncredential='client'\n",
            "route name 'a' is used twice",
        ),
        ("[[routes]]\nname='a'\ndialect='openai'\nupstream='https://x'\ncredential='client'\nallow = ['TRACE /v1/x']\n", "routes[0].allow: 'TRACE /v1/x': TRACE is never forwarded"),
        ("[[routes]]\nname='a'\ndialect='openai'\nupstream='https://x'\ncredential='client'\nallow = ['CONNECT /']\n", "CONNECT is never forwarded"),
        ("[[routes]]\nname='a'\ndialect='openai'\nupstream='https://x'\ncredential='client'\nallow = ['GET v1/files']\n", "routes[0].allow: 'GET v1/files': expected METHOD /path"),
        ("[[routes]]\nname='a'\ndialect='openai'\nupstream='https://x'\ncredential='client'\nallow = ['BREW /pot']\n", "expected METHOD /path"),
        ("[[routes]]\nname='a'\ndialect='openai'\nupstream='https://x'\ncredential='client'\nallow = 'GET /v1/files'\n", "routes[0].allow: expected a list"),
        ("[[routes]]\nname='a'\ndialect='openai'\nupstream='https://x'\ncredential='client'\n[clients]\nheader_timeout = -1\n", "clients.header_timeout: expected a number of seconds"),
        ("[[routes]]\nname='a'\ndialect='openai'\nupstream='https://x'\ncredential='client'\n[clients]\nmax_connections_per_address = 'many'\n", "clients.max_connections_per_address: expected a whole"),
        ("[[routes]]\nname='a'\ndialect='openai'\nupstream='https://x'\ncredential='client'\n[clients]\nread_timeout = 5\n", "clients.read_timeout: unknown key"),
        ("routes = []\n", "routes: expected at least one"),
        ("[server\n", "not valid TOML"),
    ],
)
def test_mistakes_name_the_file_and_key(tmp_path, text, message):
    assert_refused(tmp_path, text, message)


def assert_refused(tmp_path, text: str, message: str) -> None:
    """The config `text` is refused with `message`, named by its file and key."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        config.load(path, env={})
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the config file"):
        config.load(tmp_path / "nope.toml")


ROUTE = "[[routes]]\nname='a'\ndialect='openai'\nupstream='https://x'\ncredential='client'\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[server]\ndrain_seconds = -1\n" + ROUTE, "server.drain_seconds: expected a number of seconds"),
        ("[server]\nmount = ''\n" + ROUTE.replace("'a'", "'metrics'"),
         "route name 'metrics' is the gateway's own /metrics while server.mount is empty"),
        ("[metrics]\nallow = ['10.0.0.0/33']\n" + ROUTE, "metrics.allow: '10.0.0.0/33' is not an address"),
        ("[metrics]\nallow = '127.0.0.1'\n" + ROUTE, "metrics.allow: expected a list of addresses"),
        ("[metrics]\ntoken = 'inline-secret'\n" + ROUTE, "metrics.token: expected { env"),
        ("[metrics]\ntoken = 'client'\n" + ROUTE, "metrics.token: expected { env = \"VAR\" } or { file"),
        ("[metrics]\ntoken = { env = 'UNSET_TOKEN' }\n" + ROUTE, "metrics.token: env UNSET_TOKEN is empty or not set"),
        ("[metrics]\nmax_label_values = 0\n" + ROUTE, "metrics.max_label_values: expected a whole number from 1"),
        ("[metrics]\nport = 1\n" + ROUTE, "metrics.port: unknown key"),
        ("[log]\nlevel = 'loud'\n" + ROUTE, "log.level: expected one of debug, info, warning, error"),
        ("[log]\nformat = 'xml'\n" + ROUTE, "log.format: expected one of json, text"),
        ("[log]\nexchanges = 'yes'\n" + ROUTE, "log.exchanges: expected a boolean"),
    ],
)
def test_operations_mistakes_name_the_file_and_key(tmp_path, text, message):
    assert_refused(tmp_path, text, message)


def test_operations_settings_are_read(tmp_path):
    path = write(tmp_path, "[server]\ndrain_seconds = 5\n[metrics]\nallow = ['10.0.0.0/8']\n"
                           "token = { env = 'TOKEN' }\nmax_label_values = 3\n"
                           "[log]\nlevel = 'WARNING'\nformat = 'text'\nexchanges = false\n" + ROUTE)
    cfg = config.load(path, env={"TOKEN": "s3cret"})
    assert cfg.server.drain_seconds == 5.0
    assert (cfg.metrics.allow, cfg.metrics.token, cfg.metrics.max_label_values) == (("10.0.0.0/8",), "s3cret", 3)
    assert (cfg.log.level, cfg.log.format, cfg.log.exchanges) == ("warning", "text", False)


ROUTE = "[[routes]]\nname='a'\ndialect='openai'\nupstream='https://x'\ncredential='client'\n"


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ("url = 'postgresql://aiogw:hunter2@db/aiogw'\n", "state.url: the URL holds a password: move it to [state] password"),
        ("url = 'postgresql://aiogw@db/aiogw?sslmode=require&password=hunter2'\n", "state.url: the URL holds a password"),
        ("url = 'mysql://aiogw@db/aiogw'\n", "state.url: expected postgresql://USER@HOST[:PORT]/DATABASE"),
        ("url = 'sqlite:///var/aiogw.db'\n", "for SQLite, set [state] path instead"),
        ("password = { env = 'DB_PASSWORD' }\n", "state.password: a password needs [state] url"),
        ("url = 'postgresql://aiogw@db/aiogw'\npassword = { env = 'UNSET_HERE' }\n", "state.password: env UNSET_HERE is empty or not set"),
        ("url = 'postgresql://aiogw@db/aiogw'\npassword = 'client'\n", "state.password: expected { env"),
        ("url = 'postgresql://aiogw@db/aiogw'\ntimeout = 0\n", "state.timeout: expected 0.1 to 600 seconds"),
        ("host = 'db'\n", "state.host: unknown key"),
    ],
)
def test_state_mistakes_are_named_and_no_password_is_echoed(tmp_path, state, message):
    assert_refused(tmp_path, "[state]\n" + state + ROUTE, message)
    path = write(tmp_path, "[state]\n" + state + ROUTE)
    with pytest.raises(ConfigError) as info:
        config.load(path, env={})
    assert "hunter2" not in str(info.value)


def test_a_spool_bound_out_of_range_is_named(tmp_path):
    assert_refused(tmp_path, "[audit]\nspool_bytes = 10\n" + ROUTE, "audit.spool_bytes")


def test_a_postgresql_state_is_read_with_its_password_kept_out_of_repr(tmp_path):
    path = write(tmp_path, "[state]\nurl = 'postgresql://aiogw@db.internal/aiogw?sslmode=verify-full'\n"
                           "password = { env = 'DB_PASSWORD' }\ntimeout = 5\n" + ROUTE)
    cfg = config.load(path, env={"DB_PASSWORD": "s3cret"})
    assert cfg.state_url == "postgresql://aiogw@db.internal/aiogw?sslmode=verify-full"
    assert cfg.state_password == "s3cret" and cfg.state_timeout == 5
    assert "s3cret" not in repr(cfg)
