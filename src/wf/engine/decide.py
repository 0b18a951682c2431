"""Pure decisions of the engine: no I/O, no clock of their own, no randomness but what is
passed in. The local engine calls these; a Temporal workflow can call the same ones."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wf.model import AttemptState, FailureKind, NewEvent, task_stream
from wf.spec import RetryPolicy

if TYPE_CHECKING:
    from wf.agents.adapter import Verdict

FAILED_DEP_STATES = frozenset({"failed", "cancelled", "blocked"})


@dataclass(frozen=True)
class Readiness:
    ready: bool
    blocked_by: str | None = None  # a dependency that can no longer succeed
    blocked_state: str | None = None


def readiness(task: Mapping[str, Any], tasks: Mapping[str, Mapping[str, Any]],
              now: float, *, deps_must_land: bool = False) -> Readiness:
    """Whether a queued or retrying task may start an attempt now. With ``deps_must_land``
    (the merge queue enqueues every success) a dependency counts once it has landed."""
    if task["state"] == "retrying":
        return Readiness(ready=(task["next_retry_at"] or 0) <= now)
    if task["state"] != "queued":
        return Readiness(ready=False)
    for dep in task["depends_on"] or ():
        dep_row = tasks.get(dep)
        if dep_row is None:
            return Readiness(ready=False, blocked_by=dep, blocked_state="unknown")
        # An evicted dependency's work is on its branch, but it will not land by itself.
        if dep_row["state"] in FAILED_DEP_STATES or (deps_must_land
                                                      and dep_row["state"] == "evicted"):
            return Readiness(ready=False, blocked_by=dep, blocked_state=dep_row["state"])
        if dep_row["state"] != "merged" and (deps_must_land
                                             or dep_row["state"] not in ("done", "evicted")):
            return Readiness(ready=False)
    return Readiness(ready=True)


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended, before the retry policy is consulted."""

    state: AttemptState
    kind: FailureKind | None = None
    error: str | None = None
    exit_code: int | None = None
    commit: str | None = None
    retry_after: float | None = None  # the agent's own word on when to try again

    @property
    def succeeded(self) -> bool:
        return self.state == AttemptState.SUCCEEDED


def classify_exit(record: Mapping[str, Any], *, changed: bool, commit: str | None,
                  last_line: str, verdict: Verdict | None = None) -> Outcome:
    """Turn the shim's exit record, and the adapter's ``verdict`` when the agent has one,
    into an Outcome.

    A verdict naming a failure kind wins (the CLI said why it stopped). Otherwise 0 with a
    change is success; 0 without one is ``no_changes``, or ``policy_denied`` when the agent
    was refused a tool; 75 (EX_TEMPFAIL) is transient; 127 with a spawn error means the
    agent's command does not exist (a config error); anything else is an agent error,
    described by its exit status and last line of output.
    """
    code = record.get("exit_code")
    if record.get("spawn_error"):
        return Outcome(AttemptState.FAILED, FailureKind.CONFIG_ERROR, record["spawn_error"],
                       exit_code=code)
    if verdict is not None and verdict.kind is not None:
        return Outcome(AttemptState.FAILED, verdict.kind, verdict.error, exit_code=code,
                       retry_after=verdict.retry_after)
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
                       f"transient failure (exit 75){detail}", exit_code=code)
    what = f"killed by signal {-code}" if isinstance(code, int) and code < 0 else f"exit {code}"
    return Outcome(AttemptState.FAILED, FailureKind.AGENT_ERROR, f"agent failed ({what}){detail}",
                   exit_code=code)


def plan_after_attempt(task: Mapping[str, Any], n: int, outcome: Outcome, policy: RetryPolicy,
                       rng: random.Random) -> list[NewEvent]:
    """The events that close attempt ``n`` and decide what the task does next, appended in one
    transaction so that a crash can never leave an attempt closed but the task undecided.
    A retry is due ``delay`` seconds after that transaction's timestamp (the projection's
    ``next_retry_at``): counted from when the failure was recorded, never earlier."""
    stream = task_stream(task["id"])
    finished = NewEvent(stream, "attempt.finished", {
        "n": n, "state": str(outcome.state), "exit_code": outcome.exit_code,
        "failure_kind": str(outcome.kind) if outcome.kind else None, "error": outcome.error,
        "commit": outcome.commit,
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
