"""The projection reducer, through the SQLite store: the rows a task's life leaves, and that a
rebuild from the events alone equals the tables the live appends kept."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wf.model import RUN_STREAM, SIGNAL_STREAM, NewEvent, task_stream
from wf.spec import RetryPolicy, TaskSpec
from wf.store import SqliteEventStore
from wf.store.projections import COLUMNS, Projection, fold


def spec(task_id: str, **extra: Any) -> dict[str, Any]:
    return TaskSpec(id=task_id, prompt=f"fix {task_id}", agent="shell",
                    command=("sh", "-c", "make fix"), env={"LEVEL": "2"}, base="main",
                    timeout=600.0, no_output_timeout=60.0,
                    retry=RetryPolicy(maximum_attempts=2), setup=("make", "deps"),
                    **extra).model_dump(mode="json")


def ev(task_id: str, type_: str, **data: Any) -> NewEvent:
    return NewEvent(task_stream(task_id), type_, data)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteEventStore]:
    with SqliteEventStore(tmp_path / "wf.db") as store:
        yield store


def test_a_task_that_fails_once_then_succeeds(store: SqliteEventStore) -> None:
    a_spec = spec("a", depends_on=("base-task",))
    store.append([NewEvent(RUN_STREAM, "run.started",
                           {"run_id": "r1", "pid": 10, "host": "h", "argv": ["run", "-j2"]}),
                  ev("a", "task.submitted", spec=a_spec)], ts=1.0)
    store.append([ev("a", "task.worktree_requested", branch="wf/a", path="/wt/a")], ts=2.0)
    store.append([ev("a", "task.worktree_ready", branch="wf/a", path="/wt/a",
                     base_commit="c0", port=8001),
                  ev("a", "task.setup_done")], ts=3.0)
    store.append([ev("a", "attempt.started", n=1, log_path="/logs/a.1"),
                  ev("a", "attempt.spawned", n=1, pid=111, pid_start=5)], ts=4.0)
    store.append([ev("a", "attempt.finished", n=1, state="failed", exit_code=1,
                     failure_kind="agent_error", error="exit status 1"),
                  ev("a", "task.retry_scheduled", n=1, delay=5.0,
                     error="exit status 1", kind="agent_error")], ts=5.0)

    retrying = store.task("a")
    assert retrying is not None
    assert (retrying["state"], retrying["next_retry_at"], retrying["last_failure_kind"]) == (
        "retrying", 10.0, "agent_error")

    store.append([ev("a", "attempt.started", n=2, log_path="/logs/a.2"),
                  ev("a", "attempt.spawned", n=2, pid=222)], ts=10.0)
    store.append([ev("a", "attempt.finished", n=2, state="succeeded", exit_code=0,
                     commit="c2"),
                  ev("a", "task.succeeded", commit="c2")], ts=20.0)
    store.append([ev("a", "task.cleaned", worktree_removed=True),
                  NewEvent(RUN_STREAM, "run.finished", {"run_id": "r1", "exit_code": 0})],
                 ts=21.0)

    assert store.task("a") == {
        "id": "a", "state": "done", "agent": "shell", "prompt": "fix a", "spec": a_spec,
        "depends_on": ["base-task"], "base_ref": "main", "base_commit": "c0", "branch": "wf/a",
        "worktree": None, "worktree_ready": 0, "port": 8001, "setup_done": 0, "attempts": 2,
        "budget_start": 1, "last_error": None, "last_failure_kind": None,
        "next_retry_at": None, "commit_sha": "c2", "created_ts": 1.0, "updated_ts": 21.0,
        "started_ts": 4.0, "ended_ts": 20.0, "cleaned": 1, "version": 13, "submitted_seq": 2, "resolve": None,
        "pr_url": None, "pr_number": None, "pr_state": None, "forge_checks": None,
        "tokens": 0, "cost_usd": None, "session_id": None, "budget_exceeded": None,
        "budget_added": None, "paused": None,
    }
    assert store.attempts("a") == [
        {"task_id": "a", "n": 1, "state": "failed", "pid": 111, "pid_start": 5,
         "log_path": "/logs/a.1", "started_ts": 4.0, "ended_ts": 5.0, "exit_code": 1,
         "failure_kind": "agent_error", "error": "exit status 1", "commit_sha": None,
         "retry_delay": 5.0, "pauses": None},
        {"task_id": "a", "n": 2, "state": "succeeded", "pid": 222, "pid_start": None,
         "log_path": "/logs/a.2", "started_ts": 10.0, "ended_ts": 20.0, "exit_code": 0,
         "failure_kind": None, "error": None, "commit_sha": "c2", "retry_delay": None, "pauses": None},
    ]
    assert store.runs() == [{"id": "r1", "pid": 10, "host": "h", "argv": ["run", "-j2"],
                             "started_ts": 1.0, "ended_ts": 21.0, "exit_code": 0}]


def test_failed_then_requeued_by_a_retry_signal(store: SqliteEventStore) -> None:
    store.append([ev("b", "task.submitted", spec=spec("b")),
                  ev("b", "attempt.started", n=1),
                  ev("b", "attempt.finished", n=1, state="timed_out", failure_kind="timeout"),
                  ev("b", "task.failed", error="timed out after 600s", kind="timeout")], ts=1.0)
    failed = store.task("b")
    assert failed is not None
    assert (failed["state"], failed["last_error"], failed["ended_ts"]) == (
        "failed", "timed out after 600s", 1.0)

    [sent] = store.append([NewEvent(SIGNAL_STREAM, "signal.sent",
                                    {"kind": "retry", "task": "b", "by": "cli"})], ts=2.0)
    assert store.signals() == [{"seq": sent.seq, "kind": "retry", "task_id": "b",
                                "data": {"kind": "retry", "task": "b", "by": "cli"},
                                "created_ts": 2.0, "handled_seq": None, "result": None}]

    [handled, _] = store.append([
        NewEvent(SIGNAL_STREAM, "signal.handled", {"signal_seq": sent.seq, "result": "requeued"}),
        ev("b", "task.requeued")], ts=3.0)
    requeued = store.task("b")
    assert requeued is not None
    assert (requeued["state"], requeued["budget_start"], requeued["ended_ts"]) == (
        "queued", 2, None)
    assert store.signals() == []
    assert store.signals(pending_only=False)[0]["handled_seq"] == handled.seq


@pytest.mark.parametrize(("type_", "state"), [
    ("task.blocked", "blocked"), ("task.cancelled", "cancelled"), ("task.failed", "failed")])
def test_terminal_states(store: SqliteEventStore, type_: str, state: str) -> None:
    store.append([ev("c", "task.submitted", spec=spec("c")),
                  ev("c", type_, error="why", kind="dependency_conflict")], ts=7.0)
    row = store.task("c")
    assert row is not None
    assert (row["state"], row["last_error"], row["last_failure_kind"], row["ended_ts"]) == (
        state, "why", "dependency_conflict", 7.0)


def test_events_the_projections_do_not_know_touch_nothing(store: SqliteEventStore) -> None:
    store.append([ev("ghost", "attempt.started", n=1),  # a task never submitted
                  ev("d", "task.submitted", spec=spec("d")),
                  ev("d", "attempt.progress", n=1, lines=40),
                  NewEvent(SIGNAL_STREAM, "signal.handled", {"signal_seq": 999}),
                  NewEvent(RUN_STREAM, "run.finished", {"run_id": "nope"})])

    assert [t["id"] for t in store.tasks()] == ["d"]
    assert store.task("d")["version"] == 1  # type: ignore[index]
    assert store.attempts() == [] and store.signals(False) == [] and store.runs() == []


def test_pr_events_fill_the_task_and_queue_rows(store: SqliteEventStore) -> None:
    store.append([ev("p", "task.submitted", spec=spec("p")),
                  ev("p", "queue.entered", branch="wf/p", head="h1"),
                  ev("p", "pr.opened", number=7, url="https://forge/pr/7", state="draft"),
                  ev("p", "pr.checks", number=7, state="pending", detail="waiting for ci")])
    store.append([ev("p", "pr.checks", number=7, state="success", detail="2 passed"),
                  ev("p", "pr.merged", number=7, commit="m1")])

    [row] = store.queue()
    task = store.task("p")
    assert task is not None
    for r in (task, row):
        assert (r["pr_url"], r["pr_number"], r["pr_state"], r["forge_checks"]) == (
            "https://forge/pr/7", 7, "merged", "success: 2 passed")


def test_an_evicted_task_is_evicted_with_its_reason_until_it_enters_the_queue_again(
        store: SqliteEventStore) -> None:
    store.append([ev("e", "task.submitted", spec=spec("e")),
                  ev("e", "task.succeeded", commit="c1"),
                  ev("e", "queue.entered", branch="wf/e", head="c1"),
                  ev("e", "queue.admitted", head="c1"),
                  ev("e", "queue.evicted", kind="check", detail="fails the checks: `make` exit 4",
                     log="/q/t-1.log")])
    task, [entry] = store.task("e"), store.queue()
    assert task is not None
    assert (task["state"], task["last_error"]) == (
        "evicted", "check: fails the checks: `make` exit 4; log: /q/t-1.log")
    assert entry["check_log"] == "/q/t-1.log"

    store.append([ev("e", "queue.entered", branch="wf/e", head="c1")])  # wf queue retry
    task = store.task("e")
    assert task is not None and (task["state"], task["last_error"]) == ("done", None)


def test_a_forgotten_task_is_gone_and_its_id_can_be_submitted_again(
        store: SqliteEventStore) -> None:
    store.append([ev("f", "task.submitted", spec=spec("f")),
                  ev("f", "attempt.started", n=1),
                  ev("f", "attempt.finished", n=1, state="failed"),
                  ev("f", "task.failed", error="no", kind="agent_error"),
                  ev("f", "queue.entered", branch="wf/f", head="c1"),
                  ev("f", "queue.removed"),
                  ev("g", "task.submitted", spec=spec("g"))])
    store.append([ev("f", "task.cleaned", worktree_removed=True),
                  ev("f", "task.forgotten", attempts=1)])
    assert [t["id"] for t in store.tasks()] == ["g"]
    assert store.attempts("f") == [] and store.queue() == []

    store.append([ev("f", "task.submitted", spec={**spec("f"), "prompt": "new"},
                     attempts_before=1)])
    again = store.task("f")
    assert again is not None
    assert (again["state"], again["prompt"], again["attempts"], again["budget_start"]) == (
        "queued", "new", 1, 2)
    live = store.snapshot()
    store.rebuild_projections()
    assert store.snapshot() == live


def test_a_worktree_made_again_after_a_clean_is_cleanable_again(store: SqliteEventStore) -> None:
    ready = {"branch": "wf/w", "path": "/wt/w", "base_commit": "b0", "port": 1}
    store.append([ev("w", "task.submitted", spec=spec("w")),
                  ev("w", "task.worktree_ready", **ready),
                  ev("w", "task.failed", error="no", kind="agent_error"),
                  ev("w", "task.cleaned", worktree_removed=True)])
    assert store.task("w")["cleaned"] == 1  # type: ignore[index]
    store.append([ev("w", "task.requeued"), ev("w", "task.worktree_ready", **ready)])
    assert store.task("w")["cleaned"] == 0  # type: ignore[index]


# -- rebuild equals live -----------------------------------------------------------------------
TASKS = ("a", "b", "c")


def _event(kind: str, tid: str, n: int, seq: int, text: str, number: int) -> NewEvent:
    stream = task_stream(tid)
    makers: dict[str, Callable[[], dict[str, Any]]] = {
        "task.submitted": lambda: {"spec": spec(tid)},
        "task.worktree_requested": lambda: {"branch": f"wf/{tid}", "path": f"/wt/{text}"},
        "task.worktree_ready": lambda: {"branch": f"wf/{tid}", "path": f"/wt/{text}",
                                        "base_commit": text, "port": number},
        "task.setup_done": dict,
        "attempt.started": lambda: {"n": n, "log_path": f"/log/{text}"},
        "attempt.spawned": lambda: {"n": n, "pid": number, "pid_start": number * 2},
        "attempt.finished": lambda: {"n": n, "state": "failed", "exit_code": number,
                                     "failure_kind": "agent_error", "error": text,
                                     "commit": None},
        "task.retry_scheduled": lambda: {"n": n, "delay": number / 2,
                                         "error": text, "kind": "transient"},
        "task.succeeded": lambda: {"commit": text},
        "task.failed": lambda: {"error": text, "kind": "timeout"},
        "task.blocked": lambda: {"error": text},
        "task.cancelled": lambda: {"error": text},
        "task.requeued": dict,
        "task.cleaned": lambda: {"worktree_removed": number % 2 == 0},
        "attempt.progress": lambda: {"n": n, "nested": {"lines": [number, text]}},
        "signal.sent": lambda: {"kind": "cancel", "task": tid, "note": text},
        "signal.handled": lambda: {"signal_seq": seq, "result": text},
        "run.started": lambda: {"run_id": f"r{n}", "pid": number, "argv": ("wf", text)},
        "run.finished": lambda: {"run_id": f"r{n}", "exit_code": number},
        "queue.entered": lambda: {"branch": f"wf/{tid}", "head": text},
        "queue.evicted": lambda: {"kind": "check", "detail": text, "log": f"/q/{text}"},
        "queue.check_finished": lambda: {"tree": text, "result": "fail", "entries": [tid],
                                         "log": f"/q/{number}"},
        "task.forgotten": lambda: {"attempts": n},
        "pr.opened": lambda: {"number": number, "url": f"https://f/{text}", "state": "open"},
        "pr.checks": lambda: {"number": number, "state": "pending", "detail": text},
        "pr.merged": lambda: {"number": number, "commit": text},
        # malformed: the projections cannot take it, so its batch is rejected
        "bad.submitted": lambda: {"no": "spec"},
    }
    data = makers[kind]()
    if kind.startswith(("signal.", "run.")):
        stream = SIGNAL_STREAM if kind.startswith("signal.") else RUN_STREAM
    if kind == "bad.submitted":
        kind = "task.submitted"
    return NewEvent(stream, kind, data)


KINDS = ("task.submitted",) * 3 + (
    "task.worktree_requested", "task.worktree_ready", "task.setup_done", "attempt.started",
    "attempt.started", "attempt.spawned", "attempt.finished", "task.retry_scheduled",
    "task.succeeded", "task.failed", "task.blocked", "task.cancelled", "task.requeued",
    "task.cleaned", "attempt.progress", "signal.sent", "signal.sent", "signal.handled",
    "run.started", "run.finished", "bad.submitted", "queue.entered", "pr.opened",
    "pr.checks", "pr.merged", "queue.evicted", "queue.check_finished", "task.forgotten")

events = st.builds(
    _event, st.sampled_from(KINDS), st.sampled_from(TASKS), st.integers(1, 3),
    st.integers(1, 40), st.text("xyz é", max_size=4), st.integers(0, 2**40))


@st.composite
def appended(draw: st.DrawFn, event: st.SearchStrategy[NewEvent]) -> NewEvent:
    """An event, sometimes with an expected version or a (possibly repeated) idempotency key."""
    e = draw(event)
    extra = draw(st.sampled_from(["plain"] * 6 + ["expected", "key"]))
    if extra == "expected":
        return NewEvent(e.stream, e.type, e.data, expected_version=draw(st.integers(1, 6)))
    if extra == "key":
        return NewEvent(e.stream, e.type, e.data, idempotency_key=draw(st.sampled_from("klm")))
    return e


# One step: which of the two store instances writes, and the batches of one append_many.
steps = st.lists(st.tuples(st.integers(0, 1),
                           st.lists(st.lists(appended(events), max_size=4), min_size=1,
                                    max_size=3)),
                 min_size=1, max_size=12)


def _normalized(p: Projection) -> dict[str, list[dict[str, Any]]]:
    return {name: [p.table(name)[key] for key in sorted(p.table(name))] for name in COLUMNS}


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_rebuild_equals_live(tmp_path_factory: pytest.TempPathFactory,
                             workload: list[tuple[int, list[list[NewEvent]]]]) -> None:
    path = tmp_path_factory.mktemp("live") / "wf.db"
    with SqliteEventStore(path) as one, SqliteEventStore(path) as two:
        for who, batches in workload:
            (one, two)[who].append_many(batches)
        live = one.snapshot()
        assert two.snapshot() == live
        assert _normalized(one.projection()) == live
        assert _normalized(fold(one.read())) == live  # the pure reducer over the log

        two.rebuild_projections()
        assert one.snapshot() == live

        # Both instances' caches are still right: keep appending through each.
        one.append([_event("attempt.started", "a", 3, 1, "z", 1)])
        two.append([_event("task.cleaned", "a", 1, 1, "z", 1)])
        live = two.snapshot()
        one.rebuild_projections()
        assert one.snapshot() == live
