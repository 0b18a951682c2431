"""git work on a pooled worktree: detach it, wipe what a task left, move it to a task's
branch writing only the files that differ, list its setup inputs, find its stashes.

A pooled worktree sits on a detached HEAD between tasks, never on a task's branch. What a task
can leave behind and where it goes:

* tracked changes, untracked and ignored files: ``reset --hard`` and ``clean -ffdx`` with an
  ``-e`` pattern per ``keep`` folder (``-x`` drops .gitignore, the ``-e`` patterns still hold);
* half-done merges, rebases, cherry-picks, bisects, per-worktree config (a ``core.hooksPath``
  set with ``git config --worktree``), per-worktree refs and HEAD's reflog: the files of the
  worktree's own git dir listed in ``WORKTREE_STATE``;
* stashes: ``refs/stash`` is shared by every worktree of the repository, so only entries that
  name the task's branch ("WIP on wf/t: ...", "On wf/t: ...") are the worktree's own
  (:func:`stashes_of`); the keeper saves each under a backup ref before dropping it.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from wf.errors import GitError
from wf.gitx.commands import check_rev, output, run_git
from wf.gitx.refs import rev_parse, update_ref

# Per-worktree state a task can leave in the worktree's own git dir (not HEAD nor index).
WORKTREE_STATE = (
    "MERGE_HEAD", "MERGE_MSG", "MERGE_MODE", "MERGE_AUTOSTASH", "AUTO_MERGE", "CHERRY_PICK_HEAD",
    "REVERT_HEAD", "ORIG_HEAD", "FETCH_HEAD", "BISECT_LOG", "BISECT_NAMES", "BISECT_START",
    "BISECT_EXPECTED_REV", "BISECT_ANCESTORS_OK", "BISECT_TERMS", "BISECT_RUN", "REBASE_HEAD",
    "SQUASH_MSG", "COMMIT_EDITMSG", "config.worktree", "rebase-merge", "rebase-apply",
    "sequencer", "refs", "logs",  # per-worktree refs, and HEAD's reflog (the last task's moves)
)


def worktree_add_detached_unpopulated(root: Path, path: Path, commit: str, *,
                                      lock_reason: str) -> None:
    """Register a worktree at ``path`` on a detached HEAD at ``commit``, files not checked out,
    locked with ``lock_reason`` (``populate_worktree`` checks them out)."""
    run_git(["worktree", "add", "--quiet", "--no-checkout", "--lock", "--reason", lock_reason,
             "--detach", "--", str(path), check_rev(commit)], cwd=root)


def git_dir(path: Path) -> Path:
    """The worktree's own git dir (``<common>/worktrees/<name>``), read from its ``.git``."""
    try:
        text = (path / ".git").read_text(encoding="utf-8")
    except OSError as exc:
        raise GitError(f"{path} is not a complete worktree: {exc.strerror or exc}") from exc
    if not text.startswith("gitdir: "):
        raise GitError(f"{path} is not a linked worktree")
    return Path(text.removeprefix("gitdir: ").strip())


def wipe(path: Path, keep: Sequence[str]) -> None:
    """Leave only the tracked files of HEAD and the ``keep`` folders: reset tracked changes,
    delete every untracked and ignored file (nested repositories too), and remove what a
    half-done merge, rebase, bisect or per-worktree config left in the worktree's git dir."""
    own = git_dir(path)
    for name in WORKTREE_STATE:
        target = own / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target, ignore_errors=True)
        else:
            target.unlink(missing_ok=True)
    run_git(["reset", "--quiet", "--hard", "HEAD", "--"], cwd=path)
    excludes = [arg for pattern in keep for arg in ("-e", pattern)]
    run_git(["clean", "-ffdxq", *excludes, "--"], cwd=path)


def detach_at(path: Path, commit: str) -> None:
    """Move the worktree to a detached HEAD at ``commit`` (only differing files are written)."""
    run_git(["checkout", "--quiet", "--force", "--detach", check_rev(commit), "--"], cwd=path)


def switch_to_branch(path: Path, branch: str, start: str | None) -> None:
    """Put the worktree (clean, detached) on ``branch``: created at ``start`` when given (it
    must not exist), else the existing branch. When HEAD is already at that commit no file is
    touched (the branch ref and HEAD are written, the ``post-checkout`` hook is run as a
    checkout would); otherwise ``git checkout`` writes the files that differ."""
    head = rev_parse(path, "HEAD")
    ref = f"refs/heads/{check_rev(branch)}"
    target = rev_parse(path, start if start is not None else ref)
    if target is None:
        raise GitError(f"{start or branch} does not name a commit")
    if head != target:
        create = ["-b", branch, target] if start is not None else [branch]
        run_git(["checkout", "--quiet", "--force", *create, "--"], cwd=path)
        return
    if start is not None:
        update_ref(path, ref, target, old="", message=f"branch: Created from {start}")
    run_git(["symbolic-ref", "-m", f"checkout: moving to {branch}", "HEAD", ref], cwd=path)
    run_git(["hook", "run", "--ignore-missing", "post-checkout", "--", head or target, target,
             "1"], cwd=path)


def inputs_listing(root: Path, commit: str, inputs: Sequence[str]) -> str:
    """``git ls-tree -r`` of ``inputs`` at ``commit``: modes and blob ids of every file they
    name (a folder: every file under it); what a setup key is made of."""
    if not inputs:
        return ""
    return output(["ls-tree", "-r", "--full-tree", check_rev(commit), "--",
                   *[i.strip("/") for i in inputs]], root)


_STASH_SUBJECT = re.compile(r"^(?:WIP on|On) (?P<branch>.+?): ")


def stashes_of(root: Path, branch: str) -> list[tuple[int, str]]:
    """(index, commit) of the stash entries made on ``branch``, newest first."""
    proc = run_git(["stash", "list", "--format=%H%x09%gs"], cwd=root, check=False)
    found = []
    for i, line in enumerate(proc.stdout.splitlines() if proc.returncode == 0 else ()):
        sha, _, subject = line.partition("\t")
        match = _STASH_SUBJECT.match(subject)
        if match and match.group("branch") == branch:
            found.append((i, sha))
    return found


def drop_stash(root: Path, index: int, commit: str) -> bool:
    """Drop ``stash@{index}`` if it is still ``commit`` (another worktree may have stashed
    meanwhile, moving the indexes); whether it was dropped."""
    if rev_parse(root, f"stash@{{{index}}}") != commit:
        return False
    run_git(["stash", "drop", "--quiet", f"stash@{{{index}}}"], cwd=root)
    return True
