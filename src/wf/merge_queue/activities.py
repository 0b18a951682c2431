"""The merge queue's side effects, as synchronous activities bound to one repository.

Admit entries, build candidate chains, run a check in an integration worktree, say which
entries a failing log names, land (move or push the target), fetch. None decides what happens
next and none appends an event: ``queue_loop.py`` asks ``decide.py`` and records. Each is safe
to run again: chains are built in the object database and cached, a check of a tree already
tested is free, a landing is a compare-and-swap that reports ``landed`` when it already was.
(``land = "pr"`` goes through ``pr_landing.py``, whose forge side effects are
``forge_activities.py``.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wf import gitx
from wf.errors import WfError
from wf.merge_queue.admission import Admission, check_admission
from wf.merge_queue.blame import LOG_TAIL, blamed
from wf.merge_queue.candidates import Chain, ChainBuilder, Conflict, Entry, Fork
from wf.merge_queue.checks import CheckResult, CheckSlots
from wf.merge_queue.landing import LandOutcome, land_local, land_push
from wf.worktrees import fetch

if TYPE_CHECKING:
    from wf.merge_queue.policy import PolicyConfig


@dataclass(frozen=True)
class AdmitEntry:
    task_id: str
    branch: str
    base_commit: str | None  # the task's base, when the entry is a task's branch


@dataclass(frozen=True)
class Admitted:
    """An entry's admission: the verdict (or the one-line error that kept it from being
    judged), the head it was judged at, and where it leaves the target when known."""

    verdict: Admission | str
    head: str | None = None
    fork: Fork | None = None


@dataclass(frozen=True)
class RunCheck:
    slot: int
    commit: str
    tree: str
    checks: tuple[tuple[str, ...], ...]
    timeout: float | None


@dataclass(frozen=True)
class Land:
    """Move the target from ``old`` to ``new``: in this repository (``local``), or by a push
    with a lease (``push``, then the remote-tracking ``target_ref`` follows)."""

    mode: str
    target: str
    target_ref: str
    remote: str
    old: str
    new: str


class QueueActivities:
    def __init__(self, root: Path, worktree_root: Path, logs_dir: Path, parallel_checks: int,
                 environ: Mapping[str, str]) -> None:
        self.root, self.environ = root, environ
        self.builder = ChainBuilder(root)
        self.slots = CheckSlots(root, worktree_root, logs_dir, parallel_checks)

    @property
    def parallel_checks(self) -> int:
        return self.slots.count

    def open_repository(self) -> None:
        """Load libgit2 and open the object database (a tenth of a second, done ahead)."""
        gitx.object_db(self.root)

    def resolve(self, ref: str) -> str:
        return gitx.object_db(self.root).resolve(ref)

    def warm_slots(self, target_ref: str) -> None:
        """Create the integration worktrees before the first round's checks need them."""
        self.slots.warm(self.resolve(target_ref))

    def fetch_target(self, remote: str, target: str) -> None:
        fetch(self.root, remote, target)

    def admit(self, entries: Sequence[AdmitEntry], target_ref: str,
              policy: PolicyConfig) -> list[Admitted]:
        """Judge every entry against the target: one hop for all of them."""
        db = gitx.object_db(self.root)
        out: list[Admitted] = []
        for q in entries:
            try:
                verdict = check_admission(self.root, q.branch, target_ref,
                                          base_commit=q.base_commit, policy=policy,
                                          want_tree=False)
            except WfError as exc:  # e.g. the branch was deleted: this entry only
                out.append(Admitted(exc.message))
                continue
            head = verdict.branch_commit or db.resolve(q.branch)
            out.append(Admitted(verdict, head, _fork_of(db, verdict, head)))
        return out

    def contained(self, heads: Sequence[str], base: str) -> list[str]:
        """The ``heads`` that ``base`` already contains."""
        db = gitx.object_db(self.root)
        return [h for h in heads if db.is_ancestor(h, base)]

    def build_chain(self, base: str, entries: list[Entry], depth: int) -> Chain | Conflict:
        return self.builder.build(base, entries, depth)

    def chain_without(self, chain: Chain, entries: list[Entry], index: int,
                      size: int) -> Chain:
        return self.builder.without(chain, entries, index, size)

    def build_ahead(self, chain: Chain, entries: list[Entry], lead: int | None,
                    started: Sequence[threading.Event]) -> None:
        """While checks run: the chain later rounds may need, and the likeliest next queue
        (this one once suspect ``lead`` is evicted). After the checks' start."""
        for event in started:
            event.wait(timeout=1.0)
        built = self.builder.build(chain.base, entries, len(entries))
        if lead is not None and isinstance(built, Chain) and lead < len(built.entries):
            self.builder.without(built, entries, lead, len(entries) - 1)

    def run_check(self, inp: RunCheck, spawned: threading.Event,
                  check_cancelled: Callable[[], None]) -> CheckResult:
        return self.slots.run(inp.slot, inp.commit, inp.tree, inp.checks, timeout=inp.timeout,
                              environ=self.environ, spawned=spawned,
                              check_cancelled=check_cancelled)

    def blame(self, chain: Chain, size: int, log: str, checks: Sequence[Sequence[str]],
              quiet_log: str | None) -> list[str]:
        """The entries of ``chain``'s first ``size`` whose changes the failing ``log`` names:
        each entry's changes are what its merge brought to the prefix before it."""
        db = gitx.object_db(self.root)
        trees = [chain.base, *chain.trees[:size]]
        try:
            changes = [(e.task_id, db.changed_paths(trees[i], trees[i + 1]))
                       for i, e in enumerate(chain.entries[:size])]
        except WfError:
            return []  # a hint only: without it the queue narrows by splitting
        commands = "\n".join(f"$ {' '.join(argv)}" for argv in checks)  # log headers
        return blamed(read_log(log), changes, quiet=commands + "\n" + read_log(quiet_log))

    def land(self, inp: Land) -> LandOutcome:
        if inp.mode == "push":
            outcome = land_push(self.root, inp.remote, inp.target, inp.old, inp.new)
            if outcome.status == "landed":  # the remote-tracking ref follows without a fetch
                gitx.update_ref(self.root, inp.target_ref, inp.new,
                                message="wf merge queue: pushed")
            return outcome
        return land_local(self.root, inp.target, inp.old, inp.new)


def _fork_of(db: Any, verdict: Admission, head: str | None) -> Fork | None:
    """Where an admitted (or held) entry leaves the target, when its branch is one line of
    commits; None otherwise (its chain merges then search the merge base)."""
    if verdict.verdict not in ("admit", "needs_approval") or not (head and verdict.fork):
        return None
    try:
        own = db.own_commits(head, verdict.fork)
    except WfError:
        return None
    return None if own is None else Fork(verdict.target_commit, verdict.fork, own)


def read_log(path: str | Path | None) -> str:
    """The end of a check's log, or "" when there is none."""
    if not path:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - LOG_TAIL))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""
