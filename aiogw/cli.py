"""The `aiogw` command: serve, check-config, keys, audit, usage, migrate, state copy, demo.

`--config` falls back to the file `AIOGW_CONFIG` names (read in `aiogw.config`). The
key, audit and usage commands warn on stderr when gateways run and none of them uses
the database the command chose (`aiogw.running`)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import sqlite3
import sys
import time

from aiogw import __version__, cli_state, keys, running, state_copy
from aiogw import config as config_mod
from aiogw.audit import cli as audit_cli
from aiogw.exchange import OUTCOMES
from aiogw.limits import report as usage_report
from aiogw.store import make_store
from aiogw.store.base import SCHEMA_VERSION, SchemaError, StateUnavailable
from aiogw.untrusted import visible


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aiogw", description="A transparent, governed LLM gateway.")
    parser.add_argument("--version", action="version", version=f"aiogw {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "serve",
        help="run the gateway",
        description="Run the gateway. SIGHUP reloads the config file; SIGTERM or SIGINT drains (open exchanges get "
        "[server] drain_seconds to finish; a second signal cuts them at once) and exits 0. Provider keys come from "
        "the environment variables the routes name. Under systemd it speaks the notify protocol (NOTIFY_SOCKET).",
    )
    p.add_argument("--config", help=f"TOML config file (default: ${config_mod.CONFIG_ENV}, else built-in routes to the "
                   "real providers)")
    p.add_argument("--host", help="listen address (overrides [server] host)")
    p.add_argument("--port", type=int, help="listen port (overrides [server] port)")
    p.add_argument("--workers", type=_workers, help="worker processes on the one port, each with its own event loop, "
                   "under a supervisor that takes the signals and speaks to systemd (overrides [server] workers; "
                   "1, the default, is one process and no supervisor)")
    p.set_defaults(run=_serve)

    p = sub.add_parser("check-config", help="validate a config file without serving")
    p.add_argument("file", nargs="?", help=f"the config file (or --config, or ${config_mod.CONFIG_ENV})")
    p.add_argument("--config", help="the config file, as the other commands take it")
    p.add_argument("--strict", action="store_true",
                   help="fail (exit 1) when a route's provider key is not set, as well as on errors")
    p.set_defaults(run=_check_config)

    p = sub.add_parser("keys", help="manage gateway keys")
    keys_sub = p.add_subparsers(dest="keys_command", required=True)
    k = keys_sub.add_parser("create", help="make a key for USER; prints the key alone")
    k.add_argument("user")
    k.set_defaults(run=_keys_create)
    k = keys_sub.add_parser("list", help="list keys (never the keys themselves)")
    k.set_defaults(run=_keys_list)
    k = keys_sub.add_parser("revoke", help="revoke a key by its id, or every key of a user (--user)")
    k.add_argument("key_id", nargs="?")
    k.add_argument("--user", help="revoke every active key of this user (all gateways on the database refuse them)")
    k.set_defaults(run=_keys_revoke)
    for k in keys_sub.choices.values():
        k.add_argument("--config", help=f"TOML config file (for the state path and user list; default: "
                       f"${config_mod.CONFIG_ENV})")

    p = sub.add_parser("audit", help="read the audit trail")
    audit_sub = p.add_subparsers(dest="audit_command", required=True)
    a = audit_sub.add_parser("list", help="exchanges, newest first")
    _filter_args(a)
    a.add_argument("--limit", type=_positive, default=50, help="at most this many, the newest (default 50)")
    a.set_defaults(run=audit_cli.list_cmd)
    a = audit_sub.add_parser("show", help="one exchange in full")
    a.add_argument("id")
    a.add_argument("--json", action="store_true", help="the whole record as JSON")
    a.set_defaults(run=audit_cli.show_cmd)
    a = audit_sub.add_parser(
        "conversation", help="an agent session in order (a conversation id or any exchange id in it)"
    )
    a.add_argument("id")
    a.add_argument("--full", action="store_true", help="every exchange in full, not a table")
    a.set_defaults(run=audit_cli.conversation_cmd)
    a = audit_sub.add_parser("export", help="JSON lines with full payloads, oldest first")
    _filter_args(a)
    a.set_defaults(run=audit_cli.export_cmd)
    a = audit_sub.add_parser("prune", help="delete exchanges before a date, and content no longer used")
    a.add_argument(
        "--before",
        required=True,
        help="a date (2026-11-01), a time (2026-11-01T12:00), both UTC unless they carry an offset, an age "
        "(30d, 12h; units s, m for minutes, h, d, w), or `now` to delete every record",
    )
    a.add_argument("--dry-run", action="store_true", help="count what would be deleted, delete nothing")
    a.set_defaults(run=audit_cli.prune_cmd)
    for a in audit_sub.choices.values():
        a.add_argument("--config", help=f"TOML config file (for the state path; default: ${config_mod.CONFIG_ENV})")

    usage_report.add_parser(sub)

    p = sub.add_parser("migrate", help="bring the state database's schema up to this aiogw (SQLite or PostgreSQL)")
    p.add_argument("--config", help=f"TOML config file (for [state]; default: ${config_mod.CONFIG_ENV})")
    p.set_defaults(run=_migrate)

    state_copy.add_parser(sub)

    p = sub.add_parser("demo", help="a tour of a few seconds: a fake provider, the gateway and an agent session, offline")
    p.add_argument("--keep", action="store_true", help="keep the temporary state directory and print its path")
    p.set_defaults(run=_demo)

    args = parser.parse_args(argv)
    if getattr(args, "config", False) is None:
        args.config = config_mod.config_path_from_env()
    # What aiogw creates (the state database, its WAL, the audit spill file) holds audit
    # payloads and key hashes: readable by its owner alone, as the systemd unit's UMask.
    os.umask(os.umask(0o077) | 0o077)
    try:
        try:
            return args.run(args)
        finally:
            if args.command in _STATE_COMMANDS:
                _warn_if_not_running(args)
    except sqlite3.DatabaseError as exc:
        if isinstance(exc, (sqlite3.ProgrammingError, sqlite3.IntegrityError)):
            raise  # a bug of ours: its traceback is what helps
        # Locked, full disk: the error says it. A file that is no database: the path is wrong.
        wrong_file = getattr(exc, "sqlite_errorname", "") in ("SQLITE_NOTADB", "SQLITE_CANTOPEN", "SQLITE_CORRUPT")
        hint = (
            "; check [state] path in the config (an SQLite database aiogw made, or a path where it may make one)"
            if wrong_file
            else ""
        )
        print(f"aiogw: the state database cannot be used: {exc}{hint}", file=sys.stderr)
        return 2
    except config_mod.ConfigError as exc:
        print(f"aiogw: config error: {exc}", file=sys.stderr)
        return 2
    except (StateUnavailable, SchemaError, FileNotFoundError, ValueError) as exc:
        print(f"aiogw: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `aiogw audit export | head`
        return 0


# The commands that read or write a gateway's state database, so a wrong --config
# (or none) misleads them: they say so when a running gateway uses another.
_STATE_COMMANDS = ("keys", "audit", "usage")


def _warn_if_not_running(args: argparse.Namespace) -> None:
    """After the command (its own output first: a key on stdout, its id on stderr),
    the warning that no running gateway uses its database; silent when the config
    cannot be read (the command said why already)."""
    try:
        cfg = config_mod.load(args.config)
    except config_mod.ConfigError:
        return
    text = running.warning(cfg.state_path, state_url=cli_state.where(cfg) if cfg.state_url else None)
    if text:
        print(text, file=sys.stderr)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 1_000_000_000:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to 1000000000, got {text!r}")
    return value


def _filter_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--user")
    p.add_argument("--since", help="a date, a time (UTC unless it carries an offset) or an age (7d, 12h; "
                   "units s, m for minutes, h, d, w)")
    p.add_argument("--until", help="a date, a time (UTC unless it carries an offset) or an age")
    p.add_argument("--route")
    p.add_argument("--model", help="exact, or a glob such as 'claude-*'")
    p.add_argument("--status", type=int)
    p.add_argument("--outcome", choices=OUTCOMES)
    p.add_argument("--findings", action="store_true", help="only exchanges with guard findings")


def _serve(args: argparse.Namespace) -> int:
    cfg = _serve_overrides(args, config_mod.load(args.config))
    workers = cfg.server.workers  # a file that asks for workers itself is checked by config.load
    if args.workers is not None and (problem := config_mod.unshared(cfg, workers)) is not None:
        print(f"aiogw: {cfg.source}: --workers {workers}: {problem}", file=sys.stderr)
        return 2
    from aiogw import logs

    logs.setup(cfg.log)
    _warn_if_readable(cfg.state_path)
    from aiogw.serving import failure, serve  # imported here: the key commands need no aiohttp

    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; this keeps a broken install usable
        import asyncio

        run = asyncio.run
    else:
        run = uvloop.run
    # Announced for as long as it runs, so a key or audit command given another config
    # can say so (aiogw.running); removed however serving ends.
    announcement = running.announce(cfg.state_path, cfg.source,
                                    state_url=cli_state.where(cfg) if cfg.state_url else None)
    try:
        if workers > 1:
            from aiogw.workers import supervise

            return supervise(cfg, lambda fresh: _serve_overrides(args, fresh))
        run(serve(cfg))
    except Exception as exc:
        text = failure(exc)
        if text is None:
            raise
        print(f"aiogw: {text}", file=sys.stderr)
        return 2
    finally:
        announcement.close()
    return 0


def _serve_overrides(args: argparse.Namespace, cfg: config_mod.Config) -> config_mod.Config:
    """The config with `serve`'s options over the file's [server] (at start, and on the
    supervisor's reload, to say what a restart would change)."""
    if args.host is None and args.port is None and args.workers is None:
        return cfg
    server = dataclasses.replace(
        cfg.server,
        host=args.host or cfg.server.host,
        port=cfg.server.port if args.port is None else args.port,
        workers=cfg.server.workers if args.workers is None else args.workers,
    )
    return dataclasses.replace(cfg, server=server)


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError(f"expected 1 to 64 worker processes, got {text!r} (about one per core)")
    return value


def _warn_if_readable(path) -> None:
    """A state database others may read, made before aiogw restricted its files: say so."""
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return
    if mode & 0o044:
        logging.getLogger("aiogw").warning(
            "the state database %s can be read by other users (mode %o) and holds the audit trail; "
            "restrict it: chmod 600 %s*",
            path, mode, path,
        )


def _demo(args: argparse.Namespace) -> int:
    from aiogw import demo  # imported here: it needs the SDKs of the dev extra

    return demo.run(keep=args.keep)


def _check_config(args: argparse.Namespace) -> int:
    """Exit 0 when the file can be served; a route without its provider key can be
    served (its requests fail) and is warned of, or, with --strict, fails the check."""
    path = args.file or args.config
    if path is None:
        print(f"aiogw: check-config needs a file: aiogw check-config FILE (or --config FILE, or "
              f"${config_mod.CONFIG_ENV})", file=sys.stderr)
        return 2
    cfg = config_mod.load(path)
    from aiogw.pipeline import compile_guards

    guards = compile_guards(cfg)  # compiles the catalog and the config's own patterns
    if guards is not None:
        print(f"guards: {len(guards.request.engine.patterns)} patterns compiled")
    unset = []
    for route in cfg.routes:
        cred = route.credential
        state = (
            "client key passed through"
            if cred.source == "client"
            else (f"{cred.source} {cred.name}: " + ("set" if cred.secret else "NOT SET"))
        )
        print(f"route {route.name}: {route.dialect} -> {route.upstream} ({state})")
        if cred.source != "client" and not cred.secret:
            unset.append(f"route {route.name}: " + (
                f"the provider key variable {cred.name} is not set"
                if cred.source == "env"
                else f"the provider key file {cred.name} is empty"
            ) + " (its requests would fail)")
    for problem in unset:
        print(f"aiogw: {'error' if args.strict else 'warning'}: {cfg.source}: {problem}", file=sys.stderr)
    if unset and args.strict:
        have = "has" if len(unset) == 1 else "have"
        print(f"aiogw: {cfg.source}: {len(unset)} of {len(cfg.routes)} routes {have} no provider key "
              "(check-config --strict)", file=sys.stderr)
        return 1
    store = f", limits in {cfg.limits_store.url}" if cfg.limits_store is not None else ""
    print(f"{cfg.source}: ok, {len(cfg.routes)} routes, {len(cfg.users)} users, state {cli_state.where(cfg)}{store}")
    return 0


def _keys_create(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.config)
    users = cfg.user_names()
    if users and args.user not in users:
        print(
            f"aiogw: no user {visible(repr(args.user))} in {cfg.source}; add a [[users]] entry or use one of: "
            f"{visible(', '.join(sorted(users)))}",
            file=sys.stderr,
        )
        return 2
    record, key, digest = keys.new_key(args.user)
    cli_state.run(cfg, lambda store: store.create_key(record, digest), create=True)
    print(f"created {record.id} for {visible(record.user)} in {cli_state.where(cfg)}", file=sys.stderr)
    print(key)
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.config)
    made = cfg.state_url is not None or cfg.state_path.exists()  # listing makes no database
    rows = cli_state.run(cfg, lambda store: store.list_keys()) if made else []
    print(f"state: {cli_state.where(cfg)}", file=sys.stderr)
    if not rows:
        print("no keys yet: create one with `aiogw keys create USER`")
        return 0
    print(f"{'ID':<18} {'USER':<24} {'CREATED (UTC)':<20} STATUS")
    users = cfg.user_names()
    for r in rows:
        status = "revoked " + _utc(r.revoked_at) if r.revoked_at else "active"
        if not r.revoked_at and users and r.user not in users:
            status = "refused: user not in the config"  # its requests get a 401 saying so
        print(f"{visible(r.id):<18} {visible(r.user):<24} {_utc(r.created_at):<20} {status}")
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    if (args.key_id is None) == (args.user is None):
        print("aiogw: name a key id, or --user NAME for every key of a user (not both)", file=sys.stderr)
        return 2
    cfg = config_mod.load(args.config)
    if args.user is not None:
        return _revoke_user(cfg, args.user)
    if not cli_state.run(cfg, lambda store: store.revoke_key(args.key_id, time.time()), create=True):
        print(f"aiogw: no active key {visible(repr(args.key_id))}; see `aiogw keys list`", file=sys.stderr)
        return 1
    print(f"revoked {visible(args.key_id)}")
    return 0


def _revoke_user(cfg: config_mod.Config, user: str) -> int:
    revoked = cli_state.run(cfg, lambda store: keys.revoke_user(store, user, time.time()), create=True)
    if not revoked:
        print(f"aiogw: user {visible(repr(user))} has no active key; see `aiogw keys list`", file=sys.stderr)
        return 1
    print(f"revoked {len(revoked)} key{'s' * (len(revoked) != 1)} of {visible(user)}: {', '.join(revoked)}")
    return 0


def _migrate(args: argparse.Namespace) -> int:
    """The one command that changes a schema: a gateway refuses any but its own."""
    cfg = config_mod.load(args.config)
    print(f"state: {cli_state.where(cfg)}", file=sys.stderr)
    with cli_state.quiet_driver():
        steps = asyncio.run(_migrate_store(cfg))
    for step in steps:
        print(step)
    if not steps:
        print(f"the schema is up to date (version {SCHEMA_VERSION})")
    return 0


async def _migrate_store(cfg: config_mod.Config) -> list[str]:
    store = make_store(cfg.state_path, cfg.state_url, cfg.state_password)
    await store.connect()  # not open(): that refuses the schemas this command is for
    try:
        with cli_state.said(store):
            return await store.migrate()
    finally:
        await store.close()


def _utc(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))
