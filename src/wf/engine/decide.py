"""Pure decisions about attempts: how one ended, and what the task does next.

No I/O, no clock of their own, no randomness but what is passed in (``tests/unit/
test_decision_purity.py`` checks what they import). The local engine calls these; a Temporal
workflow calls the same ones. Scheduling is in ``schedule.py``, the preparation of an attempt
in ``attempt_plan.py``, signals in ``signal_rules.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wf.model import (
    AttemptState,
    FailureKind,
    NewEvent,
    RandomSource,
    says_rate_limited,
    task_stream,
)
from wf.spec import RetryPolicy

if TYPE_CHECKING:
    from wf.agents.adapter import Verdict
    from wf.engine.activities import AttemptReport

@dataclass(frozen=True)
class Outcome:
    """How an attempt ended, before the retry policy is consulted."""

    state: AttemptState
    kind: FailureKind | None = None
    error: str | None = None
    exit_code: int | None = None
    commit: str | None = None
    retry_after: float | None = None  # the agent's own word on when to try again
    rate_limited: bool = False  # a transient failure because the provider pushed back

    @property
    def succeeded(self) -> bool:
        return self.state == AttemptState.SUCCEEDED


def classify_exit(record: Mapping[str, Any], *, changed: bool, commit: str | None,
                  last_line: str, verdict: Verdict | None = None) -> Outcome:
    """Turn the shim's exit record, and the adapter's ``verdict`` when the agent has one,
    into an Outcome.

    A verdict naming a failure kind wins (the CLI said why it stopped). Otherwise 0 with a
    change is success; 0 without one is ``no_changes``, or ``policy_denied`` when the agent
    was refused a tool; 75 (EX_TEMPFAIL) is transient (a rate limit if its last line says
    so); 127 with a spawn error means the
    agent's command does not exist (a config error); anything else is an agent error,
    described by its exit status and last line of output.
    """
    code = record.get("exit_code")
    if record.get("spawn_error"):
        return Outcome(AttemptState.FAILED, FailureKind.CONFIG_ERROR, record["spawn_error"],
                       exit_code=code)
    if verdict is not None and verdict.kind is not None:
        return Outcome(AttemptState.FAILED, verdict.kind, verdict.error, exit_code=code,
                       retry_after=verdict.retry_after,
                       rate_limited=verdict.kind == FailureKind.TRANSIENT and verdict.rate_limited)
    if code == 0:
        if changed:
            return Outcome(AttemptState.SUCCEEDED, exit_code=0, commit=commit)
        if verdict is not None and verdict.denied:
            return Outcome(AttemptState.FAILED, FailureKind.POLICY_DENIED,
                           f"permission denied for {', '.join(sorted(set(verdict.denied)))} "
                           "and nothing changed", exit_code=0)
        return Outcome(AttemptState.FAILED, FailureKind.NO_CHANGES,
                       "the agent exited 0 but changed nothing", exit_code=0)
    detail = f": {last_line}" if last_line else ""
    if code == 75:
        return Outcome(AttemptState.FAILED, FailureKind.TRANSIENT,
                       f"transient failure (exit 75){detail}", exit_code=code,
                       rate_limited=says_rate_limited(last_line))
    what = f"killed by signal {-code}" if isinstance(code, int) and code < 0 else f"exit {code}"
    return Outcome(AttemptState.FAILED, FailureKind.AGENT_ERROR, f"agent failed ({what}){detail}",
                   exit_code=code)


def plan_after_attempt(task: Mapping[str, Any], n: int, outcome: Outcome, policy: RetryPolicy,
                       rng: RandomSource) -> list[NewEvent]:
    """The events that close attempt ``n`` and decide what the task does next, appended in one
    transaction so that a crash can never leave an attempt closed but the task undecided.
    A retry is due ``delay`` seconds after that transaction's timestamp (the projection's
    ``next_retry_at``): counted from when the failure was recorded, never earlier."""
    stream = task_stream(task["id"])
    finished = NewEvent(stream, "attempt.finished", {
        "n": n, "state": str(outcome.state), "exit_code": outcome.exit_code,
        "failure_kind": str(outcome.kind) if outcome.kind else None, "error": outcome.error,
        "commit": outcome.commit, **({"rate_limited": True} if outcome.rate_limited else {}),
    }, idempotency_key=f"attempt.finished:{task['id']}:{n}")
    if outcome.succeeded:
        return [finished, NewEvent(stream, "task.succeeded", {"n": n, "commit": outcome.commit})]
    if outcome.state == AttemptState.CANCELLED:
        return [finished, NewEvent(stream, "task.cancelled",
                                   {"n": n, "kind": "cancelled", "error": outcome.error})]
    kind = outcome.kind or FailureKind.AGENT_ERROR
    in_budget = n - (task["budget_start"] or 1) + 1
    if policy.should_retry(kind, in_budget):
        # The agent's reported retry time is a floor: retrying sooner would fail again.
        delay = max(policy.delay(in_budget, rng), outcome.retry_after or 0.0)
        return [finished, NewEvent(stream, "task.retry_scheduled", {
            "n": n, "kind": str(kind), "error": outcome.error, "delay": round(delay, 3),
            "retry_after": outcome.retry_after})]
    why = ("not retryable" if kind in policy.non_retryable or not policy.should_retry(kind, 0)
           else f"{in_budget} of {policy.maximum_attempts} attempts used")
    return [finished, NewEvent(stream, "task.failed", {
        "n": n, "kind": str(kind), "error": outcome.error, "why": why})]


def close_attempt(task: Mapping[str, Any], n: int, outcome: Outcome, policy: RetryPolicy,
                  rng: RandomSource, *, enqueue: bool) -> list[NewEvent]:
    """``plan_after_attempt``, and, when the merge queue takes every success (``enqueue``:
    ``[merge] auto`` with the queue running), the success's ``queue.entered`` in the same
    transaction, so that no run sees the task done but not yet queued."""
    events = plan_after_attempt(task, n, outcome, policy, rng)
    if outcome.succeeded and enqueue:
        events.append(enqueue_event(task, outcome.commit))
    return events


def enqueue_event(task: Mapping[str, Any], head: str | None) -> NewEvent:
    """The task's branch joins the merge queue at ``head``."""
    return NewEvent(task_stream(task["id"]), "queue.entered",
                    {"branch": task["branch"], "head": head})


def infra_outcome(message: str) -> Outcome:
    """An activity failed on wf's side (git, a file): the attempt fails ``infra``, retried."""
    return Outcome(AttemptState.FAILED, FailureKind.INFRA, message)


def attempt_outcome(report: AttemptReport) -> Outcome:
    """How the attempt ended, from what ``run_attempt`` found."""
    code = report.record.get("exit_code")
    if report.ended == "stopped" and report.stop is not None:
        return Outcome(report.stop.state, report.stop.kind, report.stop.error, exit_code=code)
    if report.ended == "lost":
        return Outcome(AttemptState.FAILED, FailureKind.LOST, report.error)
    if report.ended == "worktree_gone":  # not the agent's doing as far as wf can tell: retried
        return Outcome(AttemptState.FAILED, FailureKind.INFRA, report.error, exit_code=code)
    return classify_exit(report.record, changed=report.changed, commit=report.commit,
                         last_line=report.last_line, verdict=report.verdict)
