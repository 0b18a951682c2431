"""Whether a signal can apply to a task or queue entry: one pure function, asked twice.

The engine asks it when it handles a signal, and its refusal is the ``signal.handled`` result.
``wf.signals.record_signal`` asks it before recording one, on the rows of the log's projection, so a
command that cannot apply is refused at once (exit 1) instead of being recorded as sent and
refused where nobody looks. Both ask the same function about the same rows, so they cannot
disagree, except where the engine's rows have moved on by the time it reads the signal (a
race): cancelling a running task is recorded, and what the engine then finds decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wf.engine.decide import enqueue_event
from wf.model import NewEvent, SignalKind, task_stream
from wf.store.projections import QUEUE_IN_LINE

QUEUE_SIGNALS = frozenset({SignalKind.ENQUEUE, SignalKind.DEQUEUE, SignalKind.REQUEUE,
                           SignalKind.APPROVE, SignalKind.REJECT})
RETRYABLE = frozenset({"failed", "cancelled", "blocked", "retrying", "evicted"})
ENQUEUEABLE = frozenset({"done", "evicted"})  # the agent's work is on the branch

# What a person types for each signal, for "cannot approve x: ...".
VERBS = {SignalKind.CANCEL: "cancel", SignalKind.RETRY: "retry", SignalKind.ENQUEUE: "queue",
         SignalKind.DEQUEUE: "remove", SignalKind.REQUEUE: "requeue",
         SignalKind.APPROVE: "approve", SignalKind.REJECT: "reject",
         SignalKind.BUDGET: "raise the budget of"}


@dataclass(frozen=True)
class SignalVerdict:
    """``applies``, or why not in a few words (``reason``) and what to do instead (``hint``)."""

    applies: bool
    reason: str = ""
    hint: str | None = None


APPLIES = SignalVerdict(True)


def _refuse(reason: str, hint: str | None = None) -> SignalVerdict:
    return SignalVerdict(False, reason, hint)


def judge_signal(kind: str, tid: str, task: Mapping[str, Any] | None,
                 entry: Mapping[str, Any] | None, *, queue_enabled: bool, running: bool,
                 branch: str | None = None) -> SignalVerdict:
    """Whether signal ``kind`` for ``tid`` applies, given its task row and queue row (either
    may be None), whether the merge queue is enabled, whether an attempt of the task runs
    (the engine: it drives one; the API: the log says ``running``), and, for
    ``wf queue add --branch``, the branch."""
    if kind in QUEUE_SIGNALS:
        # What an entry's state rules out is said first: it holds whatever the config says.
        verdict = _judge_queue_signal(kind, tid, task, entry, branch)
        if not queue_enabled and (verdict.applies or entry is None):
            return _refuse("the merge queue is not enabled ([merge] in wf.toml)",
                           "add a [merge] section to wf.toml: see docs/merge-queue.md")
        return verdict
    if task is None:
        return _refuse(f"unknown task {tid}", "`wf status` lists the tasks")
    state = task["state"]
    if kind == SignalKind.CANCEL:
        if running or state in ("queued", "retrying"):
            return APPLIES
        return _refuse(f"it is already {state}", f"nothing of it runs; `wf retry {tid}` runs "
                       "it again" if state in RETRYABLE else "nothing of it runs")
    if kind == SignalKind.RETRY:
        if running:
            return _refuse("it is running", f"`wf cancel {tid}` stops it")
        if state in RETRYABLE:
            return APPLIES
        if state == "queued":
            return _refuse("it is already queued", "it starts when a slot is free")
        return _refuse(f"it is already {state}, and a finished task is not run again",
                       f"to start it over, `wf clean {tid} --forget` and run it again")
    if kind == SignalKind.BUDGET:
        if state == "done":
            return _refuse("it is already done", "nothing of it runs")
        return APPLIES
    return _refuse(f"unknown signal {kind}")


def _judge_queue_signal(kind: str, tid: str, task: Mapping[str, Any] | None,
                        entry: Mapping[str, Any] | None, branch: str | None) -> SignalVerdict:
    where = entry["state"] if entry else None
    shown = "`wf queue` shows the queue"
    if kind in (SignalKind.ENQUEUE, SignalKind.REQUEUE):
        if where in QUEUE_IN_LINE:
            return _refuse(f"it is already in the queue ({where})", shown)
        if where == "landed":
            return _refuse("it has already landed", shown)
        if task is not None:
            if task["state"] in ENQUEUEABLE:
                return APPLIES
            hint = (f"`wf retry {tid}` runs it again" if task["state"] in RETRYABLE
                    else "a task joins the queue once its agent succeeded")
            return _refuse(f"the task is {task['state']}, not done", hint)
        if branch or (entry and entry.get("branch")):
            return APPLIES  # a plain branch, with no task behind it
        return _refuse(f"unknown task {tid}", "`wf status` lists the tasks")
    if kind == SignalKind.APPROVE:
        if where != "waiting_approval":
            return _refuse(f"it is not waiting for approval ({where or 'not in the queue'})",
                           shown)
        return APPLIES
    # dequeue, reject: an entry still in line
    if where not in QUEUE_IN_LINE:
        return _refuse(f"it is not in the queue ({where or 'it never entered'})", shown)
    return APPLIES


@dataclass(frozen=True)
class SignalOutcome:
    """What the engine does with a signal: ``result`` (recorded in ``signal.handled``), the
    events to append with it, and whether to stop the task's running attempt."""

    result: str
    events: tuple[NewEvent, ...] = ()
    stop_attempt: bool = False


def decide_signal(kind: str, tid: str, data: Mapping[str, Any],
                  tasks: Mapping[str, Mapping[str, Any]], queue: Mapping[str, Mapping[str, Any]],
                  *, queue_enabled: bool, running: bool) -> SignalOutcome:
    """The outcome of signal ``kind`` for ``tid``, given the projection's tasks and queue rows
    and whether the engine drives an attempt of the task (``running``)."""
    verdict = judge_signal(kind, tid, tasks.get(tid), queue.get(tid),
                           queue_enabled=queue_enabled, running=running,
                           branch=data.get("branch"))
    if not verdict.applies:
        return SignalOutcome(verdict.reason)
    stream = task_stream(tid)
    if kind == SignalKind.CANCEL:
        if running:
            return SignalOutcome("cancelling", stop_attempt=True)
        return SignalOutcome("cancelled", (NewEvent(stream, "task.cancelled", {
            "kind": "cancelled", "error": "cancelled by signal"}),))
    if kind == SignalKind.RETRY:
        return SignalOutcome("requeued", tuple(requeue_with_dependents(tid, tasks)))
    if kind == SignalKind.BUDGET:  # the engine resumes the task once no budget holds it
        return SignalOutcome("raised", (NewEvent(stream, "budget.raised", {
            k: data.get(k) or 0 for k in ("cost_usd", "tokens", "wall")}),))
    if kind in (SignalKind.ENQUEUE, SignalKind.REQUEUE):
        task = tasks.get(tid)
        if task is not None:  # the task's branch at the commit its agent made
            return SignalOutcome("ok", (enqueue_event(task, task["commit_sha"]),))
        branch = data.get("branch") or queue[tid]["branch"]
        return SignalOutcome("ok", (NewEvent(stream, "queue.entered",
                                             {"branch": branch, "head": None}),))
    if kind == SignalKind.DEQUEUE:
        return SignalOutcome("ok", (NewEvent(stream, "queue.removed",
                                             {"detail": "removed by wf queue rm"}),))
    if kind == SignalKind.APPROVE:
        return SignalOutcome("ok", (NewEvent(stream, "queue.approved", {"by": data.get("by")}),))
    return SignalOutcome("ok", (NewEvent(stream, "queue.evicted", {  # reject
        "kind": "rejected", "detail": data.get("reason") or "rejected"}),))


def requeue_with_dependents(tid: str, tasks: Mapping[str, Mapping[str, Any]]) -> list[NewEvent]:
    """``wf retry``: ``tid`` with a fresh retry budget, and the tasks it blocked,
    transitively (depth first, each once)."""
    out: list[NewEvent] = []
    seen: set[str] = set()

    def visit(t: str) -> None:
        seen.add(t)
        out.append(NewEvent(task_stream(t), "task.requeued", {"reason": "retry"}))
        for other, row in tasks.items():
            if (other not in seen and row["state"] == "blocked"
                    and t in (row["depends_on"] or ())):
                visit(other)

    visit(tid)
    return out
