"""Values from outside the gateway made safe to keep: valid text, bounded length.

aiohttp decodes header bytes that are not UTF-8 with `surrogateescape`, so a header can
hold lone surrogates that neither SQLite, orjson nor a log line can encode; any header,
session id, model name or path an agent sends may also be megabytes long. What the
gateway keeps of such a value (the audit record, the log line, a metrics label) passes
through `text` first; the audit's own guard (`audit.storable`) uses the same rule.
`visible` is the other half: what the gateway prints of such text (the audit CLI,
`keys list`, `usage`, /metrics, the log) shows control characters as escapes. Plain
string work, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Bounds for what a record keeps of each value: generous for anything a real client
# sends (Claude Code's User-Agent is ~60 characters, a session id 36), small enough that
# a hostile client cannot make one record large.
USER_AGENT = 512
SESSION = 256
MODEL = 256
PATH = 512


def text(value: str | None, limit: int) -> str | None:
    """`value` as text that encodes as UTF-8, at most `limit` characters and a marker
    saying how many more there were.

    A lone surrogate that stands for a byte (aiohttp's surrogateescape) is shown as that
    byte's escape (`\\xff`), so a record says what the client sent; bytes that make UTF-8
    together are read as the character they make; any other lone surrogate is shown as
    its own escape (`\\ud800`)."""
    if value is None:
        return None
    if not value.isascii() and not is_utf8(value):
        value = _NO_BYTE.sub(lambda m: f"\\u{ord(m[0]):04x}", value)
        value = value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if len(value) > limit:
        value = f"{value[:limit]}…[{len(value) - limit} more characters]"
    return value


# Surrogates that stand for no byte: surrogateescape makes only U+DC80-U+DCFF.
_NO_BYTE = re.compile("[\ud800-\udc7f\udd00-\udfff]")


def is_utf8(value: str) -> bool:
    """True when `value` encodes as UTF-8 (it holds no lone surrogate)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def bad_header(items: Iterable[tuple[str, str]]) -> str | None:
    """The name of the first header whose name or value was not valid UTF-8, else None.

    The ASCII test is a C loop over each string: the common case costs ~50 ns a header.
    """
    for name, value in items:
        if not (name.isascii() and value.isascii()) and not (is_utf8(name) and is_utf8(value)):
            return text(name, 64)
    return None


# What a terminal acts on instead of showing: C0 controls (ESC starts the escape
# sequences that retitle a window, clear the screen, hide text or write the clipboard),
# DEL, C1 controls (CSI and OSC as one character), the bidi marks, embeddings, overrides
# and isolates that reorder what follows them ("Trojan Source"), the Unicode line and
# paragraph separators, and lone surrogates (undecodable bytes, which would stop the
# print itself).
_BIDI = "\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}\ud800-\udfff]")
_UNSAFE_IN_LINES = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}\ud800-\udfff]")  # newline and tab stay


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str, lines: bool = False) -> str:
    """`text` safe to print: every control character written as an escape (`\\x1b`,
    `\\u202e`). `lines`: newlines and tabs stay, for a message body shown as it reads."""
    pattern = _UNSAFE_IN_LINES if lines else _UNSAFE
    return pattern.sub(_escape, text) if pattern.search(text) else text


# What a terminal acts on in orjson's output (UTF-8): DEL, C1 controls and the bidi
# characters `visible` escapes; orjson escapes only the C0 controls, as JSON
# requires. Each occurs in JSON only inside a string, where `\uXXXX` is the same
# character: the escaped line parses to the same record.
_UNSAFE_JSON = re.compile(rb"\x7f|\xc2[\x80-\x9f]|\xd8\x9c|\xe2\x80[\x8e\x8f\xa8-\xae]|\xe2\x81[\xa6-\xa9]")


def _json_escape(match: re.Match[bytes]) -> bytes:
    return b"\\u%04x" % ord(match.group().decode())


def json_visible(data: bytes) -> bytes:
    """orjson's output with DEL, C1 and bidi characters as `\\uXXXX` escapes."""
    return _UNSAFE_JSON.sub(_json_escape, data) if _UNSAFE_JSON.search(data) else data
