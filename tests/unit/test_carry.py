"""What the repository workflow carries into its next run (``wf.temporal.carry``): pure
functions, no server. The carry gives back the rows decisions read, drops what a landed task
no longer needs, and stays far under the 2 MiB payload limit for thousands of tasks."""

from __future__ import annotations

from typing import Any

from wf.model import Event, task_stream
from wf.spec import TaskSpec
from wf.store.projections import Projection, apply
from wf.temporal.carry import TESTED_KEPT, carry_from, pack, projection_of, unpack


def _fold(p: Projection, seq: int, tid: str, type_: str, data: dict[str, Any]) -> None:
    apply(p, Event(seq, task_stream(tid), seq, type_, 1000.0 + seq, data, None))


def _submit(p: Projection, seq: int, tid: str, prompt: str) -> None:
    spec = TaskSpec(id=tid, prompt=prompt, agent="claude", base="main",
                    command=("claude", "-p", "{prompt}"))
    _fold(p, seq, tid, "task.submitted", {"spec": spec.model_dump(mode="json")})


def _carried(p: Projection) -> Projection:
    c = carry_from(p, seq_base=7, versions={}, submitted=[], hosts={}, pushed={}, running={},
                   settings={}, offset=0.0)
    return projection_of(unpack(pack(c)))


def test_a_task_not_landed_comes_back_as_it_was() -> None:
    p = Projection()
    _submit(p, 1, "a", "fix the parser " * 20)
    _fold(p, 2, "a", "attempt.started", {"n": 1, "log_path": None})
    _fold(p, 3, "a", "attempt.finished", {"n": 1, "state": "failed", "exit_code": 1})
    _fold(p, 4, "a", "attempt.started", {"n": 2, "log_path": None})
    back = _carried(p)
    assert back.tasks["a"] == p.tasks["a"]  # the prompt too, carried once in the spec
    assert back.attempts == {k: p.attempts[k] for k in (("a", 1), ("a", 2))}  # every one


def test_a_landed_task_keeps_what_dependents_and_signals_read_and_drops_its_spec() -> None:
    p = Projection()
    _submit(p, 1, "a", "a long prompt " * 500)
    p.tasks["a"].update(state="merged", branch="wf/a", commit_sha="c0ffee", port=20001)
    row = _carried(p).tasks["a"]
    assert (row["state"], row["branch"], row["commit_sha"], row["port"]) == (
        "merged", "wf/a", "c0ffee", 20001)
    assert row["spec"] is None and row["prompt"] is None


def test_only_the_latest_tested_trees_are_kept() -> None:
    p = Projection()
    for i in range(TESTED_KEPT + 50):
        p.tested_trees[f"t{i}"] = {"tree": f"t{i}", "result": "pass", "updated_ts": float(i)}
    kept = _carried(p).tested_trees
    assert len(kept) == TESTED_KEPT
    assert "t0" not in kept and f"t{TESTED_KEPT + 49}" in kept


def test_thousands_of_tasks_fit_well_under_the_payload_limit() -> None:
    p = Projection()
    for i in range(2000):  # 1,000 waiting or failed, 1,000 landed; 300-character prompts
        _submit(p, i + 1, f"t{i}", f"task {i}: " + "refactor the module and its tests " * 9)
        if i % 2:
            p.tasks[f"t{i}"]["state"] = "merged"
    c = carry_from(p, seq_base=0, versions={}, submitted=[f"task.submitted:t{i}" for i in
                   range(2000)], hosts={}, pushed={}, running={}, settings={}, offset=0.0)
    assert len(pack(c)) < 256 * 1024  # the limit is 2 MiB
