"""Compiling patterns into Hyperscan databases, and finding the one that will not compile.

Most patterns are compiled with start-of-match (HS_FLAG_SOM_LEFTMOST); those in
`no_som` without it, their starts found afterwards by a bounded re-match (see
`aiogw.guards.engine`). `compile_databases` builds several databases side by side; one
that fails is rebuilt pattern by pattern, which either moves a pattern that only
compiles without start-of-match into `no_som` or raises `GuardsUnavailable` naming it.
"""

from __future__ import annotations

import ctypes
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from aiogw.guards.catalog import Pattern
from aiogw.guards.rules import Rule

try:
    import hyperscan as hs
except ImportError as exc:  # pragma: no cover - exercised by monkeypatching in tests
    hs = None
    _IMPORT_ERROR: Exception | None = exc
else:
    _IMPORT_ERROR = None

_FAILED = object()

# What a database is compiled for: scanning whole texts, or a stream piece by piece.
BLOCK, STREAM = "block", "stream"


class GuardsUnavailable(RuntimeError):
    """Hyperscan is missing or a pattern cannot be compiled: guards cannot run."""


def require_hyperscan() -> None:
    """Raise `GuardsUnavailable` when the hyperscan module cannot be imported."""
    if hs is None:
        raise GuardsUnavailable(
            f"guards need the hyperscan module, which cannot be imported ({_IMPORT_ERROR}); "
            f"install it (pip install hyperscan) or set guards.enabled = false"
        )


def _mode(kind: str) -> int:
    return hs.HS_MODE_BLOCK if kind == BLOCK else hs.HS_MODE_STREAM | hs.HS_MODE_SOM_HORIZON_LARGE


def _flag_bits(p: Pattern, som: bool) -> int:
    bits = hs.HS_FLAG_SOM_LEFTMOST if som else 0
    for name in p.flags:
        bits |= {
            "caseless": hs.HS_FLAG_CASELESS,
            "dotall": hs.HS_FLAG_DOTALL,
            "multiline": hs.HS_FLAG_MULTILINE,
            "utf8": hs.HS_FLAG_UTF8,
            "ucp": hs.HS_FLAG_UCP,
        }[name]
    return bits


def _release_freed() -> None:
    """Give the OS back what the compiles freed. glibc keeps the memory a thread frees in
    that thread's arena, resident; Hyperscan's compiler frees ~16 MB of working space in
    the compile threads' arenas (the default catalog: RSS 68 -> 52 MB after start-up),
    which the gateway would otherwise carry for its whole life. Not glibc: nothing."""
    trim = getattr(_LIBC, "malloc_trim", None)
    if trim is not None:
        trim(0)


try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL(None)  # the running process's C library
except OSError:  # pragma: no cover - a platform without dlopen(NULL)
    _LIBC = None


def _compile(patterns: Sequence[Pattern], ids: Sequence[int], soms: Sequence[bool], mode: int):
    db = hs.Database(mode=mode)
    db.compile(
        expressions=[(p.prefilter or p.expression).encode() for p in patterns],
        ids=list(ids),
        elements=len(patterns),
        flags=[_flag_bits(p, s) for p, s in zip(patterns, soms, strict=True)],
    )
    return db


def compile_problem(p: Pattern) -> str | None:
    """Why `p` cannot be compiled on its own, or None. A pattern with `max_length` must
    compile without start-of-match (its prefilter too) and parse as a Python regex; any
    other must compile, with start-of-match or failing that as a Python regex too."""
    if hs is None:
        return None
    try:
        if p.max_length is not None:
            _compile([replace(p, prefilter=None)], [0], [False], hs.HS_MODE_BLOCK)
            _compile([p], [0], [False], hs.HS_MODE_BLOCK)
            python_regex(p)
            return None
        try:
            _compile([p], [0], [True], hs.HS_MODE_BLOCK)
            return None
        except hs.error:
            _compile([p], [0], [False], hs.HS_MODE_BLOCK)
            python_regex(p)
            return None
    except hs.error as exc:
        return str(exc)
    except re.error as exc:
        return f"Python's re, which confirms its matches, cannot parse it ({exc})"


def python_regex(p: Pattern) -> re.Pattern[str]:
    """`p` anchored at the end, for finding the start of a match Hyperscan reported
    without one. Hyperscan's \\x{…} code points are spelled the Python way."""
    flags = 0 if "ucp" in p.flags else re.ASCII
    flags |= re.IGNORECASE if "caseless" in p.flags else 0
    flags |= re.DOTALL if "dotall" in p.flags else 0
    flags |= re.MULTILINE if "multiline" in p.flags else 0
    expression = re.sub(r"\\x\{([0-9A-Fa-f]{1,6})\}", lambda m: f"\\U{int(m.group(1), 16):08x}", p.expression)
    return re.compile(f"(?:{expression})\\Z", flags)


def compile_databases(
    patterns: Sequence[Pattern], rules: list[Rule], no_som: set[int], jobs: dict[tuple[tuple[int, ...], str], object | None]
) -> None:
    """Compile a database for each key (pattern indices, BLOCK or STREAM) of `jobs` into
    it, side by side (Hyperscan releases the GIL while it compiles); one that fails is
    rebuilt alone, finding the pattern at fault. A pattern that compiles only without
    start-of-match is added to `no_som`, its rule given a re-match; any other fault
    raises `GuardsUnavailable`."""

    def attempt(key: tuple[tuple[int, ...], str]):
        ids, kind = key
        if not ids:
            return None
        try:
            return _compile([patterns[i] for i in ids], ids, [i not in no_som for i in ids], _mode(kind))
        except hs.error:
            return _FAILED

    keys = list(jobs)
    with ThreadPoolExecutor(max_workers=min(4, len(keys)) or 1, thread_name_prefix="hs-compile") as pool:
        results = list(pool.map(attempt, keys))
    for key, db in zip(keys, results, strict=True):
        jobs[key] = _build(patterns, rules, no_som, key[0], _mode(key[1])) if db is _FAILED else db
    _release_freed()


def _build(patterns: Sequence[Pattern], rules: list[Rule], no_som: set[int], ids: tuple[int, ...], mode: int):
    chosen = [patterns[i] for i in ids]
    try:
        return _compile(chosen, ids, [i not in no_som for i in ids], mode)
    except hs.error:
        pass
    # Find the culprits one by one: those that only compile without start-of-match
    # get their starts from a bounded re-match; the others stop the engine.
    for i, p in zip(ids, chosen, strict=True):
        if i in no_som:
            try:
                _compile([p], [i], [False], mode)
            except hs.error as exc:
                raise GuardsUnavailable(f"guard pattern {p.id!r} does not compile: {exc}") from None
            continue
        try:
            _compile([p], [i], [True], mode)
            continue
        except hs.error as exc:
            som_error = str(exc)
        try:
            _compile([p], [i], [False], mode)
        except hs.error as exc:
            raise GuardsUnavailable(f"guard pattern {p.id!r} does not compile: {exc}") from None
        try:
            rules[i].rematch = python_regex(p)
        except re.error as exc:
            raise GuardsUnavailable(
                f"guard pattern {p.id!r} needs start-of-match tracking, which Hyperscan "
                f"refuses ({som_error}), and Python's re cannot parse it ({exc})"
            ) from None
        no_som.add(i)
    try:
        return _compile(chosen, ids, [i not in no_som for i in ids], mode)
    except hs.error as exc:
        raise GuardsUnavailable(f"the guard patterns for a database do not compile together: {exc}") from None
