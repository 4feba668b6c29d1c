"""Which patterns may scan many texts joined into one buffer (`Engine.scan_many`).

Texts are joined with `SEPARATOR`. A pattern finds in the joined buffer exactly what it
finds in each text alone, up to hits that touch a separator (which the engine scans
again text by text), unless an anchor would see the separator where it saw a text's
edge: `foo$` matches at a text's end alone, not before a separator. Those patterns make
their place scan text by text. A `$` that another branch covers (`(?:\\s|$)`) still
matches before a final newline alone: texts ending in one are scanned alone there.
"""

from __future__ import annotations

import re

from aiogw.guards.catalog import Pattern

# NUL is in no text an agent sends, and the newlines end any match that `\s`, `.` or a
# line anchor would carry on.
SEPARATOR = "\n\x00\n"

# A non-capturing group without nested groups, and the classes that match "\n" for
# sure: a negated class unless something in it may exclude "\n" (conservatively: any
# escape for whitespace, a negated shorthand, a POSIX class), or `\n`/`\s` themselves.
_FLAT_GROUP = re.compile(r"\(\?:([^()]*)\)")


def _takes_newline(alternative: str) -> bool:
    """Whether this branch surely matches "\\n": `\\n`, `\\s`, or a negated class whose
    every member is plainly not a newline (a printable character, a range between two
    letters or two digits, `\\w`, `\\d` or an escaped punctuation mark). Anything else
    (other escapes, wider ranges, POSIX classes) might exclude it: not trusted."""
    if alternative in ("\\n", "\\s", "\n"):
        return True
    if not (alternative.startswith("[^") and alternative.endswith("]")) or len(alternative) < 4:
        return False
    body, i = alternative[2:-1], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            if i + 1 >= len(body) or body[i + 1] not in _PLAIN_ESCAPES:
                return False
            i += 2
            continue
        if ch == "[" or not ch.isprintable():
            return False
        if i + 2 < len(body) and body[i + 1] == "-":  # a range: letters or digits only
            lo, hi = ch, body[i + 2]
            if not ((lo.islower() and hi.islower()) or (lo.isupper() and hi.isupper())
                    or (lo.isdigit() and hi.isdigit())):
                return False
            i += 3
            continue
        i += 1
    return True


# Escapes inside a class that name no whitespace: word and digit classes, punctuation.
_PLAIN_ESCAPES = frozenset("wd.+-/\\[]'\"`*?(){}|^$#&~!@%=:;,<>_")


def _alternatives(group: str) -> list[str]:
    """`a|[x|y]|b` -> ["a", "[x|y]", "b"]: split at each | outside a class."""
    out, cur, i, n = [], "", 0, len(group)
    while i < n:
        ch = group[i]
        if ch == "\\":
            cur += group[i : i + 2]
            i += 2
            continue
        if ch == "[":
            j = i + (2 if group[i + 1 : i + 2] == "^" else 1)
            j += 1 if group[j : j + 1] == "]" else 0
            while j < n and group[j] != "]":
                j += 2 if group[j] == "\\" else 1
            cur += group[i : j + 1]
            i = j + 1
            continue
        if ch == "|":
            out.append(cur)
            cur = ""
        else:
            cur += ch
        i += 1
    out.append(cur)
    return out


def boundary_safe(p: Pattern) -> bool:
    """Whether `p` matches in a text joined to others by `SEPARATOR` exactly where it
    matches in the text alone, up to hits that touch the separator (which are scanned
    again alone): no `\\A`, `\\z` or `\\Z`, and `^`/`$` only as line anchors
    (multiline) or as one branch of a group where another branch takes the "\n"
    the separator puts there: `(?:^|[^\\w])`, `(?:\\s|$)`."""
    multiline = "multiline" in p.flags

    def drop_edges(m: re.Match[str]) -> str:
        alts = _alternatives(m.group(1))
        if any(_takes_newline(a) for a in alts):
            alts = [a for a in alts if a not in ("^", "$")]
        return "(?:" + "|".join(alts) + ")"

    rest = _FLAT_GROUP.sub(drop_edges, p.prefilter or p.expression)
    i, n = 0, len(rest)
    while i < n:
        ch = rest[i]
        if ch == "\\":
            if rest[i + 1 : i + 2] in ("A", "z", "Z"):
                return False
            i += 2
            continue
        if ch == "[":  # skip the class: a leading ^ negates, a leading ] is literal
            i += 2 if rest[i + 1 : i + 2] == "^" else 1
            i += 1 if rest[i : i + 1] == "]" else 0
            while i < n and rest[i] != "]":
                i += 2 if rest[i] == "\\" else 1
        elif ch in "^$" and not multiline:
            return False
        i += 1
    return True


def dollar_edge(p: Pattern) -> bool:
    """Whether `p` has a `$` branch that `boundary_safe` let pass: alone, such a `$`
    also matches before a text's final newline (a shorter candidate the joined buffer
    does not offer), so a text ending in a newline is scanned alone in its place."""
    if "multiline" in p.flags:
        return False
    return any("$" in _alternatives(m.group(1)) for m in _FLAT_GROUP.finditer(p.prefilter or p.expression))
