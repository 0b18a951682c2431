"""Pure decisions of the merge queue, beside ``planner.py`` (which prefixes to test).

What an admission verdict becomes, what is known about a chain's trees, which entries are
suspects, whether a failing entry is re-checked or evicted, what a conflict or a landing
records, how long to back off after a git error or an infrastructure failure. No I/O: the
queue's interpreter (``queue_loop.py``) passes rows of the projection and the facts its
activities (``activities.py``) found, and appends what these return. A Temporal queue workflow
calls the same functions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from wf.merge_queue.planner import Estimate, Plan, plan_round
from wf.model import NewEvent, task_stream
from wf.store.projections import QUEUE_WAITING

QUEUE_STREAM = "queue"
INFRA_BACKOFF = (1.0, 2.0, 4.0)  # seconds between tries of a failing check or git; then a pause
REFUSED_RETRY = 2.0  # seconds between attempts to land on a dirty checked-out target

if TYPE_CHECKING:
    from wf.merge_queue.candidates import Chain, Conflict, Entry

Rows = Mapping[str, Mapping[str, Any]]


# -- what the engine asks ---------------------------------------------------------------------

def waiting(queue: Rows) -> int:
    """How many entries wait for admission or landing (approvals do not hold a run)."""
    return sum(q["state"] in QUEUE_WAITING for q in queue.values())


def entries_in(queue: Rows, state: str) -> list[Mapping[str, Any]]:
    """The entries in ``state``, in queue order."""
    return sorted((q for q in queue.values() if q["state"] == state),
                  key=lambda q: q["position"])


def checks_key(check: Sequence[Sequence[str]]) -> str:
    """A short digest of the check commands: a tree's result holds only for the same checks."""
    return hashlib.sha256(json.dumps([list(c) for c in check]).encode()).hexdigest()[:8]


def tree_key(tree: str, checks: str) -> str:
    return f"{tree}/{checks}"


def target_ref(land: str, remote: str, target: str) -> str:
    """What candidates are built on: the local branch, or the remote's (fetched each round)
    when the queue lands by pushing or through the forge."""
    return f"refs/remotes/{remote}/{target}" if land in ("push", "pr") else f"refs/heads/{target}"


# -- admission --------------------------------------------------------------------------------

def admission_events(q: Mapping[str, Any], verdict: Any, head: str | None, *,
                     require_approval: bool, resolve: Sequence[NewEvent] = ()) -> list[NewEvent]:
    """What admitting entry ``q`` records: admitted, waiting for approval, or evicted (with
    ``resolve``, the events that send a conflicting task back to its agent). ``verdict`` is
    an ``admission.Admission``, or the one-line error (str) of an entry that could not be
    judged (its branch was deleted)."""
    stream = task_stream(q["task_id"])
    if isinstance(verdict, str):
        return [NewEvent(stream, "queue.evicted", {"kind": "error", "detail": verdict})]
    if verdict.verdict == "admit":
        if require_approval and not q["approved"]:
            return [NewEvent(stream, "queue.needs_approval", {
                "kind": "require_approval", "detail": "waiting for `wf approve`", "head": head})]
        return [NewEvent(stream, "queue.admitted", {"head": head})]
    if verdict.verdict == "needs_approval":
        if q["approved"]:
            return [NewEvent(stream, "queue.admitted", {"head": head})]
        # the rule is the reason's kind: the detail need not name it again
        return [NewEvent(stream, "queue.needs_approval", {
            "kind": verdict.rule, "detail": verdict.detail.removeprefix(f"{verdict.rule}: "),
            "head": head})]
    kind = {"denied": "policy", "conflict": "conflict",
            "no_commits": "no_commits"}[verdict.verdict]
    evicted = NewEvent(stream, "queue.evicted", {
        "kind": kind, "rule": verdict.rule, "detail": verdict.detail,
        "files": list(verdict.conflicted_files)})
    return [evicted, *(resolve if kind == "conflict" else ())]


def resolve_events(tid: str, detail: str, files: Iterable[str], *, enabled: bool,
                   is_task: bool, target: str) -> list[NewEvent]:
    """With ``resolve_conflicts``, the events that send a conflicting task back to its agent:
    its next attempt starts with the target merged into its branch, conflicts left in place.
    Appended with the eviction, so the run never sees the task settled between the two."""
    if not enabled or not is_task:
        return []
    return [NewEvent(task_stream(tid), "task.requeued", {
        "reason": "conflict", "resolve": {"target": target, "detail": detail,
                                          "files": list(files)}})]


def conflict_eviction(entries: Sequence[Entry], conflict: Conflict, target: str) -> tuple[
        str, NewEvent]:
    """(detail, event) for the entry of ``conflict``: it conflicts with the ones before it."""
    entry = entries[conflict.index]
    before = ", ".join(e.task_id for e in entries[:conflict.index]) or target
    detail = f"conflicts with {before} in {', '.join(conflict.files) or 'some files'}"
    return detail, NewEvent(task_stream(entry.task_id), "queue.evicted", {
        "kind": "conflict", "files": list(conflict.files), "detail": detail})


def already_landed(queued: Sequence[Mapping[str, Any]], contained: Iterable[str], base: str,
                   target: str) -> list[NewEvent]:
    """An entry whose head the target already contains has landed (wf stopped between moving
    the target and recording it): record it, marked reconciled."""
    heads = set(contained)
    return [NewEvent(task_stream(q["task_id"]), "queue.landed", {
        "commit": base, "target": target, "reconciled": True})
        for q in queued if q["head"] and q["head"] in heads]


# -- what is known ----------------------------------------------------------------------------

def known_results(trees: Sequence[str], tested: Rows, checks: str) -> dict[int, bool]:
    """Prefix size -> passed, for the chain's trees the cache has a result for."""
    known = {}
    for size, tree in enumerate(trees, start=1):
        row = tested.get(tree_key(tree, checks))
        if row is not None and row["result"] in ("pass", "fail"):
            known[size] = row["result"] == "pass"
    return known


def suspects(entries: Sequence[Entry], queue: Rows, *, blame: bool) -> frozenset[int]:
    """Positions of the entries a failing check's output named (``[merge] blame``)."""
    if not blame:
        return frozenset()
    return frozenset(i for i, e in enumerate(entries)
                     if (queue.get(e.task_id) or {}).get("suspect"))


def estimate(queue: Rows, landing: Iterable[str]) -> Estimate:
    """The failure-rate estimate from what landed (or is landing) and what the checks evicted."""
    in_flight = set(landing)
    rows = queue.values()
    landed = sum(1 for q in rows if q["state"] == "landed" or q["task_id"] in in_flight)
    failed = sum(1 for q in rows if q["state"] == "evicted" and q["reason_kind"] == "check")
    return Estimate(failures=failed, entries=landed + failed)


# -- checks -----------------------------------------------------------------------------------

def plan_on(chain: Chain, entries: Sequence[Entry], *, tested: Rows, queue: Rows,
            landing: Iterable[str], checks: str, parallel: int, max_batch: int,
            blame: bool) -> tuple[Plan, int]:
    """The round's plan on ``chain`` as built so far, and how deep the chain must be for it
    (deeper prefixes can only add known results: an interpreter builds further while the
    depth is beyond what is built, and plans again)."""
    plan = plan_round(len(entries), known_results(chain.trees, tested, checks),
                      estimate(queue, landing), parallel=parallel, max_batch=max_batch,
                      suspects=suspects(entries, queue, blame=blame))
    return plan, max((p.size for p in plan.probes if p.without is None), default=0)


def check_summary(detail: str | None, width: int = 60) -> str:
    """A check's result in one short line: ``pytest -x -q tests: exit 4`` stays as it is; a
    long command (a ``python -c`` script over many lines) becomes its first ``width``
    characters on one line. The whole command and its output are in the check's log."""
    if not detail:
        return "check failed"
    command, sep, outcome = detail.rpartition(": ")
    if not sep:
        return " ".join(detail.split())
    command = " ".join(command.split())
    if len(command) > width:
        command = command[:width - 1] + "…"
    return f"`{command}` {outcome}"


def flaky_event(plain: Mapping[int, str], flaky_seen: bool) -> NewEvent | None:
    """``queue.flaky_seen`` when a longer prefix passed where a shorter one failed (plain
    probes: size -> result), the first time only."""
    reds = [s for s, r in plain.items() if r == "fail"]
    greens = [s for s, r in plain.items() if r == "pass"]
    if reds and greens and min(reds) < max(greens) and not flaky_seen:
        return NewEvent(QUEUE_STREAM, "queue.flaky_seen", {
            "detail": f"prefix of {min(reds)} failed while {max(greens)} passed"})
    return None


def only_infra(results: Iterable[str]) -> bool:
    """Whether a round of checks said nothing but "infrastructure failed"."""
    seen = list(results)
    return "infra" in seen and "pass" not in seen and "fail" not in seen


@dataclass(frozen=True)
class Backoff:
    """Try again after ``delay`` seconds, or (``pause`` set) stop the queue and say why."""

    delay: float = 0.0
    pause: str | None = None


def infra_backoff(streak: int) -> Backoff:
    """An infrastructure failure is retried after a growing delay and never bisected; after
    repeated ones the queue pauses and says so."""
    if streak >= len(INFRA_BACKOFF):
        return Backoff(pause="checks keep failing with exit 75 (infrastructure)")
    return Backoff(INFRA_BACKOFF[streak])


def git_error_backoff(failures: int, message: str) -> Backoff:
    """A git error in a round may pass (a network, a lock): again after 1, 2, 4 s, then pause."""
    if failures < len(INFRA_BACKOFF):
        return Backoff(INFRA_BACKOFF[failures])
    return Backoff(pause=message)


def should_recheck(entry: Entry, tree_row: Mapping[str, Any], queue: Rows, *,
                   flaky_seen: bool, blame: bool) -> bool:
    """The entry fails on top of the green prefix before it. Check it once more first (True)
    when flaky results have been seen, when the tree has both passed and failed, or when its
    failure named none of its files while the check's failures do name files; at most until
    it has failed twice. Otherwise it is evicted."""
    unnamed = (blame and not (queue.get(entry.task_id) or {}).get("suspect")
               and any(q.get("suspect") for q in queue.values()))
    return ((flaky_seen or unnamed or bool(tree_row.get("passes") and tree_row.get("fails")))
            and tree_row.get("fails", 0) < 2)


def culprit_eviction(entry: Entry, index: int, tree: str, tree_row: Mapping[str, Any],
                     target: str) -> NewEvent:
    """``queue.evicted`` for an entry that fails the checks on top of ``index`` entries."""
    return NewEvent(task_stream(entry.task_id), "queue.evicted", {
        "kind": "check", "detail": f"fails the checks on top of {target}"
                                   + (f" and {index} entries before it" if index else "")
                                   + f": {check_summary(tree_row.get('detail'))}",
        "tree": tree, "log": tree_row.get("log")})


# -- landing ----------------------------------------------------------------------------------

def landing_size(planned: int, *, through_forge: bool) -> int:
    """How many entries one landing takes: a PR/MR is one branch."""
    return 1 if through_forge else planned


@dataclass(frozen=True)
class LandOutcome:
    """What a landing found (``landing.py``, or the forge's for ``land = "pr"``). ``evicted``
    (land = "pr" only): the forge refused the entry; ``kind`` says why. ``commit`` is the
    target's new commit when it is not the candidate (a merge made by the forge)."""

    status: Literal["landed", "moved", "refused", "evicted"]
    detail: str
    commit: str | None = None
    kind: str | None = None


@dataclass(frozen=True)
class Landed:
    """What a landing's outcome records (``events``), where the target now is (``base``;
    None: the landing did not happen, plan again on what git says), whether the refusal is
    new (``refused``: the detail to remember) and whether to wait before trying again."""

    events: tuple[NewEvent, ...]
    base: str | None
    refused: str | None = None
    wait: float = 0.0


def landing_outcome(outcome: LandOutcome, *, entries: Sequence[Entry], base: str, commit: str,
                    target: str, last_refusal: str | None) -> tuple[Landed, tuple[NewEvent, ...]]:
    """(what the landing's outcome records first, what it records after) for a landing of
    ``entries`` from ``base`` to ``commit``. Two appends on purpose: a crash between moving
    the target (``queue.target_moved``) and recording the entries landed is reconciled from
    git (the target contains the entries' heads), which the crash tests exercise."""
    ids = [e.task_id for e in entries]
    if outcome.status == "refused":
        said = () if last_refusal == outcome.detail else (  # say it once, not every retry
            NewEvent(QUEUE_STREAM, "queue.land_refused", {"detail": outcome.detail}),)
        return Landed(said, None, refused=outcome.detail, wait=REFUSED_RETRY), ()
    if outcome.status == "evicted":  # the forge's checks failed, or it will not merge
        return Landed((NewEvent(task_stream(ids[0]), "queue.evicted", {
            "kind": outcome.kind, "detail": outcome.detail}),), base), ()
    if outcome.status == "moved":
        return Landed((NewEvent(QUEUE_STREAM, "queue.land_aborted",
                                {"detail": outcome.detail}),), None), ()
    moved_to = outcome.commit or commit
    first = (NewEvent(QUEUE_STREAM, "queue.target_moved", {
        "old": base, "new": moved_to, "entries": ids}),)
    return Landed(first, moved_to), tuple(NewEvent(task_stream(t), "queue.landed", {
        "commit": moved_to, "target": target}) for t in ids)
