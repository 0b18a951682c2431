"""``git worktree``: the repository's list of worktrees, and adding, populating, unlocking and
removing them; plus the untracked and ignored files a new worktree may copy from the main one.

Adding is split in two (:func:`worktree_add_unpopulated` then :func:`populate_worktree`) so that
only the quick part needs the repository-wide lock ``wf.worktrees`` holds around it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from wf.errors import GitError
from wf.gitx.commands import GitCommandError, check_rev, reason, run_git


@dataclass(frozen=True)
class WorktreeEntry:
    """One record of ``git worktree list --porcelain``. ``branch`` is short (``wf/x``), None if
    detached; ``locked``/``prunable`` hold git's reason ("" when none was given) or None."""

    path: Path
    head: str | None
    branch: str | None
    bare: bool = False
    locked: str | None = None
    prunable: str | None = None


def list_worktrees(root: Path) -> list[WorktreeEntry]:
    """Every worktree of the repository, the main one first."""
    out = run_git(["worktree", "list", "--porcelain", "-z"], cwd=root).stdout
    entries: list[WorktreeEntry] = []
    record: dict[str, str] = {}
    for field in out.split("\0"):
        if field:
            key, _, value = field.partition(" ")
            record[key] = value
        elif record:
            entries.append(_worktree_entry(record))
            record = {}
    if record:
        entries.append(_worktree_entry(record))
    return entries


def _worktree_entry(record: dict[str, str]) -> WorktreeEntry:
    branch = record.get("branch")
    return WorktreeEntry(
        path=Path(record["worktree"]),
        head=record.get("HEAD"),
        branch=branch.removeprefix("refs/heads/") if branch else None,
        bare="bare" in record,
        locked=record.get("locked"),
        prunable=record.get("prunable"),
    )


def worktree_add_unpopulated(root: Path, path: Path, branch: str, *, lock_reason: str,
                             create_at: str | None = None) -> None:
    """Register a worktree at ``path`` for ``branch`` (created at ``create_at`` when given,
    which fails if it exists) without checking out its files, locked with ``lock_reason``:
    the quick part of ``git worktree add``. :func:`populate_worktree` does the rest."""
    new_branch = ["-b", check_rev(branch)] if create_at else []
    start = [check_rev(create_at)] if create_at else [check_rev(branch)]
    run_git(["worktree", "add", "--quiet", "--no-checkout", "--lock", "--reason", lock_reason,
             *new_branch, "--", str(path), *start], cwd=root)


def populate_worktree(path: Path) -> None:
    """Check out the files of a worktree made by :func:`worktree_add_unpopulated` (or redo it
    after a crash half-way): what ``git worktree add`` does after registering, post-checkout
    hook included. Touches only this worktree, so it needs no repository-wide lock.

    The worktree's git dir is named explicitly: were its ``.git`` file missing, git would
    otherwise find an enclosing repository and force a checkout there."""
    try:
        gitfile = (path / ".git").read_text(encoding="utf-8")
    except OSError as exc:
        raise GitError(f"{path} is not a complete worktree: {exc.strerror or exc}") from exc
    if not gitfile.startswith("gitdir: "):
        raise GitError(f"{path} is not a complete worktree: its .git file is not a gitdir link")
    git_dir = gitfile.removeprefix("gitdir: ").strip()
    run_git([f"--git-dir={git_dir}", f"--work-tree={path}", "checkout", "--force", "--quiet"],
            cwd=path)


def worktree_add_detached(root: Path, path: Path, commit: str) -> None:
    """A new worktree at ``path`` with a detached HEAD at ``commit`` (no branch): a merge queue
    check slot."""
    run_git(["worktree", "add", "--quiet", "--detach", "--", str(path), check_rev(commit)],
            cwd=root)


def worktree_remove(root: Path, path: Path, *, force: bool = False) -> None:
    run_git(["worktree", "remove", *(["--force"] if force else []), "--", str(path)], cwd=root)


def worktree_prune(root: Path) -> None:
    run_git(["worktree", "prune"], cwd=root)


def worktree_unlock(root: Path, path: Path) -> None:
    run_git(["worktree", "unlock", "--", str(path)], cwd=root)


# --- files a new worktree may copy -----------------------------------------------------------


def untracked_matching(root: Path, exclude_file: Path) -> list[str]:
    """Untracked files (paths relative to ``root``) matched by the patterns in ``exclude_file``,
    ignoring .gitignore."""
    out = run_git(["ls-files", "-z", "--others", "--ignored", f"--exclude-from={exclude_file}"],
                  cwd=root).stdout
    return [p for p in out.split("\0") if p]


def ignored_among(root: Path, paths: Sequence[str]) -> list[str]:
    """Those of ``paths`` that .gitignore (and info/exclude, core.excludesFile) ignore."""
    if not paths:
        return []
    proc = run_git(["check-ignore", "-z", "--stdin"], cwd=root, check=False,
                   input="".join(p + "\0" for p in paths))
    if proc.returncode not in (0, 1):  # 1: none of them is ignored
        raise GitCommandError(f"git check-ignore failed: {reason(proc)}", argv=proc.args,
                              returncode=proc.returncode, stderr=proc.stderr)
    return [p for p in proc.stdout.split("\0") if p]
