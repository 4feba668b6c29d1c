"""Request path → (route name, upstream path). Pure string work, no I/O.

The upstream path is appended to the route's base URL by string concatenation, never
resolved as a URL reference, so nothing in it can change the upstream host. It is kept
percent-encoded as the client sent it (Gemini model names carry ':'), but rejected when
decoding it would move it: dot segments, encoded slashes or backslashes, control bytes.
"""

from __future__ import annotations

import fnmatch
import re
from urllib.parse import unquote

from aiogw.errors import BadRequest, NotFound

_FORBIDDEN_ENCODED = ("%2f", "%5c", "%00")


def split(raw_path: str, mount: str) -> tuple[str, str, str]:
    """Split `/<mount>/<route>/<rest>?<query>` into (route, upstream path, query).

    The upstream path is normalised and starts with '/'; it is '/' for the route's
    root. Raises NotFound outside the mount and BadRequest for an unsafe path.
    """
    path, _, query = raw_path.partition("?")
    if mount:
        if not path.startswith(mount) or path[len(mount) : len(mount) + 1] not in ("/", ""):
            raise NotFound(f"no route at {path!r}: gateway routes live under {mount}/<route>/")
        path = path[len(mount) :]
    route, slash, rest = path.lstrip("/").partition("/")
    if not route:
        raise NotFound(f"no route given: use {mount}/<route>/<provider path>")
    return route, normalise(slash + rest), query


def normalise(path: str) -> str:
    """Collapse empty segments and refuse anything that could escape the route."""
    if "\\" in path:
        raise BadRequest("the path may not contain a backslash")
    lowered = path.lower()
    if "%" in lowered and any(bad in lowered for bad in _FORBIDDEN_ENCODED):
        raise BadRequest("the path may not contain an encoded slash, backslash or NUL")
    segments = [s for s in path.split("/") if s]
    for segment in segments:
        decoded = unquote(segment) if "%" in segment else segment
        if decoded in (".", "..") or any(ord(c) < 0x20 or c == "\x7f" for c in decoded):
            raise BadRequest("the path may not contain '.' or '..' segments or control characters")
    return "/" + "/".join(segments)


def decoded(path: str) -> str:
    """The path as the provider reads it, percent-decoded once. Safe to compare only:
    `normalise` already refused what decoding could turn into a slash, a dot segment
    or a control character."""
    return unquote(path) if "%" in path else path


def allow_list(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    """One regex for "METHOD /path" patterns (fnmatch: `*` matches anything, `/`
    included; METHOD `*` is any method but TRACE and CONNECT, which are never
    forwarded); None for no patterns."""
    if not patterns:
        return None
    parts = []
    for pattern in patterns:
        method, _, path = pattern.partition(" ")
        head = "(?!TRACE |CONNECT )[A-Z]+" if method == "*" else re.escape(method)
        parts.append(head + " " + fnmatch.translate(path).removeprefix("(?s:").removesuffix(")\\Z"))
    return re.compile("(?s:" + "|".join(f"(?:{p})" for p in parts) + r")\Z")
