"""bench.commits: its arguments are checked before a worktree or a server is made."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest


@pytest.mark.parametrize("argv", [["--before", "no-such-commit"], ["--before", "HEAD", "--rounds", "0"],
                                  ["--before", "HEAD", "--duration", "0"], ["--before", "HEAD", "--configs", "x"],
                                  ["--rounds", "2"]])
def test_commits_refuses_what_it_cannot_measure_before_starting_anything(argv, capsys, monkeypatch):
    from bench import commits

    monkeypatch.setattr(commits, "measure", lambda *a: pytest.fail("measured despite a bad argument"))
    before = _worktrees()
    with pytest.raises(SystemExit) as stopped:
        commits.main(argv)
    assert stopped.value.code == 2 and "error:" in capsys.readouterr().err
    assert _worktrees() == before, "a worktree was made despite a bad argument"


def _worktrees() -> str:
    """`git worktree list`: a worktree would be made only for a run that measures."""
    return subprocess.run(["git", "worktree", "list", "--porcelain"], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).parent, timeout=30).stdout
