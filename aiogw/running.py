"""Which state database each running gateway uses, so a command can tell its operator
that it reads another one.

`aiogw keys create` without `--config` writes its key to the built-in config's
database; the gateway, started with a config file, never sees it, and every request
with that key is a 401. To catch that, a running gateway announces itself: one small
JSON file per process, `<pid>.json` = {pid, started, state_path, state_url, config}, in a
runtime
folder of its user, removed when it stops. The key, audit and usage commands read the
live entries and warn when gateways run and none of them uses the database they chose.

The folder is `$XDG_RUNTIME_DIR/aiogw` when the caller passes that directory (the
environment is read in `aiogw.config` alone), else `/tmp/aiogw-<uid>`. An entry is
stale when its process is gone (a killed gateway leaves its file) or when its pid now
belongs to a process started at another time: both are ignored, and a gone one is
removed. Announcing is best effort: a folder that cannot be made or that another user
owns costs the warning, never the gateway's start.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import orjson

log = logging.getLogger("aiogw")

# Entries are a few hundred bytes; a file past this is not one of ours.
_MAX_ENTRY = 64 * 1024


@dataclass(frozen=True, slots=True)
class Gateway:
    """A running gateway, as it announced itself."""

    pid: int
    state_path: Path
    config: str  # the config file's absolute path, or "<defaults>"
    cwd: str  # where it was started: the built-in config's state path is relative to it
    state_url: str | None = None  # PostgreSQL's URL, without its password; None: SQLite at state_path

    @property
    def database(self) -> str:
        return self.state_url or str(self.state_path)


def folder(runtime_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where gateways announce themselves: `<runtime_dir>/aiogw` (runtime_dir is
    $XDG_RUNTIME_DIR, private to its user), else `/tmp/aiogw-<uid>`."""
    if runtime_dir:
        return Path(runtime_dir) / "aiogw"
    return Path("/tmp") / f"aiogw-{os.getuid()}"


class Announcement:
    """A gateway's entry; `close()` removes it (at exit; more calls do nothing)."""

    __slots__ = ("path",)

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def close(self) -> None:
        path, self.path = self.path, None
        if path is not None:
            with contextlib.suppress(OSError):
                path.unlink()

    def __enter__(self) -> Announcement:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def announce(state_path: Path, config_source: str, runtime_dir: str | os.PathLike[str] | None = None,
             *, where: Path | None = None, state_url: str | None = None) -> Announcement:
    """Say that this process serves with `state_path`, or the PostgreSQL database at
    `state_url` (without its password), its config being `config_source`.
    `where`: the folder itself, for tests; by default `folder(runtime_dir)`. Never raises
    on a file system error: the gateway starts without its entry, and a warning says why."""
    place = where if where is not None else folder(runtime_dir)
    pid = os.getpid()
    entry = {
        "pid": pid,
        "started": _started(pid),
        "state_path": str(Path(state_path).absolute()),
        "state_url": state_url,
        "config": config_source if config_source.startswith("<") else os.path.abspath(config_source),
        "cwd": os.getcwd(),
    }
    try:
        _own_folder(place)
        path = place / f"{pid}.json"
        partial = place / f".{pid}.json.partial"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(orjson.dumps(entry))
        os.replace(partial, path)  # a reader never sees half an entry
    except OSError as exc:
        log.warning("cannot announce this gateway in %s (the key and audit commands cannot tell whether they use "
                    "its database): %s", place, exc.strerror or exc)
        return Announcement(None)
    return Announcement(path)


def _own_folder(place: Path) -> None:
    """Make the folder, or accept it only when it is this user's alone: in a shared /tmp
    another user could have made it first, to read or fake what gateways announce."""
    with contextlib.suppress(FileExistsError):
        place.mkdir(mode=0o700, parents=False)
    if not _ours(place):
        raise OSError(f"{place} is not a folder of this user's alone")


def _ours(place: Path) -> bool:
    try:
        info = os.lstat(place)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o022


def running(runtime_dir: str | os.PathLike[str] | None = None, *, where: Path | None = None) -> list[Gateway]:
    """The gateways that announced themselves and still run, by pid."""
    place = where if where is not None else folder(runtime_dir)
    if not _ours(place):  # entries another user could write are no evidence
        return []
    try:
        names = sorted(os.listdir(place))
    except OSError:
        return []
    found = []
    for name in names:
        if not name.endswith(".json") or name.startswith("."):
            continue
        path = place / name
        entry = _read(path)
        if entry is None:
            continue
        pid = entry["pid"]
        alive = _alive(pid)
        if alive is None:  # gone: its gateway was killed before it could remove the entry
            with contextlib.suppress(OSError):
                path.unlink()
            continue
        announced, now = entry.get("started"), _started(pid)
        if not alive or (announced and now and announced != now):
            continue  # the pid was reused by another process
        url = entry.get("state_url")
        found.append(Gateway(pid, Path(entry["state_path"]), str(entry.get("config") or "?"), str(entry.get("cwd", "?")),
                             url if isinstance(url, str) else None))
    return found


def _read(path: Path) -> dict | None:
    try:
        with open(path, "rb", opener=lambda p, flags: os.open(p, flags | os.O_NOFOLLOW)) as f:
            data = f.read(_MAX_ENTRY + 1)
        entry = orjson.loads(data)
    except (OSError, orjson.JSONDecodeError):
        return None
    if (
        len(data) > _MAX_ENTRY
        or not isinstance(entry, dict)
        or not isinstance(entry.get("pid"), int)
        or not isinstance(entry.get("state_path"), str)
        or entry["pid"] <= 0
    ):
        return None
    return entry


def _alive(pid: int) -> bool | None:
    """True: it runs; None: no such process; False: cannot tell."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # another user's process: it runs
        return True
    except OSError:
        return False
    return True


def _started(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), which tells a
    reused pid from the announcing process; None where /proc does not say."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2 :].split()  # after the command name, which may hold spaces
    return fields[19].decode() if len(fields) > 19 else None


def same_database(a: Path, b: Path) -> bool:
    """Whether two state paths name one database (a symlink, a relative path)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(os.path.abspath(a)) == Path(os.path.abspath(b))


def warning(state_path: Path, runtime_dir: str | os.PathLike[str] | None = None, *,
            where: Path | None = None, state_url: str | None = None) -> str | None:
    """The warning for a command about to use `state_path` (or the PostgreSQL database
    at `state_url`, without its password), when gateways run and none of them uses it;
    None when all is well (or none runs)."""
    gateways = running(runtime_dir, where=where)
    if not gateways or any(
        g.state_url == state_url if state_url is not None or g.state_url is not None
        else same_database(g.state_path, state_path)
        for g in gateways
    ):
        return None
    lines = [f"aiogw: warning: this command uses the state database {state_url or state_path}, which no running "
             "gateway uses:"]
    for g in gateways:
        lines.append(f"  the gateway of pid {g.pid} uses {g.database}, config {_config_text(g)}")
    files = sorted({g.config for g in gateways if not g.config.startswith("<")})
    if len(files) == 1:
        lines.append(f"  to use its database: --config {files[0]}, or export AIOGW_CONFIG={files[0]}")
    elif files:
        lines.append("  to use one of theirs: --config FILE, or export AIOGW_CONFIG=FILE, with that gateway's config")
    if len(files) < len({(g.config, g.cwd) for g in gateways}):
        lines.append("  a gateway on the built-in config: run this command in the folder it was started in, "
                     "without --config and with AIOGW_CONFIG unset")
    return "\n".join(lines)


def _config_text(g: Gateway) -> str:
    return g.config if not g.config.startswith("<") else f"{g.config} (started in {g.cwd})"
