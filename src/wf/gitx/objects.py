"""In-process git object work through libgit2 (pygit2), for the merge queue's hot path.

:class:`ObjectDb` reads and merges objects (admission, candidate chains) and
:class:`WorktreeCheckout` moves a check slot to a candidate, each well under the cost of the git
processes they replace (~4 ms a process; a slot's checkout and clean ~30 ms under load). This is
the only module that imports pygit2, and only once one of them is first used: loading libgit2
costs ~50 ms, which commands that never run the queue do not pay.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wf.errors import GitError
from wf.gitx.commands import check_rev


@dataclass(frozen=True)
class MergeTreeResult:
    """A merge of two commits made in memory (:meth:`ObjectDb.merge_tree`). ``tree`` is the
    merged tree when ``clean`` and written (None otherwise); ``messages`` are lines in git's
    wording about each conflict (``CONFLICT (content): Merge conflict in a.py``), none for a
    clean merge."""

    clean: bool
    tree: str | None
    conflicted_files: tuple[str, ...] = ()
    messages: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChangedFile:
    """One changed file as ``git diff --numstat`` counts it: lines added and deleted, both None
    for a binary file; ``old_path`` is the path before a rename."""

    path: str
    added: int | None
    deleted: int | None
    old_path: str | None = None


class ObjectDb:
    """In-process reads and merges of one repository's objects through pygit2 (libgit2).

    The merge queue admits and merges hundreds of entries per minute; one git process per
    step costs ~4 ms, libgit2 well under 1 ms. Only objects are written (trees and commits,
    no refs, no index, no worktree), so this never competes with the git CLI for locks.
    Merges are libgit2's, which can differ from git's ort in rename corner cases: the queue
    checks and lands the very tree it built, so the rule "only tested trees land" holds either
    way. Calls are serialised by a lock: a pygit2 Repository is not safe to share across
    threads at once."""

    def __init__(self, root: Path) -> None:
        import pygit2

        self._pygit2 = pygit2
        try:
            self.repo = pygit2.Repository(str(root))
        except pygit2.GitError as exc:
            raise GitError(f"cannot open the repository at {root}: {exc}") from exc
        self.lock = threading.Lock()

    def _commit(self, rev: str) -> Any:
        try:
            return self.repo.revparse_single(check_rev(rev)).peel(self._pygit2.Commit)
        except (KeyError, ValueError, self._pygit2.GitError) as exc:
            raise GitError(f"unknown revision {rev!r}: not a commit of this repository") from exc

    def resolve(self, rev: str) -> str:
        with self.lock:
            return str(self._commit(rev).id)

    def merge_base(self, a: str, b: str) -> str | None:
        with self.lock:
            base = self.repo.merge_base(self._commit(a).id, self._commit(b).id)
            return None if base is None else str(base)

    def is_ancestor(self, a: str, b: str) -> bool:
        with self.lock:
            ca, cb = self._commit(a).id, self._commit(b).id
            return ca == cb or self.repo.descendant_of(cb, ca)

    def commits_beyond(self, base: str, head_rev: str) -> int:
        with self.lock:
            ahead, _behind = self.repo.ahead_behind(self._commit(head_rev).id,
                                                    self._commit(base).id)
            return ahead

    def diff_numstat(self, base: str, head_rev: str) -> tuple[ChangedFile, ...]:
        with self.lock:
            diff = self.repo.diff(self._commit(base).tree, self._commit(head_rev).tree)
            diff.find_similar()
            out = []
            for patch in diff:
                delta = patch.delta
                renamed = delta.status == self._pygit2.enums.DeltaStatus.RENAMED
                if delta.is_binary:
                    added = deleted = None
                else:
                    _context, added, deleted = patch.line_stats
                out.append(ChangedFile(delta.new_file.path, added, deleted,
                                       delta.old_file.path if renamed else None))
            return tuple(out)

    def own_commits(self, head: str, fork: str, limit: int = 1000) -> frozenset[str] | None:
        """The commits after ``fork`` up to ``head`` when they are one line of single-parent
        commits (the usual shape of a task's branch); None otherwise, or past ``limit``."""
        with self.lock:
            commit, stop = self._commit(head), self._commit(fork).id
            own: set[str] = set()
            while commit.id != stop:
                if len(commit.parent_ids) != 1 or len(own) >= limit:
                    return None
                own.add(str(commit.id))
                commit = commit.parents[0]
            return frozenset(own)

    def changed_paths(self, old: str, new: str) -> frozenset[str]:
        """The paths that differ between two trees (or commits' trees), both sides of each."""
        with self.lock:
            try:
                trees = [self.repo[check_rev(rev)].peel(self._pygit2.Tree) for rev in (old, new)]
            except (KeyError, ValueError, self._pygit2.GitError) as exc:
                raise GitError(f"cannot compare {old[:10]} with {new[:10]}: {exc}") from exc
            return frozenset(path for delta in self.repo.diff(*trees).deltas
                             for path in (delta.old_file.path, delta.new_file.path))

    def merge_tree(self, onto: str, branch: str, *, base: str | None = None,
                   write: bool = True) -> MergeTreeResult:
        """``branch`` merged into ``onto`` from their merge base (``base`` when the caller
        knows it already), in memory. Without ``write`` a clean merge's tree is not written
        (``tree`` is None): half the cost, for a caller that only asks whether it conflicts."""
        with self.lock:
            ours, theirs = self._commit(onto), self._commit(branch)
            if base is None:
                base = self.repo.merge_base(ours.id, theirs.id)
            else:
                base = self._commit(base).id
            if base is None:
                raise GitError(f"{branch} shares no history with {onto}")
            index = self.repo.merge_trees(self.repo[base].tree, ours.tree, theirs.tree)
            if index.conflicts is not None:
                files: list[str] = []
                messages: list[str] = []
                for ancestor, mine, other in index.conflicts:
                    path = next(e.path for e in (ancestor, mine, other) if e is not None)
                    if path not in files:
                        files.append(path)
                        messages.append(_conflict_message(path, ancestor, mine, other,
                                                          onto, branch))
                return MergeTreeResult(clean=False, tree=None, conflicted_files=tuple(files),
                                       messages=tuple(messages))
            return MergeTreeResult(clean=True,
                                   tree=str(index.write_tree(self.repo)) if write else None)

    def create_commit(self, tree: str, parents: Sequence[str], message: str) -> str:
        """A commit object (no ref moves), signed by git's configured identity or wf's."""
        with self.lock:
            sig = self._signature()
            oid = self.repo.create_commit(None, sig, sig, message,
                                          self._pygit2.Oid(hex=tree),
                                          [self._pygit2.Oid(hex=p) for p in parents])
            return str(oid)

    def _signature(self) -> Any:
        name = os.environ.get("GIT_COMMITTER_NAME")
        email = os.environ.get("GIT_COMMITTER_EMAIL")
        if not (name and email):
            try:
                cfg = self.repo.config
                name, email = name or cfg["user.name"], email or cfg["user.email"]
            except (KeyError, self._pygit2.GitError):
                name, email = "wf", "wf@localhost"
        return self._pygit2.Signature(name, email)


def _conflict_message(path: str, ancestor: Any, mine: Any, other: Any, onto: str,
                      branch: str) -> str:
    """git's wording for a conflict, from the index stages libgit2 reports."""
    if mine is None:
        return f"CONFLICT (modify/delete): {path} deleted in {onto} and modified in {branch}."
    if other is None:
        return f"CONFLICT (modify/delete): {path} deleted in {branch} and modified in {onto}."
    kind = "add/add" if ancestor is None else "content"
    return f"CONFLICT ({kind}): Merge conflict in {path}"


_object_dbs: dict[str, ObjectDb] = {}
_object_dbs_lock = threading.Lock()


def object_db(root: Path) -> ObjectDb:
    """The shared ObjectDb of the repository at ``root``."""
    key = str(Path(root).resolve())
    with _object_dbs_lock:
        if key not in _object_dbs:
            _object_dbs[key] = ObjectDb(Path(key))
        return _object_dbs[key]


class WorktreeCheckout:
    """One worktree opened in-process and moved from commit to commit:
    ``git checkout -f --detach COMMIT && git clean -fd`` without two git processes (ignored
    files stay, the way a CI cache would).

    Only for a worktree no other process uses (the merge queue's check slots, which the engine
    lock keeps to one process): opening it deletes the ``index.lock``/``HEAD.lock`` a process
    killed in the middle of a checkout left behind. Not safe to share across threads at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._repo: Any = None  # opened on the first checkout, again after a failed one

    def checkout(self, commit: str) -> None:
        """Make the worktree's files, index and detached HEAD exactly ``commit``'s."""
        import pygit2

        strategy = (pygit2.enums.CheckoutStrategy.FORCE
                    | pygit2.enums.CheckoutStrategy.REMOVE_UNTRACKED)
        try:
            repo = self._repo
            if repo is None:
                repo = self._repo = pygit2.Repository(str(self.path))
                for name in ("index.lock", "HEAD.lock"):
                    (Path(repo.path) / name).unlink(missing_ok=True)
            target = repo[check_rev(commit)].peel(pygit2.Commit)
            repo.checkout_tree(target.tree, strategy=strategy)
            repo.set_head(target.id)
        except (KeyError, ValueError, pygit2.GitError) as exc:
            self._repo = None
            raise GitError(f"checkout of {commit[:10]} in {self.path}: {exc}") from exc
