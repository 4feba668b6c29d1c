"""A coding agent's conversation, as Claude Code sends it, built from real source text.

Agents resend the whole conversation every turn: a long system prompt, the tool list,
then assistant turns that call tools and user turns that carry the tools' output. The
output here is real text — files of the Python standard library read with line
numbers, grep hits across them, diffs, test runs quoting real lines — so the guards
scan what they would scan in production and the audit compresses what it would
compress, not one line repeated. Deterministic: the same seed and Python version give
the same bytes.

Lines that look like personal data or secrets (e-mail addresses, URLs, key material,
"password") are left out of the corpus: the bench measures clean traffic, which the
guards must scan but not refuse (bench.run reports any 403 as an error).
"""

from __future__ import annotations

import random
import re
import sysconfig
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

MODEL = "claude-sonnet-4-5-20250929"
_STDLIB = Path(sysconfig.get_paths()["stdlib"])
_PACKAGES = ("asyncio", "email", "json", "http", "logging", "concurrent/futures", "importlib", "unittest",
             "xml/etree", "urllib", "collections", "sqlite3", "multiprocessing", "tomllib", "zoneinfo")
# Lines left out of the corpus: what a guard may rightly flag (see the module docstring).
_RISKY = re.compile(r"@|https?://|passw|secret|token|private|BEGIN |api[_-]?key|credential|ignore|instruction"
                    r"|\b\d{3}[- .]\d{3}[- .]\d{4}\b|\b\d{9,}\b|[A-Za-z0-9+/]{40,}", re.IGNORECASE)


@cache
def corpus() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(repo path, lines) of each source file, sorted by path."""
    files = sorted(p for p in _STDLIB.glob("*.py") if not p.name.startswith("_"))
    for pkg in _PACKAGES:
        files += sorted(p for p in (_STDLIB / pkg).glob("*.py") if "test" not in p.name)
    out = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        lines = tuple(line for line in text.splitlines() if not _RISKY.search(line))
        if len(lines) > 60:
            out.append(("src/" + str(path.relative_to(_STDLIB)), lines))
    if not out:
        raise RuntimeError(f"no Python sources under {_STDLIB}: the bench builds its bodies from them")
    return tuple(out)


def _prose() -> list[str]:
    """Module docstrings: varied English about code, for the long system prompt."""
    out = []
    for _, lines in corpus():
        text = "\n".join(lines[:80])
        m = re.search(r'"""(.{400,3000}?)"""', text, re.DOTALL)
        if m:
            out.append(m.group(1).strip())
    return out


_GUIDANCE = """\
You are an interactive command line tool that helps users with software engineering tasks. \
Use the instructions below and the tools available to you to assist the user.

# Tone and style
Be concise, direct, and to the point. When you run a non-trivial command, explain what it \
does and why you are running it. Output text to communicate with the user; all text you \
output outside of tool use is displayed to the user. Only use tools to complete tasks.

# Doing tasks
The user will primarily request you perform software engineering tasks: solving bugs, adding \
new functionality, refactoring code, explaining code. For these tasks:
- Use the search tools extensively, in parallel and sequentially, to understand the codebase.
- Implement the solution using all tools available to you.
- Verify the solution with the project's tests. Never assume a specific test framework or \
test script: check the README or search the codebase to find the testing approach.
- When you have completed a task, run the lint and typecheck commands if they were provided.

# Following conventions
When making changes to files, first understand the file's code conventions. Mimic code \
style, use existing libraries and utilities, and follow existing patterns. Never assume \
that a given library is available, even if it is well known. When you create a new \
component, first look at existing components to see how they are written. When you edit \
a piece of code, first look at the code's surrounding context, especially its imports.

# Code references
When referencing specific functions or pieces of code include the pattern \
file_path:line_number to allow the user to easily navigate to the source code location.
"""

_TOOLS = (
    ("Bash", "Executes a given bash command in a persistent shell session with optional timeout, ensuring "
     "proper handling and security measures. Before executing the command, verify that the parent directory "
     "exists. Always quote file paths that contain spaces with double quotes. The command argument is "
     "required. You can specify an optional timeout in milliseconds (up to 600000ms / 10 minutes). If the "
     "output exceeds 30000 characters, output will be truncated before being returned to you. Avoid using "
     "Bash with the find, grep, cat, head, tail, sed, awk, or echo commands, unless explicitly instructed: "
     "use the dedicated tools instead. When issuing multiple commands, use the ';' or '&&' operator to "
     "separate them. Try to maintain your current working directory throughout the session by using "
     "absolute paths and avoiding usage of cd.",
     {"command": "The command to execute", "timeout": "Optional timeout in milliseconds (max 600000)",
      "description": "Clear, concise description of what this command does in 5-10 words"}),
    ("Glob", "Fast file pattern matching tool that works with any codebase size. Supports glob patterns like "
     "\"**/*.js\" or \"src/**/*.ts\". Returns matching file paths sorted by modification time. Use this tool "
     "when you need to find files by name patterns.",
     {"pattern": "The glob pattern to match files against", "path": "The directory to search in"}),
    ("Grep", "A powerful search tool built on ripgrep. Supports full regex syntax (eg. \"log.*Error\", "
     "\"function\\s+\\w+\"). Filter files with the glob parameter or the type parameter. Output modes: "
     "\"content\" shows matching lines, \"files_with_matches\" shows only file paths (default), \"count\" "
     "shows match counts. Pattern syntax uses ripgrep, not grep: literal braces need escaping.",
     {"pattern": "The regular expression pattern to search for in file contents",
      "path": "File or directory to search in", "glob": "Glob pattern to filter files",
      "output_mode": "Output mode: content, files_with_matches or count"}),
    ("Read", "Reads a file from the local filesystem. The file_path parameter must be an absolute path, not a "
     "relative path. By default, it reads up to 2000 lines starting from the beginning of the file. You can "
     "optionally specify a line offset and limit, which is especially handy for long files. Results are "
     "returned using cat -n format, with line numbers starting at 1. Lines longer than 2000 characters will "
     "be truncated. It is always better to speculatively read multiple files as a batch that are potentially "
     "useful.",
     {"file_path": "The absolute path to the file to read", "offset": "The line number to start reading from",
      "limit": "The number of lines to read"}),
    ("Edit", "Performs exact string replacements in files. You must use your Read tool at least once in the "
     "conversation before editing. When editing text from Read tool output, ensure you preserve the exact "
     "indentation (tabs/spaces) as it appears AFTER the line number prefix. The edit will FAIL if old_string "
     "is not unique in the file. Either provide a larger string with more surrounding context to make it "
     "unique or use replace_all to change every instance of old_string.",
     {"file_path": "The absolute path to the file to modify", "old_string": "The text to replace",
      "new_string": "The text to replace it with (must be different from old_string)"}),
    ("Write", "Writes a file to the local filesystem. This tool will overwrite the existing file if there is "
     "one at the provided path. If this is an existing file, you MUST use the Read tool first to read the "
     "file's contents. ALWAYS prefer editing existing files in the codebase. NEVER write new files unless "
     "explicitly required.",
     {"file_path": "The absolute path to the file to write", "content": "The content to write to the file"}),
    ("TodoWrite", "Use this tool to create and manage a structured task list for your current coding session. "
     "This helps you track progress, organize complex tasks, and demonstrate thoroughness to the user. Use "
     "it proactively for complex multi-step tasks, when the user provides multiple tasks, and after "
     "receiving new instructions. Mark tasks completed as soon as they are done; do not batch completions.",
     {"todos": "The updated todo list"}),
)


def system_and_tools(size: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Claude Code's shape: a system prompt as text blocks, long tool descriptions.
    `size` (characters) is filled with project notes taken from module docstrings."""
    notes, total = [], 0
    for doc in _prose():
        if total >= size:
            break
        notes.append(doc)
        total += len(doc)
    system = [
        {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."},
        {"type": "text", "text": _GUIDANCE + "\n# Project notes\n\n" + "\n\n".join(notes),
         "cache_control": {"type": "ephemeral"}},
    ]
    tools = [
        {"name": name, "description": desc,
         "input_schema": {"type": "object", "properties": {k: {"type": "string", "description": v}
                                                           for k, v in props.items()},
                          "required": [next(iter(props))], "additionalProperties": False,
                          "$schema": "http://json-schema.org/draft-07/schema#"}}
        for name, desc, props in _TOOLS
    ]
    return system, tools


class Session:
    """An agent's turns: each `turn()` appends an assistant tool call and its result."""

    def __init__(self, seed: int = 7, system_chars: int = 22_000) -> None:
        self.rng = random.Random(seed)
        self.files = corpus()
        self.system, self.tools = system_and_tools(system_chars)
        self.messages: list[dict[str, Any]] = [{"role": "user", "content": [
            {"type": "text", "text": "<system-reminder>\nAs you answer the user's questions, you can use the "
             "following context: the working directory is /home/dev/project, a git repository on branch "
             "main.\n</system-reminder>"},
            {"type": "text", "text": "The test suite fails since yesterday's merge: tests/test_streams.py and "
             "tests/test_parser.py. Find out why and fix it, keeping the change small."},
        ]}]
        self.n = 0

    def body(self, *, stream: bool = True, max_tokens: int = 32_000) -> dict[str, Any]:
        return {"model": MODEL, "max_tokens": max_tokens, "system": self.system, "tools": self.tools,
                "messages": self.messages, "metadata": {"user_id": "user_3f2a_account_bench_session_9c1e"},
                "temperature": 1, "stream": stream}

    def turn(self) -> None:
        self.n += 1
        rng = self.rng
        if self.n % 17 == 0:  # now and then the user says something, mid-task
            self.messages.append({"role": "assistant", "content": [{"type": "text", "text": self._remark()}]})
            self.messages.append({"role": "user", "content": [{"type": "text", "text": rng.choice(_NUDGES)}]})
            return
        kind = rng.choices(("read", "grep", "test", "diff", "ls", "edit"), (34, 20, 14, 12, 8, 12))[0]
        path, lines = rng.choice(self.files)
        tool, args, output = getattr(self, "_" + kind)(path, lines)
        ident = f"toolu_01{rng.getrandbits(80):020x}"
        self.messages.append({"role": "assistant", "content": [
            {"type": "text", "text": self._remark(path)},
            {"type": "tool_use", "id": ident, "name": tool, "input": args},
        ]})
        self.messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": ident, "content": output},
        ]})

    def _remark(self, path: str = "") -> str:
        name = self._name(self.rng.choice(self.files)[1])
        return self.rng.choice(_REMARKS).format(path=path or "the module", name=name)

    def _name(self, lines: tuple[str, ...]) -> str:
        defs = [m.group(1) for line in lines[:400] if (m := re.match(r"\s*(?:def|class) (\w+)", line))]
        return self.rng.choice(defs) if defs else "main"

    def _slice(self, lines: tuple[str, ...], lo: int, hi: int) -> tuple[int, tuple[str, ...]]:
        n = self.rng.randint(lo, hi)
        start = self.rng.randrange(max(1, len(lines) - n))
        return start, lines[start:start + n]

    def _read(self, path: str, lines: tuple[str, ...]) -> tuple[str, dict, str]:
        start, chunk = self._slice(lines, 30, 140)
        out = "\n".join(f"{start + i + 1:>6}\u2192{line}" for i, line in enumerate(chunk))
        return "Read", {"file_path": f"/home/dev/project/{path}", "offset": start + 1, "limit": len(chunk)}, out

    def _grep(self, path: str, lines: tuple[str, ...]) -> tuple[str, dict, str]:
        word = self._name(lines)
        hits = []
        for other, text in self.rng.sample(self.files, min(40, len(self.files))):
            hits += [f"{other}:{i + 1}:{line}" for i, line in enumerate(text) if word in line][:6]
            if len(hits) > 40:
                break
        if len(hits) < 3:
            start, chunk = self._slice(lines, 5, 15)
            hits += [f"{path}:{start + i + 1}:{line}" for i, line in enumerate(chunk)]
        return "Grep", {"pattern": word, "path": "/home/dev/project", "output_mode": "content"}, "\n".join(hits)

    def _test(self, path: str, lines: tuple[str, ...]) -> tuple[str, dict, str]:
        rng = self.rng
        name = self._name(lines)
        tests = [f"tests/test_{p.rsplit('/', 1)[-1]}" for p, _ in rng.sample(self.files, 6)]
        dots = "\n".join(f"{t} {''.join(rng.choice('.....F.s') for _ in range(rng.randint(4, 30)))}" for t in tests)
        start, chunk = self._slice(lines, 8, 25)
        frame = "\n".join(f"    {line}" for line in chunk)
        out = (
            "============================= test session starts ==============================\n"
            "platform linux -- Python 3.11.7, pytest-8.3.3, pluggy-1.5.0\nrootdir: /home/dev/project\n"
            f"configfile: pyproject.toml\nplugins: asyncio-0.24.0, timeout-2.3.1\ncollected {rng.randint(80, 900)} items\n\n"
            f"{dots}\n\n=================================== FAILURES ===================================\n"
            f"_____________________________ test_{name} _____________________________\n\n"
            f"{path}:{start + 1}: in {name}\n{frame}\nE   AssertionError: assert {rng.randint(0, 99)} == "
            f"{rng.randint(100, 999)}\n\n=========================== short test summary info ============================\n"
            f"FAILED {tests[0]}::test_{name} - AssertionError\n"
            f"========================= 1 failed, {rng.randint(80, 800)} passed in {rng.uniform(1, 40):.2f}s ========================="
        )
        return "Bash", {"command": f"python -m pytest -x -q {tests[0]}", "description": "Run the failing tests"}, out

    def _diff(self, path: str, lines: tuple[str, ...]) -> tuple[str, dict, str]:
        start, chunk = self._slice(lines, 10, 60)
        body = []
        for i, line in enumerate(chunk):
            if i in (len(chunk) // 3, len(chunk) // 2):
                body += [f"-{line}", f"+{line.rstrip()}  # checked"]
            else:
                body.append(f" {line}")
        head = f"diff --git a/{path} b/{path}\nindex 3f1c2ab..9e0d4c7 100644\n--- a/{path}\n+++ b/{path}\n"
        out = head + f"@@ -{start + 1},{len(chunk)} +{start + 1},{len(chunk)} @@\n" + "\n".join(body)
        return "Bash", {"command": f"git diff {path}", "description": "Show the working tree changes"}, out

    def _ls(self, path: str, lines: tuple[str, ...]) -> tuple[str, dict, str]:
        folder = path.rsplit("/", 1)[0]
        names = sorted({p for p, _ in self.files if p.rsplit("/", 1)[0] == folder})[:60]
        rows = [f"-rw-r--r--  1 dev dev {sum(map(len, text)) + len(text):>7} Nov {self.rng.randint(1, 27):>2} "
                f"{self.rng.randint(0, 23):02d}:{self.rng.randint(0, 59):02d} {p.rsplit('/', 1)[-1]}"
                for p, text in self.files if p in names]
        out = f"total {len(rows) * 8}\n" + "\n".join(rows)
        return "Bash", {"command": f"ls -la {folder}", "description": "List the package's files"}, out

    def _edit(self, path: str, lines: tuple[str, ...]) -> tuple[str, dict, str]:
        start, chunk = self._slice(lines, 12, 40)
        old = "\n".join(chunk[3:6])
        new = old.replace("(", "( ", 1) if "(" in old else old + "\n"
        out = (f"The file /home/dev/project/{path} has been updated. Here's the result of running `cat -n` on a "
               "snippet of the edited file:\n" + "\n".join(f"{start + i + 1:>6}\u2192{line}" for i, line in enumerate(chunk)))
        return "Edit", {"file_path": f"/home/dev/project/{path}", "old_string": old, "new_string": new}, out


_REMARKS = (
    "Let me look at {path} to see how {name} is handled.",
    "The failure points at {name}; I'll check where it is defined and who calls it.",
    "That narrows it down. Next I want to see whether {name} is used anywhere else.",
    "I'll run the tests again to confirm the change in {path} fixes the failure.",
    "Interesting: {name} changed in the merge. Let me compare it with the call sites.",
    "Before editing {path} I'll read the surrounding code, so the change matches its style.",
    "The traceback goes through {name}. Let me search for other places that build the same value.",
    "Good, that part passes now. There is one more failure, in the code around {name}.",
)
_NUDGES = (
    "Keep the public API unchanged, other teams import this module.",
    "Please also check the async variant, it had the same bug last month.",
    "Don't touch the vendored files, only our own code.",
    "Can you add a regression test for this before moving on?",
    "The CI runs on 3.11 and 3.12, make sure nothing you use is newer than that.",
)


def bodies(target_bytes: int, seed: int = 7, system_chars: int = 22_000) -> Iterator[tuple[int, dict[str, Any]]]:
    """(turn, body) of a session, turn after turn, until a body reaches `target_bytes`."""
    import orjson

    session = Session(seed, system_chars)
    while True:
        body = session.body()
        yield session.n, body
        if len(orjson.dumps(body)) >= target_bytes:
            return
        session.turn()
