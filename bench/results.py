"""bench/RESULTS.md holds one section per bench command; each command rewrites its own.

A section sits between `<!-- begin NAME -->` and `<!-- end NAME -->`. Writing one keeps
the others as they were, so `make bench` does not wipe the audit storage figures that
`python -m bench.audit_storage` wrote, and the other way round.
"""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
HEAD = """\
# aiogw bench results

It opens with one table, each target's newest figure (hand-written: `summary`); each
section after it is written by the command it names: rerun that command to refresh it.
Figures are ratios taken in the same run unless a section says otherwise. The lab
notes (each target's history, why a miss, what was tried) are in NOTES.md.
"""
ORDER = ("summary", "bench.run", "bench.audit_storage")


def write_section(name: str, text: str, path: Path = RESULTS) -> None:
    sections = _read(path)
    sections[name] = text.strip("\n")
    names = [n for n in ORDER if n in sections] + [n for n in sections if n not in ORDER]
    parts = [HEAD]
    for n in names:
        parts += [f"<!-- begin {n} -->", sections[n], f"<!-- end {n} -->", ""]
    path.write_text("\n".join(parts))


def _read(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    text = path.read_text()
    out = {}
    rest = text
    while (i := rest.find("<!-- begin ")) >= 0:
        j = rest.find(" -->", i)
        name = rest[i + len("<!-- begin "): j]
        end = rest.find(f"<!-- end {name} -->", j)
        if end < 0:
            break
        out[name] = rest[j + len(" -->"): end].strip("\n")
        rest = rest[end:]
    return out
