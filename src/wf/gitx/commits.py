"""Work on a worktree's files through git: their state, commits made from them, merges into
them, snapshots and diffs of them, and moves of the checked-out files to another commit.

Commits and merges made here use git's configured identity, or wf's own when git has none
(:func:`~wf.gitx.commands.identity_args`), and run no hooks: the merge queue runs the checks.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from wf.gitx.commands import (
    GitCommandError,
    check_rev,
    identity_args,
    output,
    reason,
    run_git,
)
from wf.gitx.refs import git_path, head, resolve_commit, rev_parse

# --- state ---------------------------------------------------------------------------------


def is_dirty(path: Path) -> bool:
    """True when tracked files changed or untracked, not-ignored files exist."""
    out = run_git(
        ["--no-optional-locks", "status", "--porcelain", "-z", "--untracked-files=normal"],
        cwd=path,
    ).stdout
    return bool(out)


def has_tracked_changes(path: Path) -> bool:
    """Uncommitted changes to tracked files (staged or not); untracked files do not count."""
    return bool(output(["status", "--porcelain", "--untracked-files=no"], path))


# --- commits and merges ----------------------------------------------------------------------


def init_repo(path: Path, message: str | None = None, *, branch: str = "main") -> str | None:
    """``git init`` at ``path`` (existing repositories are left as they are) on ``branch``; with
    ``message``, commit every file there. Returns the new commit's sha, if one was made."""
    path.mkdir(parents=True, exist_ok=True)
    run_git(["init", "--quiet", f"--initial-branch={check_rev(branch)}"], cwd=path)
    return commit_all(path, message) if message is not None else None


def commit_all(path: Path, message: str, trailers: Mapping[str, str] | None = None) -> str | None:
    """Stage everything (respecting .gitignore) and commit with ``trailers``. Returns the new sha,
    or None when there was nothing to commit. Hooks are skipped: this records an agent's work,
    the merge queue runs the checks."""
    run_git(["add", "-A"], cwd=path)
    if run_git(["diff", "--cached", "--quiet"], cwd=path, check=False).returncode == 0:
        return None
    args = [*identity_args(path), "commit", "--quiet", "--no-verify", "-F", "-"]
    for key, value in (trailers or {}).items():
        args += ["--trailer", f"{key}: {value}"]
    run_git(args, cwd=path, input=message)
    return head(path)


def merge_into_worktree(path: Path, refs: Sequence[str]) -> bool:
    """Merge ``refs`` into the branch checked out at ``path``, one after the other. On a conflict
    every merge of this call is undone and False is returned."""
    start = head(path)
    ident = identity_args(path)
    for ref in refs:
        proc = run_git([*ident, "merge", "--no-edit", "--no-verify", "--end-of-options",
                        check_rev(ref)], cwd=path, check=False)
        if proc.returncode == 0:
            continue
        in_merge = rev_parse(path, "MERGE_HEAD") is not None
        if in_merge:
            run_git(["merge", "--abort"], cwd=path)
        if head(path) != start:
            run_git(["reset", "--keep", start], cwd=path)  # keeps unrelated local changes
        if in_merge:
            return False
        raise GitCommandError(f"git merge failed: {reason(proc)}", argv=proc.args,
                              returncode=proc.returncode, stderr=proc.stderr)
    return True


@contextmanager
def _temporary_index(path: Path, *, exact: bool) -> Iterator[dict[str, str]]:
    """Environment for git commands that use a throw-away index of the worktree: a copy of its
    own (stat info kept: ``add -A`` then hashes only files whose stat changed), or, ``exact``,
    HEAD's entries without any stat info, so that every file is read."""
    real = git_path(path, "index")
    tmp = real.with_name(f"wf-index-{uuid.uuid4().hex}")
    env = {"GIT_INDEX_FILE": str(tmp)}
    try:
        if exact:
            run_git(["read-tree", "HEAD"], cwd=path, env=env)
        elif real.exists():
            shutil.copyfile(real, tmp)
        yield env
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + ".lock")):
            leftover.unlink(missing_ok=True)


def snapshot_tree(path: Path, *, exact: bool = True) -> str:
    """Tree id of the working tree as it is, untracked files included, ignored ones not.
    Neither the real index nor any ref is touched. ``exact`` (for backups) reads every file:
    with the index's stat info, a file rewritten with the same size within the same clock tick
    as its recorded state looks unchanged to git, and a backup would miss the change. Without
    it (a diff to show), only files whose stat changed are read."""
    with _temporary_index(path, exact=exact) as env:
        run_git(["add", "-A"], cwd=path, env=env)
        return output(["write-tree"], path, env=env)


def tree_of(root: Path, rev: str) -> str:
    return output(["rev-parse", "--verify", "--end-of-options", f"{check_rev(rev)}^{{tree}}"],
                  root)


def commit_tree(root: Path, tree: str, parents: Sequence[str], message: str) -> str:
    """Create a commit object (no ref moves) and return its sha."""
    args = [*identity_args(root), "commit-tree", check_rev(tree)]
    for parent in parents:
        args += ["-p", check_rev(parent)]
    return output(args, root, input=message)


def merge_leaving_conflicts(path: Path, ref: str) -> tuple[str, ...]:
    """Merge ``ref`` into the worktree at ``path`` and leave any conflict in place for someone
    to resolve (the merge completes with the next commit). Returns the conflicted files."""
    proc = run_git([*identity_args(path), "merge", "--no-edit", "--no-verify",
                    "--end-of-options", check_rev(ref)], cwd=path, check=False)
    if proc.returncode == 0:
        return ()
    if rev_parse(path, "MERGE_HEAD") is None:
        raise GitCommandError(f"git merge failed: {reason(proc)}", argv=proc.args,
                              returncode=proc.returncode, stderr=proc.stderr)
    files = output(["diff", "--name-only", "--diff-filter=U", "-z"], path)
    return tuple(f for f in files.split("\0") if f)


# --- moving the checked-out files ------------------------------------------------------------


def reset_hard(path: Path, commit: str) -> None:
    """``git reset --hard COMMIT`` then ``git clean -fd``: ignored files (a copied .env) stay."""
    sha = resolve_commit(path, commit)
    run_git(["reset", "--quiet", "--hard", sha, "--"], cwd=path)
    run_git(["clean", "-fdq"], cwd=path)


def read_tree_refusal(path: Path, old: str, new: str) -> str | None:
    """Why :func:`read_tree_update` would fail (git's reason, e.g. an untracked file it would
    overwrite), or None: a dry run that touches nothing."""
    proc = run_git(["read-tree", "-n", "-m", "-u", check_rev(old), check_rev(new)], cwd=path,
                   check=False)
    return reason(proc) if proc.returncode != 0 else None


def read_tree_update(path: Path, old: str, new: str) -> None:
    """Bring the index and files of the worktree at ``path`` from ``old`` to ``new`` (a
    two-tree merge: local changes that do not conflict are kept)."""
    run_git(["read-tree", "-m", "-u", check_rev(old), check_rev(new)], cwd=path)


# --- diffs ---------------------------------------------------------------------------------


def diff(root: Path, base: str, head_rev: str, stat: bool = False) -> str:
    """Diff between two commits (or trees)."""
    args = ["diff", "--no-color", "--no-ext-diff", *(["--stat"] if stat else []),
            "--end-of-options", check_rev(base), check_rev(head_rev), "--"]
    return run_git(args, cwd=root).stdout


def diff_worktree(path: Path, base: str, stat: bool = False) -> str:
    """Diff from ``base`` to the working tree as it is, uncommitted and untracked files included."""
    return diff(path, base, snapshot_tree(path, exact=False), stat=stat)
