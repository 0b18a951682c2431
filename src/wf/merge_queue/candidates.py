"""Candidate commits: the target with a prefix of the queue merged on top, one merge commit per
entry, built in git's object database without touching any worktree.

``C_0`` is the target commit and ``C_i`` merges entry ``i`` into ``C_(i-1)``, so every prefix of
the queue is one commit of the chain. After the queue lands ``C_g``, the target *is* ``C_g`` and
the rest of the chain stays valid; only an eviction forces a rebuild from the evicted entry on.
The landed commit is always the very commit whose tree was checked.

Each merge needs the merge base of ``C_(i-1)`` and the entry, and libgit2 finds it by walking
back from every entry merged so far (~0.4 ms an entry at 50). When admission has already found
where the entry leaves the chain's base (a :class:`Fork`), that fork *is* the merge base,
provided the branch since is one line of single-parent commits and shares none of them with
the entries before it in the chain (whose own forks are known the same way): every ancestor of
the entry is then either one of its own commits, which nothing before it contains, or an
ancestor of the fork, which the base contains. Anything else (a stacked branch, a merge in a
branch, a base that moved) is left to libgit2's search.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from wf import gitx


@dataclass(frozen=True)
class Fork:
    """Where an entry's branch leaves ``onto`` (the target it was admitted on): ``commit`` is
    their merge base, ``own`` the branch's commits since (one single-parent line)."""

    onto: str
    commit: str
    own: frozenset[str]


@dataclass(frozen=True)
class Entry:
    task_id: str
    branch: str
    head: str  # the branch tip the entry was admitted with
    fork: Fork | None = field(default=None, compare=False)  # a hint: the same entry without it


@dataclass
class Chain:
    """The prefix commits of ``entries`` on ``base``; ``commits[i]`` holds the first i+1."""

    base: str
    entries: list[Entry] = field(default_factory=list)
    commits: list[str] = field(default_factory=list)
    trees: list[str] = field(default_factory=list)

    def prefix(self, size: int) -> tuple[str, str]:
        """(commit, tree) of the target plus the first ``size`` entries."""
        return self.commits[size - 1], self.trees[size - 1]


@dataclass(frozen=True)
class Conflict:
    """Entry ``index`` does not merge onto the entries before it."""

    index: int
    files: tuple[str, ...]


class ChainBuilder:
    """Builds and reuses chains, as deep as asked: the runner asks for what the plan needs
    before the checks start (a merge costs ~2 ms, and every entry after an evicted one is
    merged again), and for the rest while they run. Blocking: call from a worker thread."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.chain: Chain | None = None
        self.variant: Chain | None = None  # the last chain built without one entry

    def build(self, base: str, entries: list[Entry], depth: int) -> Chain | Conflict:
        """The chain of ``entries`` on ``base``, at least ``depth`` entries long (as many as
        still valid when more are kept), reusing the longest still-valid part of the previous
        one or of the last variant (same base and same entries in the same order, or a base
        that is one of its commits, as after a landing)."""
        chain = max((_reusable(old, base, entries) for old in (self.chain, self.variant)
                     if old is not None), key=lambda c: len(c.commits), default=Chain(base))
        outcome = self._extend(chain, entries[:max(depth, len(chain.entries))])
        self.chain = chain
        return outcome

    def without(self, chain: Chain, entries: list[Entry], index: int, size: int) -> Chain:
        """The chain of ``entries`` with entry ``index`` left out, ``size`` entries long (fewer
        if a later entry does not merge without it); ``chain`` holds the first ``index``."""
        wanted = entries[:index] + entries[index + 1:size + 1]
        old = self.variant
        variant = _reusable(old, chain.base, wanted) if old is not None else Chain(chain.base)
        if len(variant.commits) < index:  # C_0..C_(index-1) are the chain's own
            variant = Chain(chain.base, chain.entries[:index], chain.commits[:index],
                            chain.trees[:index])
        self._extend(variant, wanted)
        self.variant = variant
        return variant

    def _extend(self, chain: Chain, entries: list[Entry]) -> Chain | Conflict:
        db = gitx.object_db(self.root)  # opened here, in a worker thread: pygit2 loads slowly
        owned = _owned(chain.base, chain.entries)
        for i in range(len(chain.commits), len(entries)):
            entry = entries[i]
            parent = chain.commits[-1] if chain.commits else chain.base
            owned = _adding(owned, chain.base, entry)
            base = entry.fork.commit if owned is not None and entry.fork else None
            result = db.merge_tree(parent, entry.head, base=base)
            if not result.clean:
                return Conflict(i, result.conflicted_files)
            commit = db.create_commit(
                result.tree, [parent, entry.head],
                f"Merge {entry.branch} (wf merge queue)\n\nWf-Task: {entry.task_id}\n")
            chain.entries.append(entry)
            chain.commits.append(commit)
            chain.trees.append(result.tree)
        return chain


def _owned(base: str, entries: list[Entry]) -> frozenset[str] | None:
    """The own commits of ``entries`` when each has a fork on ``base`` and none shares a
    commit with another; None when the merge base of a further entry must be searched."""
    owned: frozenset[str] | None = frozenset()
    for entry in entries:
        owned = _adding(owned, base, entry)
    return owned


def _adding(owned: frozenset[str] | None, base: str, entry: Entry) -> frozenset[str] | None:
    """``owned`` with ``entry``'s own commits, or None if its fork cannot be used (see the
    module's docstring): None stays None."""
    fork = entry.fork
    if owned is None or fork is None or fork.onto != base or fork.own & owned:
        return None
    return owned | fork.own


def _reusable(old: Chain, base: str, entries: list[Entry]) -> Chain:
    """The longest part of ``old`` that is also the start of ``entries`` on ``base``."""
    skip = 0
    if old.base != base:
        if base not in old.commits:
            return Chain(base)
        skip = old.commits.index(base) + 1  # the target moved along the chain
    kept = Chain(base)
    for i, entry in enumerate(entries):
        j = i + skip
        if j >= len(old.entries) or old.entries[j] != entry:
            break
        kept.entries.append(entry)
        kept.commits.append(old.commits[j])
        kept.trees.append(old.trees[j])
    return kept
