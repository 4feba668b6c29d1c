"""`aiogw demo` as a newcomer runs it: a subprocess, its output read line by line.

Each step must have happened as the demo says, and the operator's view (audit list,
audit show, usage) must show the same exchanges, refused ones included.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from aiogw.demo_session import ANSWER, EMAIL, NOTES, PHONE

TIMEOUT_S = 120


@dataclass
class Run:
    code: int
    out: str
    err: str

    def after(self, marker: str) -> list[str]:
        """The lines after the first line containing `marker`, up to the next blank line."""
        lines = self.out.splitlines()
        start = next((i for i, line in enumerate(lines) if marker in line), None)
        assert start is not None, f"no line with {marker!r} in the demo's output:\n{self.out}\n{self.err}"
        start += 1
        end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
        return lines[start:end]

    def line(self, marker: str) -> str:
        found = next((line for line in self.out.splitlines() if marker in line), None)
        assert found is not None, f"no line with {marker!r} in the demo's output:\n{self.out}\n{self.err}"
        return found


def demo(*args: str) -> Run:
    done = subprocess.run(
        [sys.executable, "-m", "aiogw", "demo", *args], capture_output=True, text=True, timeout=TIMEOUT_S
    )
    return Run(done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def plain():
    run = demo()
    yield run
    # A failed run keeps its state to show what went wrong; the suite cleans up after it.
    found = re.search(r"(/\S*/aiogw-demo-[^/\s]+)", run.out)
    if found:
        shutil.rmtree(found.group(1), ignore_errors=True)


@pytest.fixture(scope="module")
def kept():
    run = demo("--keep")
    found = re.search(r"State kept in (\S+) ", run.out)
    yield run, Path(found.group(1)) if found else None
    if found:
        shutil.rmtree(found.group(1), ignore_errors=True)


def test_it_succeeds_quietly(plain):
    assert plain.code == 0, plain.err
    assert plain.err == ""  # no logs, no warnings, no tracebacks in a newcomer's terminal
    assert "Traceback" not in plain.out and "INFO" not in plain.out


def test_a_streamed_answer_arrives_in_pieces(plain):
    assert plain.line("    > ").strip() == f"> {ANSWER}"
    pieces = int(re.search(r"(\d+) pieces streamed", plain.out).group(1))
    assert pieces > 1


def test_a_tool_call_then_its_result(plain):
    steps = plain.after("2. A tool call and its result")
    assert 'the model calls it: read_file({"path": "NOTES.md"})' in steps[0]
    assert repr(NOTES) in steps[1]
    assert steps[2].endswith(f"the model answers: The tool returned: {NOTES}")


def test_the_injection_in_a_tool_result_is_blocked(plain):
    steps = "\n".join(plain.after("3. A prompt injection in a tool result"))
    assert "anthropic.PermissionDeniedError, status 403" in steps
    assert "permission_error: aiogw blocked this request: injection" in steps
    assert "in tool_result at messages[2].content[0].content" in steps
    assert "the provider never saw this request." in steps


def test_the_provider_received_masked_personal_data(plain):
    received = plain.line("the provider received:")
    assert "[REDACTED:email]" in received and "[REDACTED:phone]" in received
    assert EMAIL not in received and PHONE not in received
    assert EMAIL in plain.line("bob sends:")  # the raw value was sent; only the gateway masked it


def test_a_limit_refuses_the_second_request(plain):
    steps = "\n".join(plain.after("5. A rate limit"))
    assert "her first request is answered" in steps
    assert re.search(r"anthropic\.RateLimitError, status 429, retry-after \d+ s", steps)
    assert "rate_limit_error: aiogw: user 'carol' is over its limit of 1 request a minute" in steps


def test_the_audit_list_holds_every_exchange_refused_ones_included(plain):
    rows = [line.split() for line in plain.after("$ aiogw audit list")[1:]]
    # id, date, time, user, route, model, status, outcome, ...
    seen = [(r[3], r[4], r[6], r[7]) for r in rows]
    assert ("alice", "anthropic", "403", "refused") in seen
    assert ("carol", "anthropic", "429", "refused") in seen
    assert ("carol", "anthropic", "200", "ok") in seen
    assert ("bob", "anthropic", "200", "ok") in seen
    assert ("alice", "openai", "200", "ok") in seen
    # streamed, tool call, tool result, injection; bob; carol twice; OpenAI (Gemini optional)
    assert len([s for s in seen if s[1] == "anthropic"]) == 7
    assert len(rows) in (8, 9)


def test_the_exchange_shown_in_full_is_the_blocked_one(plain):
    shown = "\n".join(plain.after("$ aiogw audit show"))
    assert "result       403 refused (guard)" in shown
    assert "block: injection/ignore_instructions" in shown
    # The place written as the refusal message writes it, so the two can be matched.
    assert "in tool_result at messages[2].content[0].content [" in shown


def test_usage_lists_the_users(plain):
    table = {line.split()[0]: line.split()[1:] for line in plain.after("$ aiogw usage")[1:] if line[0] != "-"}
    # REQUESTS, REFUSED per user
    assert table["bob"][:2] == ["1", "0"]
    assert table["carol"][:2] == ["2", "1"]
    assert table["alice"][1] == "1"
    assert int(table["alice"][0]) in (5, 6)
    assert float(table["TOTAL"][6]) > 0  # COST USD


def test_without_keep_the_state_is_removed(plain):
    state = Path(plain.line("config and state in").rsplit(" ", 1)[1])
    assert state.name.startswith("aiogw-demo-")
    assert not state.exists()
    assert "The temporary state was removed" in plain.out


def test_with_keep_the_state_and_its_audit_stay(kept):
    run, state = kept
    assert run.code == 0, run.err
    assert state is not None and (state / "aiogw.toml").is_file()
    assert f"aiogw audit list --config {state / 'aiogw.toml'}" in run.out
    conn = sqlite3.connect(state / "aiogw.db")
    try:
        refused = conn.execute("SELECT user, status FROM exchanges WHERE outcome = 'refused' ORDER BY id").fetchall()
    finally:
        conn.close()
    assert refused == [("alice", 403), ("carol", 429)]


def test_without_the_sdks_it_says_what_to_install():
    code = "import sys; sys.modules['anthropic'] = None; from aiogw.cli import main; sys.exit(main(['demo']))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 2
    assert "anthropic SDK" in done.stderr and "pip install -e '.[dev]'" in done.stderr
    assert done.stdout == ""
