"""The engine's decisions as plain functions: scheduling, signals, an attempt's preparation and
deadlines. No repository, no process, no clock: rows and ``now`` in, events out."""

from __future__ import annotations

import pytest

from wf.engine.attempt_plan import (
    CANCELLED_BY_SIGNAL, deadline_passed, next_look, plan_attempt, port_for, worktree_start,
)
from wf.engine.schedule import schedule, sleep_for
from wf.engine.signal_rules import decide_signal, requeue_with_dependents
from wf.errors import ConfigError
from wf.model import FailureKind
from wf.spec import TaskSpec


def task(tid: str, state: str = "queued", agent: str = "a", deps: tuple[str, ...] = (),
         **more: object) -> dict:
    row = {"id": tid, "state": state, "agent": agent, "depends_on": list(deps),
           "next_retry_at": None, "branch": f"wf/{tid}", "commit_sha": None,
           "resolve": None, "session_id": None, "setup_done": False}
    row.update(more)
    return row


def spec(**kw: object) -> TaskSpec:
    base = {"id": "t", "prompt": "do it", "agent": "a", "command": ["agent", "{prompt}"],
            "base": "main"}
    base.update(kw)
    return TaskSpec.model_validate(base)


def test_schedule_starts_ready_tasks_within_both_limits_in_submission_order() -> None:
    tasks = {t: task(t, agent="slow" if t in ("c", "d") else "a") for t in "abcde"}
    plan = schedule(tasks, {"a": "a"}, 0.0, max_parallel=3, agent_limits={"slow": 1})
    # a runs already; b fills the second slot; c the third (slow allows one); d waits
    assert plan.start == ["b", "c"] and plan.blocked == []


def test_schedule_blocks_a_task_whose_dependency_failed_and_never_starts_it() -> None:
    tasks = {"a": task("a", "failed"), "b": task("b", deps=("a",)), "c": task("c")}
    plan = schedule(tasks, {}, 0.0, max_parallel=4, agent_limits={})
    assert plan.start == ["c"]
    [blocked] = plan.blocked
    assert (blocked.stream, blocked.type, blocked.data["dependency"]) == (
        "task:b", "task.blocked", "a")


def test_a_retry_starts_when_its_timer_is_due_and_the_loop_sleeps_until_then() -> None:
    tasks = {"r": task("r", "retrying", next_retry_at=100.0)}
    assert schedule(tasks, {}, 99.0, max_parallel=1, agent_limits={}).start == []
    assert schedule(tasks, {}, 100.0, max_parallel=1, agent_limits={}).start == ["r"]
    assert sleep_for(tasks, 99.9, 0.25) == pytest.approx(0.1)
    assert sleep_for(tasks, 50.0, 0.25) == 0.25


def test_retry_requeues_every_task_it_blocked_transitively_once_each() -> None:
    tasks = {"a": task("a", "failed"), "b": task("b", "blocked", deps=("a",)),
             "c": task("c", "blocked", deps=("b", "a")), "d": task("d", "blocked", deps=("x",))}
    events = requeue_with_dependents("a", tasks)
    assert [e.stream for e in events] == ["task:a", "task:b", "task:c"]
    assert {e.type for e in events} == {"task.requeued"}


def test_a_signal_decides_its_events_or_its_refusal() -> None:
    tasks = {"a": task("a", "running")}
    cancel = decide_signal("cancel", "a", {}, tasks, {}, queue_enabled=False, running=True)
    assert (cancel.result, cancel.events, cancel.stop_attempt) == ("cancelling", (), True)
    queued = decide_signal("cancel", "a", {}, {"a": task("a")}, {}, queue_enabled=False,
                           running=False)
    assert [e.type for e in queued.events] == ["task.cancelled"] and not queued.stop_attempt
    refused = decide_signal("retry", "a", {}, tasks, {}, queue_enabled=False, running=True)
    assert refused.result == "it is running" and refused.events == ()
    done = {"a": task("a", "done", commit_sha="c1")}
    enqueue = decide_signal("enqueue", "a", {}, done, {}, queue_enabled=True, running=False)
    assert [(e.type, e.data["head"]) for e in enqueue.events] == [("queue.entered", "c1")]


def test_an_attempt_is_prepared_by_reset_resume_or_resolution() -> None:
    plain, resumable = spec(), spec(resume_command=["agent", "--resume", "{session}"])
    assert plan_attempt(task("t"), plain, 1).reset is False
    assert plan_attempt(task("t"), plain, 2).reset is True
    resumed = plan_attempt(task("t", session_id="s1"), resumable, 2)
    assert (resumed.session, resumed.reset) == ("s1", False)
    resolving = plan_attempt(task("t", session_id="s1", resolve={"target": "main"}),
                             resumable, 3)
    assert (resolving.session, resolving.reset, resolving.resolve) == (
        None, False, {"target": "main"})
    assert plan_attempt(task("t"), spec(setup=["make"]), 1).setup is True
    assert plan_attempt(task("t", setup_done=True), spec(setup=["make"]), 2).setup is False


def test_a_dependent_worktree_starts_from_its_first_dependency_or_the_landed_target() -> None:
    dependent = spec(depends_on=["a", "b"])
    start = worktree_start(dependent, landed_target=None)
    assert (start.start_point, start.merge) == ("wf/a", ("wf/b",))
    assert worktree_start(dependent, landed_target="main").start_point == "main"
    assert worktree_start(spec(), landed_target="main").start_point is None


def test_deadlines_and_when_to_look_again() -> None:
    assert deadline_passed(100.0, 0.0, 99.0, 100.0, None) is None
    timed_out = deadline_passed(100.5, 0.0, 99.0, 100.0, None)
    assert timed_out is not None and timed_out.kind == FailureKind.TIMEOUT
    quiet = deadline_passed(50.0, 0.0, 20.0, None, 29.0)
    assert quiet is not None and quiet.kind == FailureKind.NO_OUTPUT_TIMEOUT
    assert next_look(10.0, 0.0, 9.0, 10.5, None, poll=1.0) == pytest.approx(0.5)
    assert next_look(10.0, 0.0, None, None, None, poll=1.0) == 1.0
    assert CANCELLED_BY_SIGNAL.error == "cancelled by signal"


def test_a_port_is_stable_skips_taken_ones_and_runs_out_clearly() -> None:
    first = port_for("t", set(), (20000, 20009))
    assert port_for("t", set(), (20000, 20009)) == first
    assert port_for("t", {first}, (20000, 20009)) != first
    with pytest.raises(ConfigError, match="no free port"):
        port_for("t", set(range(20000, 20010)), (20000, 20009))
