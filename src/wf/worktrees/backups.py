"""Saving work before anything could lose it, and judging whether deleting a branch would.

A backup is a ref ``refs/wf-backup/<task-id>/<unix-ts>[-<label>]`` at a commit that holds the
work: a worktree's HEAD plus its uncommitted and untracked changes, or a branch's tip. A branch
is safe to delete when every commit of it is in a target branch or a remote-tracking branch.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

from wf import gitx
from wf.errors import ConfigError, GitError
from wf.model import check_task_id

BACKUP_PREFIX = "refs/wf-backup/"
_LABEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")


def checked_task_id(task_id: str) -> str:
    """``task_id`` if it can name a branch, a folder and a backup ref; else ConfigError."""
    try:
        return check_task_id(task_id)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def save_backup(repo_root: Path, path: Path, task_id: str, label: str | None,
                base: str | None, clock: Callable[[], float]) -> str | None:
    """Save the worktree's state (HEAD plus uncommitted and untracked changes, as a commit
    whose parent is HEAD) under ``refs/wf-backup/<task-id>/<ts>[-<label>]`` without moving
    the branch or touching the index. Returns None when there is nothing to save: no
    uncommitted changes and HEAD is ``base`` (or ``base`` is not given)."""
    head = gitx.head(path)
    tree = gitx.snapshot_tree(path)
    if tree != gitx.tree_of(path, head):
        message = f"wf backup of {task_id}" + (f" ({label})" if label else "")
        commit = gitx.commit_tree(path, tree, [head], message)
    elif base is None or gitx.resolve_commit(path, base) == head:
        return None
    else:
        commit = head
    return write_backup_ref(repo_root, task_id, commit, label, clock)


def write_backup_ref(repo_root: Path, task_id: str, commit: str, label: str | None,
                     clock: Callable[[], float]) -> str:
    """Point a new backup ref of the task at ``commit`` and return its name; a ref of the
    same second gets a ``.<n>`` suffix rather than replacing it."""
    if label is not None and not _LABEL_RE.fullmatch(label):
        raise ValueError(f"invalid backup label {label!r}")
    stem = f"{BACKUP_PREFIX}{checked_task_id(task_id)}/{int(clock())}"
    stem += f"-{label}" if label else ""
    for n in range(100):
        ref = stem if n == 0 else f"{stem}.{n}"
        try:
            gitx.update_ref(repo_root, ref, commit, old="", message="wf: backup")
            return ref
        except GitError:
            if gitx.rev_parse(repo_root, ref) is None:
                raise
    raise GitError(f"too many backups of {task_id} at {stem}")


def branch_safety(root: Path, tip: str, targets: Sequence[str] | None) -> tuple[bool, str]:
    """Whether every commit up to ``tip`` is in one of ``targets`` (default: the branch checked
    out in the main worktree at ``root``) or in a remote-tracking branch, and why."""
    if targets is None:
        current = gitx.current_branch(root)
        targets = [current] if current else []
    present = [t for t in targets if gitx.rev_parse(root, t) is not None]
    missing = gitx.count_unreachable(root, tip, present, remotes_too=True)
    if missing:
        where = " or ".join(targets) if targets else "any target branch"
        plural = "s" if missing != 1 else ""
        return False, f"{missing} commit{plural} not merged into {where} or pushed"
    merged = next((t for t in present if gitx.is_ancestor(root, tip, t)), None)
    if merged:
        return True, f"merged into {merged}"
    pushed = gitx.remote_tracking_branches_containing(root, tip)
    if pushed:
        return True, f"pushed to {pushed[0].removeprefix('refs/remotes/')}"
    return True, "every commit is merged or pushed"
