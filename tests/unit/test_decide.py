"""The engine's pure decisions: readiness, exit classification, retry planning."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wf.engine.decide import Outcome, classify_exit, plan_after_attempt
from wf.engine.schedule import readiness
from wf.model import AttemptState, FailureKind
from wf.spec import RetryPolicy


def row(tid="t", state="queued", deps=(), budget_start=1, next_retry_at=None):
    return {"id": tid, "state": state, "depends_on": list(deps), "budget_start": budget_start,
            "next_retry_at": next_retry_at}


def test_readiness_follows_dependencies():
    tasks = {"a": row("a", "done"), "b": row("b", "running"), "c": row("c", "failed")}
    assert readiness(row(deps=["a"]), tasks, 0).ready
    assert not readiness(row(deps=["a", "b"]), tasks, 0).ready
    blocked = readiness(row(deps=["a", "c"]), tasks, 0)
    assert (blocked.ready, blocked.blocked_by, blocked.blocked_state) == (False, "c", "failed")


def test_a_retrying_task_is_ready_only_when_its_timer_is_due():
    assert not readiness(row(state="retrying", next_retry_at=10.0), {}, 9.9).ready
    assert readiness(row(state="retrying", next_retry_at=10.0), {}, 10.0).ready


@pytest.mark.parametrize("record, changed, state, kind", [
    ({"exit_code": 0}, True, AttemptState.SUCCEEDED, None),
    ({"exit_code": 0}, False, AttemptState.FAILED, FailureKind.NO_CHANGES),
    ({"exit_code": 75}, True, AttemptState.FAILED, FailureKind.TRANSIENT),
    ({"exit_code": 1}, True, AttemptState.FAILED, FailureKind.AGENT_ERROR),
    ({"exit_code": -9}, False, AttemptState.FAILED, FailureKind.AGENT_ERROR),
    ({"exit_code": 127, "spawn_error": "no such file"}, False, AttemptState.FAILED,
     FailureKind.CONFIG_ERROR),
])
def test_classify_exit(record, changed, state, kind):
    out = classify_exit(record, changed=changed, commit="abc" if changed else None, last_line="x")
    assert (out.state, out.kind) == (state, kind)


def test_signal_deaths_are_described():
    out = classify_exit({"exit_code": -9}, changed=False, commit=None, last_line="")
    assert "killed by signal 9" in out.error


def plan(outcome, n=1, policy=None, budget_start=1):
    policy = policy or RetryPolicy(initial_interval=1, jitter=0)
    events = plan_after_attempt(row(budget_start=budget_start), n, outcome, policy,
                                random.Random(0))
    return [(e.type, e.data) for e in events]


def test_success_closes_the_attempt_and_the_task_together():
    events = plan(Outcome(AttemptState.SUCCEEDED, commit="c0ffee"))
    assert [t for t, _ in events] == ["attempt.finished", "task.succeeded"]


def test_failure_schedules_a_retry_until_the_budget_is_spent():
    fail = Outcome(AttemptState.FAILED, FailureKind.AGENT_ERROR, "boom")
    policy = RetryPolicy(maximum_attempts=3, initial_interval=2, backoff_coefficient=3, jitter=0)
    first = plan(fail, 1, policy)
    assert first[1][0] == "task.retry_scheduled"
    assert first[1][1]["delay"] == 2.0
    assert plan(fail, 2, policy)[1][1]["delay"] == 6.0
    last = plan(fail, 3, policy)
    assert last[1][0] == "task.failed" and "3 of 3" in last[1][1]["why"]
    # `wf retry` gives a fresh budget: attempts 4..6 are a new round
    assert plan(fail, 4, policy, budget_start=4)[1][0] == "task.retry_scheduled"


def test_non_retryable_kinds_fail_at_once():
    policy = RetryPolicy(non_retryable=("no_changes",))
    out = plan(Outcome(AttemptState.FAILED, FailureKind.NO_CHANGES), 1, policy)
    assert out[1][0] == "task.failed" and out[1][1]["why"] == "not retryable"
    conflict = plan(Outcome(AttemptState.FAILED, FailureKind.CONFIG_ERROR), 1)
    assert conflict[1][0] == "task.failed"


@given(st.integers(1, 5000), st.floats(0, 1), st.floats(1, 10), st.floats(0, 3600),
       st.integers(0, 2**32))
def test_delays_stay_within_jitter_and_cap(n, jitter, coef, cap, seed):
    policy = RetryPolicy(initial_interval=1.5, backoff_coefficient=coef, maximum_interval=cap,
                         jitter=jitter)
    delay = policy.delay(n, random.Random(seed))
    assert delay >= 0
    if cap:
        assert delay <= cap
    try:
        base = min(1.5 * coef ** (n - 1), cap or 86400)
    except OverflowError:
        base = cap or 86400
    assert delay >= base * (1 - jitter) - 1e-9
