"""bench.commits: its arguments are checked before a worktree or a server is made."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("argv", [["--before", "no-such-commit"], ["--before", "HEAD", "--rounds", "0"],
                                  ["--before", "HEAD", "--duration", "0"], ["--before", "HEAD", "--configs", "x"],
                                  ["--rounds", "2"]])
def test_commits_refuses_what_it_cannot_measure_before_starting_anything(argv, capsys, monkeypatch):
    from bench import commits

    monkeypatch.setattr(commits, "measure", lambda *a: pytest.fail("measured despite a bad argument"))
    monkeypatch.setattr(commits.subprocess, "run", _git_only(commits.subprocess.run))
    with pytest.raises(SystemExit) as stopped:
        commits.main(argv)
    assert stopped.value.code == 2 and "error:" in capsys.readouterr().err


def _git_only(run):
    """`git rev-parse` runs; a worktree would be made only for a run that measures."""
    def guarded(cmd, *a, **kw):
        if cmd[:2] == ["git", "worktree"]:
            pytest.fail("a worktree was made despite a bad argument")
        return run(cmd, *a, **kw)
    return guarded
