"""Whether a signal can apply to a task or queue entry: one pure function, asked twice.

The engine asks it when it handles a signal, and its refusal is the ``signal.handled`` result.
``wf.api.send_signal`` asks it before recording one, on the rows of the log's projection, so a
command that cannot apply is refused at once (exit 1) instead of being recorded as sent and
refused where nobody looks. Both ask the same function about the same rows, so they cannot
disagree, except where the engine's rows have moved on by the time it reads the signal (a
race): cancelling a running task is recorded, and what the engine then finds decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wf.model import SignalKind
from wf.store.projections import QUEUE_IN_LINE

QUEUE_SIGNALS = frozenset({SignalKind.ENQUEUE, SignalKind.DEQUEUE, SignalKind.REQUEUE,
                           SignalKind.APPROVE, SignalKind.REJECT})
RETRYABLE = frozenset({"failed", "cancelled", "blocked", "retrying", "evicted"})
ENQUEUEABLE = frozenset({"done", "evicted"})  # the agent's work is on the branch

# What a person types for each signal, for "cannot approve x: ...".
VERBS = {SignalKind.CANCEL: "cancel", SignalKind.RETRY: "retry", SignalKind.ENQUEUE: "queue",
         SignalKind.DEQUEUE: "remove", SignalKind.REQUEUE: "requeue",
         SignalKind.APPROVE: "approve", SignalKind.REJECT: "reject"}


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
