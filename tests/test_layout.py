"""The architecture, held: which part may import which, module size, unique names.

Every module of the package belongs to one part (`PARTS`, by the longest matching
prefix); `ALLOWED` says which parts each part may import. A new module that belongs
to no part, or an import along an edge the table does not allow, fails here: change
the table on purpose, in review, or change the import. Imports are read from the
source (every `import` and `from … import`, type-only and function-local ones too),
so a forbidden edge fails even where it would not be executed. And, as aiohttp's own
test does, every module is imported alone in a fresh interpreter: no import cycle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "aiogw"

# module prefix -> part. The longest prefix wins.
PARTS = {
    # Bytes and text formats, no feature and no provider.
    "aiogw.sse": "formats",
    "aiogw.jsonstream": "formats",
    "aiogw.encoding": "formats",
    "aiogw.untrusted": "formats",
    "aiogw.jsonout": "formats",
    # Everything that differs between providers, as data in, data out.
    "aiogw.dialects": "dialects",
    # The typed config, read once.
    "aiogw.config": "config",
    "aiogw.config_reader": "config",
    "aiogw.config_routes": "config",
    "aiogw.config_guards": "config",
    "aiogw.client_settings": "config",
    "aiogw.ops_settings": "config",
    "aiogw.limits.settings": "config",  # the [limits] section
    # What the core and the stages share: the exchange, the stage contract, errors.
    "aiogw.exchange": "contract",
    "aiogw.errors": "contract",
    "aiogw.stage": "contract",
    "aiogw.relay": "contract",
    "aiogw.answer": "contract",
    # The core: route, authenticate, read, forward, relay. Knows no feature.
    "aiogw.proxy": "core",
    "aiogw.routing": "core",
    "aiogw.forwarded": "core",
    "aiogw.body": "core",
    "aiogw.upstream": "core",
    "aiogw.connections": "core",
    # The stages and their list.
    "aiogw.pipeline": "stages",
    "aiogw.finish": "stages",
    "aiogw.unauthenticated": "stages",
    "aiogw.guards": "guards",
    "aiogw.limits": "limits",
    "aiogw.audit": "audit",
    # State: the store interface, SQLite and PostgreSQL; the gateway's key index.
    "aiogw.store": "store",
    "aiogw.keys": "store",
    # What the operator sees and the process's life.
    "aiogw.metrics": "ops",
    "aiogw.logs": "ops",
    "aiogw.health": "ops",
    "aiogw.observe": "ops",
    "aiogw.notify": "ops",
    "aiogw.running": "ops",
    "aiogw.worker_metrics": "ops",
    # Assembling and running it, and the commands.
    "aiogw.app": "app",
    "aiogw.serving": "app",
    "aiogw.workers": "app",
    "aiogw.cli": "cli",
    "aiogw.__main__": "cli",
    "aiogw.audit.cli": "cli",
    "aiogw.audit.render": "cli",
    "aiogw.cli_state": "cli",
    "aiogw.state_copy": "cli",
    "aiogw.limits.report": "cli",
    "aiogw.demo": "cli",
    "aiogw.demo_session": "cli",
    "aiogw.fake_upstream": "fake_upstream",
    "aiogw": "package",  # __init__: the version
}

ALLOWED = {
    "package": set(),
    "formats": set(),
    "dialects": {"formats"},
    "config": {"formats"},
    "contract": {"formats", "dialects"},
    "core": {"contract", "formats", "dialects", "config", "store", "package"},
    "guards": {"contract", "formats", "dialects", "config"},
    # limits.persistence saves the counters through the store interface (store.base).
    "limits": {"contract", "formats", "dialects", "config", "store"},
    # The record masks what a redacting guard would (guards.redact).
    "audit": {"contract", "formats", "dialects", "config", "guards", "store", "package"},
    "store": {"formats", "dialects", "config", "audit"},  # the stores write audit.record's rows
    "stages": {"contract", "formats", "dialects", "config", "guards", "limits"},
    # Metrics read the core's and the stages' counters; the log line names the dialect.
    "ops": {"contract", "formats", "dialects", "config", "core", "stages", "limits", "audit", "store", "package"},
    "app": {"contract", "formats", "dialects", "config", "core", "stages", "guards", "limits", "audit", "store", "ops"},
    "cli": {"contract", "formats", "dialects", "config", "audit", "store", "ops", "app", "stages", "guards", "limits",
            "fake_upstream", "package"},
    "fake_upstream": set(),
}

MAX_LINES = 400
# At the edge, each for a stated reason; new modules get no exception.
LONGER = {}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def part_of(module: str) -> str | None:
    best = None
    for prefix in PARTS:
        # The package itself names only its __init__, never what is under it.
        inside = module.startswith(prefix + ".") and prefix != "aiogw"
        if (module == prefix or inside) and (best is None or len(prefix) > len(best)):
            best = prefix
    return PARTS[best] if best is not None else None


def imports(module: str, path: Path) -> set[str]:
    """The package's modules `module` imports, resolved (`from aiogw import x` is
    aiogw.x when x is a module)."""
    found = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "aiogw")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            if base.split(".")[0] != "aiogw":
                continue
            for alias in node.names:
                child = f"{base}.{alias.name}"
                found.add(child if child in MODULES else base)
    found.discard(module)
    return found


def test_every_module_belongs_to_a_part():
    assert [m for m in MODULES if part_of(m) is None] == []
    assert set(PARTS.values()) == set(ALLOWED)


def test_imports_follow_the_allowed_edges():
    bad = defaultdict(list)
    for module, path in MODULES.items():
        mine = part_of(module)
        for target in sorted(imports(module, path)):
            theirs = part_of(target)
            if theirs != mine and theirs not in ALLOWED[mine]:
                bad[f"{mine} -> {theirs}"].append(f"{module} imports {target}")
    assert dict(bad) == {}


def test_the_core_imports_no_feature():
    """The issue's own words: proxy.py imports no guard, limit, audit or metric module."""
    features = {"guards", "limits", "audit", "ops", "stages"}
    assert {t for t in imports("aiogw.proxy", MODULES["aiogw.proxy"]) if part_of(t) in features} == set()


def test_the_table_catches_a_forbidden_edge(tmp_path):
    """The check itself can fail: a core module importing a guard is caught."""
    fake = tmp_path / "proxy.py"
    fake.write_text("from aiogw.guards.check import GuardCheck\nfrom aiogw import metrics\n")
    found = imports("aiogw.proxy", fake)
    assert found == {"aiogw.guards.check", "aiogw.metrics"}
    assert {part_of(t) for t in found} - ALLOWED["core"] == {"guards", "ops"}
    assert part_of("aiogw.brand_new") is None  # a module of no part is caught, not taken for the package


def test_no_module_is_two_things():
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == LONGER


def test_module_names_are_unique_within_the_package():
    """No two `check.py`: a name says what it owns wherever it is read."""
    seen = defaultdict(list)
    for module in MODULES:
        # The fake providers are named for the dialects they stand in for, on purpose.
        if module != "aiogw" and not module.startswith("aiogw.fake_upstream") and not module.endswith("__main__"):
            # The two stores answer one interface module for module, on purpose.
            name = module.rpartition(".")[2]
            seen[name].append(module.replace("aiogw.store.postgres.", "aiogw.store.sqlite."))
    seen = {name: sorted(set(mods)) for name, mods in seen.items()}
    dupes = {name: mods for name, mods in seen.items() if len(mods) > 1}
    # `aiogw audit ...` is the audit package's own command; `base` is the interface of a
    # family of implementations (the dialects, the stores).
    assert dupes == {"cli": ["aiogw.audit.cli", "aiogw.cli"], "base": ["aiogw.dialects.base", "aiogw.store.base"]}


_ALONE = """
import importlib, sys, traceback
failed = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "aiogw" or m.startswith("aiogw.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name + ": " + traceback.format_exc(limit=3))
print("\\n".join(failed))
"""


def test_every_module_imports_alone():
    """No import cycle: each module is imported first, with no module of the package
    loaded (one interpreter, the package's modules dropped between two)."""
    # (__main__ modules run their command when imported; demo needs the SDKs of the dev extra)
    names = sorted(m for m in MODULES if not m.startswith("aiogw.demo") and not m.endswith("__main__"))
    done = subprocess.run([sys.executable, "-c", _ALONE, *names], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "", done.stdout + done.stderr[-2000:]
