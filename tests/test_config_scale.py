"""The config keys of scale-out (issue #19): `[server] workers`, and `[limits] store`,
`password`, `on_store_failure`, `reservation_seconds` and `leases`, the shared Redis they
name and how admission uses it.

What must hold: several processes with limits and no store they share is refused
(never the limit times the processes); a store URL never holds its password; every
mistake names the file, the key and the fix, in `load` and in `aiogw check-config`.
"""

import subprocess
import sys
import textwrap

import pytest

from aiogw import config
from aiogw.config_reader import ConfigError
from tests.served import SOURCE

ROUTE = "[[routes]]\nname='a'\ndialect='openai'\nupstream='https://x'\ncredential='client'\n"
STORE = "redis://10.0.0.5:6379/0"


def write(tmp_path, text: str):
    path = tmp_path / "aiogw.toml"
    path.write_text(textwrap.dedent(text) + ROUTE)
    return path


def load(tmp_path, text: str, env: dict[str, str] | None = None) -> config.Config:
    return config.load(write(tmp_path, text), env=env or {})


def refused(tmp_path, text: str, env: dict[str, str] | None = None) -> str:
    """The message `text` is refused with; it names the file first, as every mistake does."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        config.load(path, env=env or {})
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    return message


# --- [server] workers ----------------------------------------------------------------


def test_workers_default_to_one_and_take_one_to_sixty_four(tmp_path):
    assert load(tmp_path, "").server.workers == 1
    assert load(tmp_path, "[server]\nworkers = 64\n").server.workers == 64
    for value in ("0", "65", "-1"):
        assert "server.workers: expected a whole number from 1 to 64" in refused(tmp_path, f"[server]\nworkers = {value}\n")
    for value in ("'4'", "2.0", "true"):
        assert "server.workers: expected a whole number" in refused(tmp_path, f"[server]\nworkers = {value}\n")


@pytest.mark.parametrize("limits", [
    "[limits]\nrequests_per_minute = 60\n",
    "[limits]\ntokens_per_minute = 100000\n",
    "[limits]\nmax_concurrent = 3\n",
    "[limits]\ndaily_budget_usd = 5.0\n",
    "[limits]\nmonthly_budget_usd = 50.0\n",
    "[[users]]\nname = 'ci'\nlimits = { max_concurrent = 2 }\n",  # one user's limit is enough
])
def test_several_workers_with_a_counted_limit_and_no_store_are_refused(tmp_path, limits):
    # Each worker would count on its own: the real limit would be the limit times the workers.
    message = refused(tmp_path, "[server]\nworkers = 4\n" + limits)
    assert "server.workers: 4 worker processes with limits need a store they share" in message
    assert 'set [limits] store = "redis://HOST:PORT/DB"' in message and "or run one worker" in message


def test_several_workers_are_served_with_a_store_or_without_limits_and_one_worker_needs_no_store(tmp_path):
    shared = load(tmp_path, f"[server]\nworkers = 4\n[limits]\nrequests_per_minute = 60\nstore = '{STORE}'\n")
    assert (shared.server.workers, shared.limits_store.url) == (4, STORE)
    unlimited = load(tmp_path, "[server]\nworkers = 4\n[[users]]\nname = 'ci'\n")
    assert unlimited.server.workers == 4 and unlimited.limits_store is None
    alone = load(tmp_path, "[limits]\nmax_concurrent = 3\n")
    assert alone.server.workers == 1 and alone.limits_store is None


@pytest.mark.parametrize("limits", [
    "[limits]\nmodels = ['claude-*']\n",
    "[[users]]\nname = 'ci'\nlimits = { routes = ['a'] }\n",
])
def test_several_workers_with_only_allow_lists_need_no_store(tmp_path, limits):
    # An allow-list of models or routes counts nothing: every worker applies the same
    # list, so N workers enforce exactly what one does, and there is nothing to share.
    cfg = load(tmp_path, "[server]\nworkers = 4\n" + limits)
    assert cfg.server.workers == 4 and cfg.limits_store is None


# --- [limits] store --------------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "redis://10.0.0.5:6379/0",
    "redis://redis.internal",
    "redis://limits@10.0.0.5:6379/2",  # an ACL user, its password apart
    "rediss://redis.internal:6380/0?ssl_ca_certs=/etc/ssl/ca.pem",
    "unix:///run/redis/redis.sock",
    "unix:///run/redis/redis.sock?db=3",
    "redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster/0",
    "rediss+sentinel://10.0.0.1:26379/mymaster",
])
def test_store_takes_redis_rediss_unix_and_sentinel_urls(tmp_path, url):
    cfg = load(tmp_path, f"[limits]\nstore = '{url}'\n")
    assert cfg.limits_store.url == url
    assert (cfg.limits_store.password, cfg.limits_store.on_failure, cfg.limits_store.reservation_seconds) == (
        None, "open", 30)


@pytest.mark.parametrize("url", [
    "http://10.0.0.5:6379/0",
    "https://redis.internal",
    "memcached://10.0.0.5:11211",
    "10.0.0.5:6379",
    "redis://",
    "",
])
def test_store_refuses_what_is_not_a_redis_url_and_says_what_is(tmp_path, url):
    message = refused(tmp_path, f"[limits]\nstore = '{url}'\n")
    assert "limits.store: expected redis://HOST[:PORT][/DB]" in message
    assert "rediss://" in message and "unix:///PATH" in message and "redis+sentinel://" in message


@pytest.mark.parametrize(("url", "said"), [
    ("redis://10.0.0.5:6379/abc", "the path is a database number, such as /0, not '/abc'"),
    ("redis://10.0.0.5:6379/0/1", "the path is a database number"),
    ("redis://10.0.0.5:99999/0", "'10.0.0.5:99999' is not HOST[:PORT] with a port of 1 to 65535"),
    ("rediss://redis.internal/0?ssl_ca_cert=/x", "unknown URL option 'ssl_ca_cert'; rediss:// takes ssl_ca_certs"),
    ("rediss://redis.internal/0?ssl_cert_reqs=optional", "ssl_cert_reqs is 'required' (the default) or 'none'"),
    ("redis://redis.internal/0?timeout=5", "unknown URL option 'timeout'; redis:// takes none"),
    ("unix:///run/redis.sock?db=x", "db is a database number, not 'x'"),
    ("unix://redis.sock", "expected unix:///ABSOLUTE/PATH/redis.sock"),
    ("redis+sentinel://10.0.0.1:26379/", "a Sentinel URL names the master's service"),
    ("redis+sentinel://10.0.0.1:26379,10.0.0.2:0/mymaster", "'10.0.0.2:0' is not HOST[:PORT]"),
])
def test_store_urls_the_gateway_would_trip_on_are_refused_by_the_config(tmp_path, url, said):
    assert said in refused(tmp_path, f"[limits]\nstore = '{url}'\n")


def test_store_must_be_a_string(tmp_path):
    assert "limits.store: expected a string" in refused(tmp_path, "[limits]\nstore = 6379\n")


@pytest.mark.parametrize("url", [
    "redis://:hunter2-secret@10.0.0.5:6379/0",
    "redis://limits:hunter2-secret@10.0.0.5:6379/0",
    "rediss://default:hunter2-secret@redis.internal:6380",
    "redis://10.0.0.5:6379/0?password=hunter2-secret",
])
def test_a_password_in_the_store_url_is_refused_with_where_it_goes_instead(tmp_path, url):
    message = refused(tmp_path, f"[limits]\nstore = '{url}'\n")
    assert "limits.store: the URL holds a password" in message
    assert '[limits] password = { env = "VAR" }' in message and '{ file = "/path" }' in message
    # The error is printed and logged: it names where the secret is, never the secret.
    assert "hunter2-secret" not in message


# --- [limits] password -----------------------------------------------------------------


def test_password_comes_from_the_environment_or_a_file_and_is_never_shown(tmp_path):
    from_env = load(tmp_path, f"[limits]\nstore = '{STORE}'\npassword = {{ env = 'AIOGW_REDIS_PASSWORD' }}\n",
                    env={"AIOGW_REDIS_PASSWORD": "pw-from-env"})
    assert from_env.limits_store.password == "pw-from-env"
    assert "pw-from-env" not in repr(from_env)
    secret = tmp_path / "redis.password"
    secret.write_text("pw-from-file\n")
    from_file = load(tmp_path, f"[limits]\nstore = '{STORE}'\npassword = {{ file = '{secret}' }}\n")
    assert from_file.limits_store.password == "pw-from-file"  # its line end is not part of it
    assert "pw-from-file" not in repr(from_file)


@pytest.mark.parametrize(("value", "message"), [
    ("{ env = 'AIOGW_UNSET_REDIS_PASSWORD' }", "limits.password: env AIOGW_UNSET_REDIS_PASSWORD is empty or not set"),
    ("{ file = '/nonexistent/redis.password' }", "limits.password: cannot read credential file"),
    ("'inline-secret'", "limits.password: expected { env"),
    ("'client'", 'limits.password: expected { env = "VAR" } or { file = "/path" }'),
    ("{ env = 'A', file = '/b' }", "limits.password: expected { env"),
])
def test_password_refuses_an_inline_an_unset_or_an_unreadable_secret(tmp_path, value, message):
    text = f"[limits]\nstore = '{STORE}'\npassword = {value}\n"
    got = refused(tmp_path, text, env={"AIOGW_REDIS_PASSWORD": "x"})
    assert message in got and "inline-secret" not in got


def test_an_empty_password_file_is_refused(tmp_path):
    empty = tmp_path / "empty"
    empty.write_text("\n")
    message = refused(tmp_path, f"[limits]\nstore = '{STORE}'\npassword = {{ file = '{empty}' }}\n")
    assert f"limits.password: file {empty} is empty or not set" in message


# --- on_store_failure, reservation_seconds ----------------------------------------------


def test_on_store_failure_is_open_or_closed(tmp_path):
    assert load(tmp_path, f"[limits]\nstore = '{STORE}'\n").limits_store.on_failure == "open"
    for value in ("open", "closed"):
        cfg = load(tmp_path, f"[limits]\nstore = '{STORE}'\non_store_failure = '{value}'\n")
        assert cfg.limits_store.on_failure == value
    for value in ("'fail'", "'Closed'", "''"):
        message = refused(tmp_path, f"[limits]\nstore = '{STORE}'\non_store_failure = {value}\n")
        assert 'limits.on_store_failure: expected "open" or "closed"' in message
    assert "limits.on_store_failure: expected a string" in refused(
        tmp_path, f"[limits]\nstore = '{STORE}'\non_store_failure = true\n")


def test_reservation_seconds_is_five_to_an_hour(tmp_path):
    assert load(tmp_path, f"[limits]\nstore = '{STORE}'\n").limits_store.reservation_seconds == 30
    for value in (5, 3600):
        cfg = load(tmp_path, f"[limits]\nstore = '{STORE}'\nreservation_seconds = {value}\n")
        assert cfg.limits_store.reservation_seconds == value
    for value in ("4", "3601", "0", "-5"):
        message = refused(tmp_path, f"[limits]\nstore = '{STORE}'\nreservation_seconds = {value}\n")
        assert "limits.reservation_seconds: expected a whole number from 5 to 3600" in message
    for value in ("'30'", "7.5"):
        message = refused(tmp_path, f"[limits]\nstore = '{STORE}'\nreservation_seconds = {value}\n")
        assert "limits.reservation_seconds: expected a whole number" in message


def test_leases_are_on_unless_turned_off(tmp_path):
    assert load(tmp_path, f"[limits]\nstore = '{STORE}'\n").limits_store.leases is True
    assert load(tmp_path, f"[limits]\nstore = '{STORE}'\nleases = false\n").limits_store.leases is False
    message = refused(tmp_path, f"[limits]\nstore = '{STORE}'\nleases = 'no'\n")
    assert "limits.leases: expected a boolean (true or false), got 'no'" in message


@pytest.mark.parametrize("key", [
    "password = { env = 'AIOGW_REDIS_PASSWORD' }",
    "on_store_failure = 'closed'",
    "reservation_seconds = 10",
    "leases = false",
])
def test_a_store_setting_without_a_store_is_refused(tmp_path, key):
    # Said, not ignored: an operator who set a password believes the limits are shared.
    message = refused(tmp_path, f"[limits]\nrequests_per_minute = 60\n{key}\n", env={"AIOGW_REDIS_PASSWORD": "x"})
    assert f"limits.{key.split()[0]}: needs [limits] store = \"redis://HOST:PORT/DB\"" in message


def test_the_store_is_the_deployment_s_not_a_user_s(tmp_path):
    message = refused(tmp_path, f"[[users]]\nname = 'ci'\nlimits = {{ store = '{STORE}' }}\n")
    assert "users[0].limits.store: unknown key" in message


def test_store_keys_leave_the_limits_as_they_are(tmp_path):
    cfg = load(tmp_path, f"[limits]\nmax_concurrent = 3\nstore = '{STORE}'\non_store_failure = 'closed'\n"
                         "reservation_seconds = 5\n[[users]]\nname = 'ci'\nlimits = { requests_per_minute = 60 }\n")
    assert cfg.limits.max_concurrent == 3 and cfg.limits.requests_per_minute is None
    (user,) = cfg.users
    assert (user.limits.max_concurrent, user.limits.requests_per_minute) == (3, 60)
    assert (cfg.limits_store.on_failure, cfg.limits_store.reservation_seconds) == ("closed", 5)


# --- aiogw check-config ------------------------------------------------------------------


def check_config(path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aiogw", "check-config", str(path)], capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": SOURCE, **(env or {})})


def test_check_config_says_why_several_workers_need_a_store(tmp_path):
    path = write(tmp_path, "[server]\nworkers = 8\n[limits]\ndaily_budget_usd = 5.0\n")
    result = check_config(path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{path}: server.workers: 8 worker processes with limits need a store they share" in result.stderr
    assert "set [limits] store" in result.stderr


def test_check_config_refuses_a_password_in_the_store_url_without_printing_it(tmp_path):
    path = write(tmp_path, "[limits]\nstore = 'redis://:hunter2-secret@10.0.0.5:6379/0'\n")
    result = check_config(path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{path}: limits.store: the URL holds a password" in result.stderr and "{ env" in result.stderr
    assert "hunter2-secret" not in result.stderr + result.stdout


def test_check_config_names_an_unset_store_password_and_passes_once_it_is_set(tmp_path):
    path = write(tmp_path, f"[server]\nworkers = 2\n[limits]\nmax_concurrent = 3\nstore = '{STORE}'\n"
                           "password = { env = 'AIOGW_TEST_REDIS_PASSWORD' }\non_store_failure = 'closed'\n")
    unset = check_config(path)
    assert unset.returncode == 2 and "Traceback" not in unset.stderr
    assert f"{path}: limits.password: env AIOGW_TEST_REDIS_PASSWORD is empty or not set" in unset.stderr
    ok = check_config(path, env={"AIOGW_TEST_REDIS_PASSWORD": "pw-for-check"})
    assert ok.returncode == 0, ok.stderr
    assert f"{path}: ok" in ok.stdout and "pw-for-check" not in ok.stdout + ok.stderr
