"""Create, adopt, back up and remove the worktree and branch of each task.

Names are deterministic (branch ``wf/<task-id>``, folder ``<worktree_root>/<task-id>``), so every
operation is idempotent and a restarted engine can reconcile by looking: ``ensure`` adopts what
exists, ``remove`` of a removed worktree is a no-op. Nothing here deletes work silently: a
folder wf did not create is never touched, a dirty worktree is only removed with ``force`` and
after its changes were saved under ``refs/wf-backup/<task-id>/<unix-ts>``, and a branch with
commits found nowhere else is only deleted with ``force`` and after the same kind of backup.

``git worktree add/remove/prune`` run under the repository's worktree lock
(``wf.worktrees.locks``; ``repo_lock`` and ``fetch`` are also importable from here). Backup refs
and branch safety are in ``wf.worktrees.backups``; ports and the setup command in
``wf.worktrees.setup``.

All methods block; the engine calls them from worker threads.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

from wf import gitx
from wf.errors import ConfigError, GitError
from wf.worktrees import backups, setup_command
from wf.worktrees.backups import checked_task_id
from wf.worktrees.include import INCLUDE_FILE, copy_included_files
from wf.worktrees.locks import fetch, repo_lock
from wf.worktrees.processes import processes_in, stop_processes_in

BRANCH_PREFIX = "wf/"
POPULATING = "wf: populating"  # lock reason of a worktree registered but not checked out yet


@dataclass(frozen=True)
class WorktreeInfo:
    """A task's worktree. ``base_commit`` is where its branch forked from the base (or from the
    ``start_point``); ``created`` is False when an existing worktree was adopted."""

    path: Path
    branch: str
    base_commit: str
    created: bool


@dataclass(frozen=True)
class RemoveResult:
    removed: bool
    backup_ref: str | None = None
    stopped_pids: tuple[int, ...] = ()


@dataclass(frozen=True)
class DeleteResult:
    deleted: bool
    backup_ref: str | None
    reason: str


@dataclass(frozen=True)
class Orphan:
    """A worktree or ``wf/*`` branch that no known task owns; ``safe`` when removing it would
    lose nothing."""

    kind: Literal["worktree", "branch"]
    task_id: str
    path_or_ref: str
    safe: bool
    reason: str


@dataclass(frozen=True)
class Changes:
    commits: int
    dirty: bool


class WorktreeManager:
    """Worktrees of one repository. ``repo_root`` is the top of its main working tree (where
    ``.worktreeinclude`` is read); task worktrees go in ``worktree_root``."""

    def __init__(
        self,
        repo_root: Path,
        worktree_root: Path,
        *,
        port_range: tuple[int, int] = (20000, 29999),
        clock: Callable[[], float] = time.time,
    ) -> None:
        low, high = port_range
        if not 0 < low <= high <= 65535:
            raise ConfigError(f"invalid port range {low}-{high}")
        self.repo_root = Path(repo_root).resolve()
        self.worktree_root = Path(worktree_root).resolve()
        self.port_range = (low, high)
        self._clock = clock
        self._remote_refs: dict[str, tuple[str, str] | None] = {}

    @cached_property
    def _common_dir(self) -> Path:
        return gitx.common_dir(self.repo_root)

    @property
    def clock(self) -> Callable[[], float]:
        return self._clock

    @property
    def common_dir(self) -> Path:
        return self._common_dir

    def fetch_if_remote(self, ref: str) -> None:
        """Fetch ``ref`` first when it is a remote-tracking ref (once per manager)."""
        self._fetch_if_remote(ref)

    def fork_point(self, branch: str, *refs: str) -> str:
        """Where ``branch`` forked from the first of ``refs`` that shares history with it."""
        return self._fork_point(branch, *refs)

    def _lock(self, name: str, *, shared: bool = False) -> AbstractContextManager[None]:
        return repo_lock(self._common_dir, name, shared=shared)

    def branch_for(self, task_id: str) -> str:
        return BRANCH_PREFIX + checked_task_id(task_id)

    def path_for(self, task_id: str) -> Path:
        return self.worktree_root / checked_task_id(task_id)

    # --- create or adopt ---------------------------------------------------------------

    def ensure(self, task_id: str, base_ref: str, *, start_point: str | None = None,
               path: Path | None = None) -> WorktreeInfo:
        """Return the task's worktree, creating its branch (from ``start_point`` if given, else
        ``base_ref``; a remote-tracking ref is fetched first) and folder when missing.
        Idempotent. Raises GitError when the folder exists but is not this task's worktree.

        Only registering the worktree holds the repository's worktree lock; checking out its
        files (most of the time, in a large repository) runs outside it, in parallel with
        other tasks. Until that is done the worktree stays locked ``wf: populating``, so a
        crash half-way is recognised and finished by the next ``ensure``. ``path``: where the
        worktree goes instead of ``<worktree_root>/<task-id>`` (a pooled worktree's folder)."""
        branch = self.branch_for(task_id)
        path = Path(path) if path is not None else self.path_for(task_id)
        fork_from = gitx.check_rev(start_point or base_ref)
        gitx.check_rev(base_ref)
        root = self.repo_root
        new_branch = not gitx.branch_exists(root, branch)
        if new_branch:
            self._fetch_if_remote(fork_from)  # outside the worktree lock: it may be slow
        with self._lock("worktree"):
            base_commit = self._register(path, branch, fork_from, base_ref, new_branch)
            if base_commit is None:  # this task's worktree, complete: adopt it
                return WorktreeInfo(path, branch, self._fork_point(branch, fork_from, base_ref),
                                    created=False)
        gitx.populate_worktree(path)
        with self._lock("worktree"):
            gitx.worktree_unlock(root, path)
        try:
            copy_included_files(root, path)
        except OSError as exc:
            raise GitError(f"could not copy the {INCLUDE_FILE} files into {path}: {exc}") from exc
        return WorktreeInfo(path, branch, base_commit, created=True)

    def _register(self, path: Path, branch: str, fork_from: str, base_ref: str,
                  new_branch: bool) -> str | None:
        """Register the task's worktree, unpopulated and locked; return the commit its branch
        forks from, or None when a complete worktree of the branch is already there. Must
        hold the worktree lock."""
        root = self.repo_root
        fresh = not os.path.lexists(path) and not (self._common_dir / "worktrees" / path.name
                                                   ).exists()
        if fresh and new_branch:
            # The common case, in one git command. Should git refuse (a worktree registered
            # under another name, a branch made meanwhile), the careful path below says why.
            base_commit = self._resolve_base(fork_from)
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                gitx.worktree_add_unpopulated(root, path, branch, lock_reason=POPULATING,
                                              create_at=base_commit)
                return base_commit
            except GitError:
                pass
        entry = self._adoptable_entry(path, branch)
        if entry is not None and entry.locked != POPULATING:
            return None
        if gitx.branch_exists(root, branch):
            base_commit = self._fork_point(branch, fork_from, base_ref)
        else:
            base_commit = self._resolve_base(fork_from)
            gitx.create_branch(root, branch, base_commit)
        if entry is None:
            self._add_worktree(path, branch)
        return base_commit

    def _resolve_base(self, ref: str) -> str:
        sha = gitx.rev_parse(self.repo_root, ref)
        if sha is None:
            raise GitError(f"base ref {ref!r} does not name a commit")
        return sha

    def _fetch_if_remote(self, ref: str) -> None:
        if ref not in self._remote_refs:  # remotes do not change during a run
            self._remote_refs[ref] = gitx.split_remote_ref(self.repo_root, ref)
        remote_ref = self._remote_refs[ref]
        if remote_ref is not None:
            fetch(self.repo_root, *remote_ref)

    def _adoptable_entry(self, path: Path, branch: str) -> gitx.WorktreeEntry | None:
        """The registered worktree at ``path`` if it is ``branch``'s; None when there is none
        (a vanished or half-created one is cleaned up first). Must hold the worktree lock."""
        root = self.repo_root
        entries = gitx.list_worktrees(root)
        entry = _entry_at(entries, path)
        # A `git worktree add` that died half-way: git's own lock, or ours with its records
        # incomplete. (Ours complete is adopted and populated again.)
        half_made = entry is not None and (
            (entry.branch == branch and entry.locked == "initializing")
            or (entry.locked == POPULATING and entry.branch != branch))
        if entry is not None and (not path.exists() or half_made):
            # Folder deleted by hand, or a half-made worktree of ours (we hold the lock, so
            # no live add is running): forget it and create it afresh.
            if entry.locked is not None:
                gitx.worktree_unlock(root, path)
            if path.exists():
                gitx.worktree_remove(root, path, force=True)
            gitx.worktree_prune(root)
            entries = gitx.list_worktrees(root)
            entry = _entry_at(entries, path)
        if entry is not None:
            if entry.branch != branch:
                holder = f"branch {entry.branch}" if entry.branch else "a detached HEAD"
                raise GitError(f"{path} is a worktree of {holder}, not of {branch}",
                               hint="remove that worktree or choose another worktree root")
            return entry
        holder = next((e for e in entries if e.branch == branch), None)
        if holder is not None:
            raise GitError(f"branch {branch} is already checked out at {holder.path}")
        if os.path.lexists(path):
            raise GitError(f"{path} exists but is not a git worktree of this repository",
                           hint="move it away; wf never deletes a folder it did not create")
        return None

    def _add_worktree(self, path: Path, branch: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            gitx.worktree_add_unpopulated(self.repo_root, path, branch, lock_reason=POPULATING)
        except GitError:
            # Another git (not wf) may have raced us; git cleaned up its half-made worktree.
            gitx.worktree_prune(self.repo_root)
            gitx.worktree_add_unpopulated(self.repo_root, path, branch, lock_reason=POPULATING)

    def _fork_point(self, branch: str, *refs: str) -> str:
        for ref in refs:
            if gitx.rev_parse(self.repo_root, ref) is not None:
                base = gitx.merge_base(self.repo_root, ref, f"refs/heads/{branch}")
                if base is not None:
                    return base
        names = " or ".join(dict.fromkeys(refs))
        raise GitError(f"branch {branch} shares no history with {names}")

    # --- setup -------------------------------------------------------------------------

    def run_setup(self, path: Path, command: Sequence[str], env: Mapping[str, str],
                  timeout: float | None,
                  check_cancelled: Callable[[], None] = lambda: None) -> tuple[bool, str]:
        """Run the task's setup ``command`` in ``path``: see :func:`wf.worktrees.setup_command.run_setup`.
        Returns (exit code was 0, the tail of its output)."""
        return setup_command.run_setup(path, command, env, timeout, check_cancelled)

    # --- inspect and reset -------------------------------------------------------------

    def changes(self, path: Path, base_commit: str) -> Changes:
        """Commits on HEAD beyond ``base_commit``, and whether uncommitted changes exist."""
        return Changes(commits=gitx.commits_beyond(path, base_commit, "HEAD"),
                       dirty=gitx.is_dirty(path))

    def processes_in(self, path: Path) -> list[int]:
        return processes_in(path)

    def stop_processes_in(self, path: Path, grace: float = 3.0) -> list[int]:
        return stop_processes_in(path, grace)

    def save_backup(self, path: Path, task_id: str, label: str | None = None,
                    base: str | None = None) -> str | None:
        """Save the worktree's state (HEAD plus uncommitted and untracked changes) under
        ``refs/wf-backup/<task-id>/<ts>[-<label>]``; None when there is nothing to save. See
        :func:`wf.worktrees.backups.save_backup`."""
        return backups.save_backup(self.repo_root, path, task_id, label, base, self._clock)

    def reset_to(self, path: Path, commit: str) -> None:
        """Hard-reset the worktree to ``commit`` and delete untracked files; ignored files (a
        copied .env) stay. Save what matters with :meth:`save_backup` first."""
        gitx.reset_hard(path, commit)

    def _write_backup_ref(self, task_id: str, commit: str, label: str | None = None) -> str:
        return backups.write_backup_ref(self.repo_root, task_id, commit, label, self._clock)

    # --- remove ------------------------------------------------------------------------

    def remove(self, task_id: str, *, force: bool = False, grace: float = 3.0) -> RemoveResult:
        """Stop the processes inside the task's worktree (SIGTERM, SIGKILL after ``grace``
        seconds) and remove it (the branch stays).
        Uncommitted changes make it refuse unless ``force``; with ``force`` they are saved to a
        backup ref first. Removing a worktree that does not exist is a no-op.

        The common case (no force, nothing running inside) goes straight to
        ``git worktree remove``, which itself refuses a folder that is not a worktree of this
        repository, a locked one and a dirty one. Removals hold the worktree lock shared: they
        run in parallel with each other (deleting files is most of their time) but never
        beside an add, a list or a prune, whose reads could trip over the records of a
        worktree being deleted. Anything unusual is handled by the careful way below."""
        path = self.path_for(task_id)
        if not force and (path / ".git").is_file() and not processes_in(path):
            try:
                with self._lock("worktree", shared=True):
                    gitx.worktree_remove(self.repo_root, path)
                return RemoveResult(removed=True)
            except gitx.GitCommandError as exc:
                _raise_if_dirty(exc, path)
        with self._lock("worktree"):
            entry = _entry_at(gitx.list_worktrees(self.repo_root), path)
            if entry is None:
                if os.path.lexists(path):
                    raise GitError(f"{path} is not a git worktree of this repository; "
                                   "wf leaves it alone")
                return RemoveResult(removed=False)
            if entry.locked is not None and (entry.locked == POPULATING or not path.exists()):
                # Never handed to an agent (or deleted by hand): nothing in it to keep.
                gitx.worktree_unlock(self.repo_root, path)
            if not path.exists():  # deleted by hand: only git's record is left
                gitx.worktree_prune(self.repo_root)
                return RemoveResult(removed=True)
            if entry.locked == POPULATING:
                gitx.worktree_remove(self.repo_root, path, force=True)
                return RemoveResult(removed=True)
        self._refuse_if_dirty(path, force)  # before stopping anything
        stopped = tuple(stop_processes_in(path, grace))
        backup = self.save_backup(path, task_id) if force else None
        with self._lock("worktree"):
            try:
                gitx.worktree_remove(self.repo_root, path, force=force)
            except gitx.GitCommandError as exc:  # the stopped processes wrote on their way out
                _raise_if_dirty(exc, path)
                raise
        return RemoveResult(removed=True, backup_ref=backup, stopped_pids=stopped)

    def _refuse_if_dirty(self, path: Path, force: bool) -> None:
        if not force and gitx.is_dirty(path):
            raise GitError(f"worktree {path} has uncommitted changes; commit them or use --force")

    # --- branches ----------------------------------------------------------------------

    def branch_is_safe_to_delete(self, task_id: str,
                                 targets: Sequence[str] | None = None) -> tuple[bool, str]:
        """Whether every commit of the task's branch is also in one of ``targets`` (default: the
        branch checked out in the main worktree) or in a remote-tracking branch."""
        branch = self.branch_for(task_id)
        tip = gitx.rev_parse(self.repo_root, f"refs/heads/{branch}")
        if tip is None:
            return True, f"branch {branch} does not exist"
        return self._safety(tip, targets)

    def _safety(self, tip: str, targets: Sequence[str] | None) -> tuple[bool, str]:
        return backups.branch_safety(self.repo_root, tip, targets)

    def delete_branch(self, task_id: str, *, force: bool = False,
                      targets: Sequence[str] | None = None) -> DeleteResult:
        """Delete the task's branch when it is safe (see :meth:`branch_is_safe_to_delete`); an
        unsafe one only with ``force``, after writing ``refs/wf-backup/<task-id>/<ts>`` at its
        tip. A branch still checked out in a worktree is an error: remove the worktree first."""
        branch = self.branch_for(task_id)
        ref = f"refs/heads/{branch}"
        tip = gitx.rev_parse(self.repo_root, ref)
        if tip is None:
            return DeleteResult(False, None, f"branch {branch} does not exist")
        safe, reason = self._safety(tip, targets)
        if not safe and not force:
            return DeleteResult(False, None, reason)
        with self._lock("worktree"):  # no worktree may check it out meanwhile
            holder = next((e for e in gitx.list_worktrees(self.repo_root)
                           if e.branch == branch), None)
            if holder is not None:
                raise GitError(f"branch {branch} is checked out in worktree {holder.path}; "
                               "remove the worktree first")
            backup = None if safe else self._write_backup_ref(task_id, tip)
            # Compare-and-swap: only the tip judged above; one that moved since is an error.
            gitx.delete_ref(self.repo_root, ref, tip)
        return DeleteResult(True, backup, reason)

    # --- garbage -----------------------------------------------------------------------

    def orphans(self, known_task_ids: set[str]) -> list[Orphan]:
        """Worktrees under ``worktree_root`` and ``wf/*`` branches whose task is not known."""
        found: list[Orphan] = []
        with self._lock("worktree"):
            entries = gitx.list_worktrees(self.repo_root)
        for entry in entries:
            if entry.path.resolve().parent != self.worktree_root or entry.path.name[:1] == ".":
                continue  # not a task's (pooled worktrees and the queue's slots start with .)
            task_id = entry.path.name
            if task_id in known_task_ids:
                continue
            if not entry.path.exists():
                safe, reason = True, "folder is gone; only git's record of it is left"
            elif entry.locked == POPULATING:
                safe, reason = True, "its files were never checked out"
            elif gitx.is_dirty(entry.path):
                safe, reason = False, "uncommitted changes"
            else:
                safe, reason = True, "no uncommitted changes"
            found.append(Orphan("worktree", task_id, str(entry.path), safe, reason))
        for name, sha in sorted(gitx.list_branches(self.repo_root, BRANCH_PREFIX).items()):
            task_id = name.removeprefix(BRANCH_PREFIX)
            if task_id not in known_task_ids:
                safe, reason = self._safety(sha, None)
                found.append(Orphan("branch", task_id, f"refs/heads/{name}", safe, reason))
        return found


def _raise_if_dirty(exc: gitx.GitCommandError, path: Path) -> None:
    """Turn git's refusal to remove a worktree with changes into wf's message."""
    if "modified or untracked files" in exc.stderr:
        raise GitError(f"worktree {path} has uncommitted changes; "
                       "commit them or use --force") from exc


def _entry_at(entries: list[gitx.WorktreeEntry], path: Path) -> gitx.WorktreeEntry | None:
    return next((e for e in entries if e.path.resolve() == path), None)

