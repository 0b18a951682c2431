"""Branches pushed together (``wf.temporal.pushes``): a real bare remote whose pre-receive hook
records every push and holds the first one until the test lets it go, so that the pushes
asked for meanwhile wait, and go in the next push together."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.helpers import commit_files, git, make_origin, make_repo
from tests.runwf import wait_until
from wf.errors import GitError
from wf.temporal.pushes import Pushes

HOOK = """#!/bin/sh
# Each push: one line of the refs it carries. The first waits for the release file.
refs=$(awk '{print $3}' | tr '\\n' ' ')
echo "$refs" >> "{log}"
if [ "$(wc -l < "{log}")" -eq 1 ]; then
  while [ ! -e "{release}" ]; do sleep 0.01; done
fi
case "$refs" in *refs/heads/wf/bad*) echo "bad is refused" >&2; exit 1;; esac
exit 0
"""


@pytest.fixture
def remote(tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    repo = make_repo(tmp_path / "repo")
    origin = make_origin(repo, tmp_path / "origin.git")
    log, release = tmp_path / "pushes.log", tmp_path / "release"
    hook = origin / "hooks" / "pre-receive"
    hook.write_text(HOOK.replace("{log}", str(log)).replace("{release}", str(release)))
    hook.chmod(0o755)
    return repo, origin, log, release


def test_pushes_asked_for_while_one_is_on_its_way_go_together(remote) -> None:
    repo, origin, log, release = remote
    commits = {b: commit_files(repo, {f"{b}.txt": b}, b) for b in ("a", "b", "bad", "d")}
    pushes = Pushes(repo)
    assert pushes.has_remote("origin") and not pushes.has_remote("elsewhere")
    errors: dict[str, BaseException | None] = {}

    def push(branch: str) -> None:
        try:
            pushes.push("origin", commits[branch], f"wf/{branch}")
            errors[branch] = None
        except GitError as exc:
            errors[branch] = exc

    first = threading.Thread(target=push, args=("a",))
    first.start()
    wait_until(lambda: log.exists() and log.read_text().count("\n") == 1, what="first push")
    rest = [threading.Thread(target=push, args=(b,)) for b in ("b", "bad", "d")]
    for t in rest:
        t.start()
    wait_until(lambda: pushes.waiting("origin") == 3, what="three pushes waiting")
    release.touch()
    for t in (first, *rest):
        t.join(30)
    assert set(errors) == {"a", "b", "bad", "d"}
    assert errors["a"] is None and errors["b"] is None and errors["d"] is None
    assert isinstance(errors["bad"], GitError)
    lines = log.read_text().split("\n")
    # The three that waited went in one push (refused as a whole for bad), then one by one.
    assert lines[1].split() == ["refs/heads/wf/b", "refs/heads/wf/bad", "refs/heads/wf/d"]
    assert sorted(line.strip() for line in lines[2:5]) == [
        "refs/heads/wf/b", "refs/heads/wf/bad", "refs/heads/wf/d"]
    for b in ("a", "b", "d"):
        assert git(origin, "rev-parse", f"refs/heads/wf/{b}") == commits[b]
    assert "wf/bad" not in git(origin, "branch", "--list")


def test_a_push_alone_starts_at_once_and_says_why_it_failed(remote) -> None:
    repo, origin, log, release = remote
    release.touch()
    good, bad = (commit_files(repo, {f"{b}.txt": b}, b) for b in ("good", "bad"))
    pushes = Pushes(repo)
    pushes.push("origin", good, "wf/good")
    with pytest.raises(GitError):
        pushes.push("origin", bad, "wf/bad")
    assert git(origin, "rev-parse", "refs/heads/wf/good") == good
    assert [line.split() for line in log.read_text().splitlines()] == [
        ["refs/heads/wf/good"], ["refs/heads/wf/bad"]]
