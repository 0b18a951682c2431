"""Admission: may a finished branch join the merge queue?

A branch is admitted when it has commits beyond its base, what it would bring to the target
passes ``[policy]``, and ``git merge-tree`` merges it into the current target without a conflict.
The verdicts, in the order they are checked:

* ``no_commits``: nothing beyond its base, or everything already in the target;
* ``denied``: a deny rule fired (final: the same diff is denied again);
* ``conflict``: the merge conflicts; the files go back to the task;
* ``needs_approval``: clean, but it changes a path that needs a person;
* ``admit``: clean; ``merge_tree`` is the merged tree (unless not asked for).

Everything is read from git and nothing is written but objects, so the check can run at any
time, from a thread (it blocks on git).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from wf import gitx
from wf.merge_queue.policy import ALLOW, ChangeSummary, PolicyConfig, evaluate

Verdict = Literal["admit", "conflict", "no_commits", "denied", "needs_approval"]
_FILES_NAMED = 5  # conflicting files listed in the one-line detail; all are in conflicted_files


@dataclass(frozen=True)
class Admission:
    """The verdict on one branch. ``detail`` is one line for a person or the task's agent;
    ``rule`` is the ``[policy]`` rule that fired; ``merge_tree`` the tree of the clean merge
    onto ``target_commit`` (the target as it was checked, so a caller can tell a stale verdict);
    ``messages`` are git's conflict messages; ``fork`` is the merge base of the branch and
    the target."""

    verdict: Verdict
    detail: str
    conflicted_files: tuple[str, ...] = ()
    rule: str | None = None
    merge_tree: str | None = None
    target_commit: str | None = None
    branch_commit: str | None = None
    messages: tuple[str, ...] = ()
    fork: str | None = None


def check_admission(root: Path, branch: str, target: str, *, base_commit: str | None,
                    policy: PolicyConfig, want_tree: bool = True) -> Admission:
    """Decide whether ``branch`` may be queued for ``target``. ``base_commit`` is where the task
    started (default: the merge base with the target). Both names are resolved once, so every
    step sees the same commits even if the refs move meanwhile. Without ``want_tree`` the
    merged tree is not written (the queue only needs to know that the merge is clean: it
    merges the entry again onto the entries before it). Raises GitError for a name that is not
    a commit, or one that starts with ``-``."""
    gitx.check_rev(branch)
    gitx.check_rev(target)
    db = gitx.object_db(root)  # in-process: admission runs for every entry, often
    head = db.resolve(branch)
    onto = db.resolve(target)
    fork = db.merge_base(onto, head)

    def decide(verdict: Verdict, detail: str, **more: Any) -> Admission:
        return Admission(verdict, detail, target_commit=onto, branch_commit=head, fork=fork,
                         **more)

    base = base_commit if base_commit is not None else fork
    if base is not None and db.commits_beyond(base, head) == 0:
        return decide("no_commits", f"{branch} has no commits beyond its base {base[:12]}")
    if fork is None:
        return decide("conflict", f"{branch} shares no history with {target}")
    if fork == head:
        return decide("no_commits", f"{branch} is already in {target}")

    # The diff costs a third of an admission: only a rule needs it.
    verdict = (evaluate(policy, ChangeSummary.from_diff(db.diff_numstat(fork, head)))
               if policy.has_rules else ALLOW)
    if verdict.decision == "deny":
        return decide("denied", f"{verdict.rule}: {verdict.detail}", rule=verdict.rule)

    merged = db.merge_tree(onto, head, base=fork, write=want_tree)
    if not merged.clean:
        return decide("conflict", _conflict_detail(target, merged.conflicted_files),
                      conflicted_files=merged.conflicted_files, messages=merged.messages)
    if verdict.decision == "needs_approval":
        return decide("needs_approval", f"{verdict.rule}: {verdict.detail}",
                      rule=verdict.rule, merge_tree=merged.tree)
    return decide("admit", f"merges cleanly into {target}", merge_tree=merged.tree)


def _conflict_detail(target: str, files: tuple[str, ...]) -> str:
    if not files:
        return f"conflicts with {target}"
    named = ", ".join(files[:_FILES_NAMED])
    more = f" and {len(files) - _FILES_NAMED} more" if len(files) > _FILES_NAMED else ""
    return f"conflicts with {target} in {named}{more}"
