"""`wf clean`: worktrees go, branches go only when their work is merged or pushed."""

from __future__ import annotations

import json
import subprocess

from runwf import agent_cmd, fast_retry, status, wf, write_tasks


def git(repo, *args, check=True):
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                          check=check).stdout.strip()


def _run_two(repo):
    text = fast_retry(1) + f"\n[agents.c]\ncommand = {agent_cmd('commit')}\n"
    text += '[[task]]\nid = "merged"\nprompt = "x"\nagent = "c"\n'
    text += '[[task]]\nid = "unmerged"\nprompt = "y"\nagent = "c"\n'
    assert wf(repo, "run", str(write_tasks(repo, text))).returncode == 0
    git(repo, "merge", "-q", "--ff-only", "wf/merged")
    return status(repo)


def test_clean_removes_worktrees_and_only_merged_branches(repo):
    tasks = _run_two(repo)
    proc = wf(repo, "clean", "--json")
    assert proc.returncode == 0, proc.stderr
    report = {r["task"]: r["result"] for r in json.loads(proc.stdout)}
    assert "branch deleted" in report["merged"]
    assert "branch kept" in report["unmerged"] and "not merged" in report["unmerged"]
    assert git(repo, "branch", "--list", "wf/*").split() == ["wf/unmerged"]
    for tid in ("merged", "unmerged"):
        assert not (tasks[tid]["worktree"] and __import__("os").path.exists(tasks[tid]["worktree"]))
    # the unmerged work is still reachable
    assert git(repo, "show", "wf/unmerged:notes/unmerged.txt") == "unmerged attempt 1"


def test_clean_force_writes_a_backup_ref_before_deleting(repo):
    _run_two(repo)
    tip = git(repo, "rev-parse", "wf/unmerged")
    proc = wf(repo, "clean", "unmerged", "--force")
    assert proc.returncode == 0, proc.stderr
    assert "backup at refs/wf-backup/unmerged/" in proc.stdout
    assert git(repo, "branch", "--list", "wf/unmerged") == ""
    backups = git(repo, "for-each-ref", "--format=%(objectname)", "refs/wf-backup/unmerged/")
    assert backups.split() == [tip]


def test_clean_keeps_a_worktree_with_uncommitted_work(repo):
    tasks = _run_two(repo)
    wt = tasks["unmerged"]["worktree"]
    (__import__("pathlib").Path(wt) / "scratch.txt").write_text("precious")
    out = wf(repo, "clean", "unmerged").stdout
    assert "kept" in out and "uncommitted" in out
    assert (__import__("pathlib").Path(wt) / "scratch.txt").read_text() == "precious"


def test_clean_orphans_finds_what_the_log_no_longer_tracks(repo, tmp_path):
    _run_two(repo)
    # A wf-made branch and worktree the log does not know (e.g. the log was deleted).
    root = tmp_path / "repo.worktrees"
    git(repo, "worktree", "add", "-q", "-b", "wf/ghost", str(root / "ghost"), "main")
    (root / "ghost" / "ghost.txt").write_text("x")
    git(root / "ghost", "add", "-A")
    git(root / "ghost", "commit", "-qm", "ghost work")
    report = json.loads(wf(repo, "clean", "--orphans", "--json").stdout)
    ghost = [r for r in report if r["task"] == "ghost"]
    assert {r["kind"] for r in ghost} == {"orphan-worktree", "orphan-branch"}
    branch = next(r for r in ghost if r["kind"] == "orphan-branch")
    assert branch["result"].startswith("kept")  # its commit is not merged anywhere
    assert git(repo, "rev-parse", "--verify", "-q", "wf/ghost")


def test_clean_of_an_unknown_task_is_exit_2(repo):
    _run_two(repo)
    proc = wf(repo, "clean", "nope")
    assert proc.returncode == 2 and "no task 'nope'" in proc.stderr
