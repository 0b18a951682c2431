"""The merge queue's decisions as plain functions: admission, what is known, re-check or
evict, backoffs, and what a landing records."""

from __future__ import annotations

from wf.merge_queue import decide as mq
from wf.merge_queue.admission import Admission
from wf.merge_queue.candidates import Conflict, Entry
from wf.merge_queue.landing import LandOutcome


def row(tid: str, state: str = "queued", **more: object) -> dict:
    r = {"task_id": tid, "state": state, "position": 1, "approved": False, "suspect": False,
         "reason_kind": None, "head": f"h-{tid}"}
    r.update(more)
    return r


def admission(verdict: str, detail: str = "", **more: object) -> Admission:
    return Admission(verdict, detail, **more)  # type: ignore[arg-type]


def test_admission_admits_holds_for_approval_or_evicts_with_the_send_back() -> None:
    [admitted] = mq.admission_events(row("a"), admission("admit"), "h1", require_approval=False)
    assert (admitted.type, admitted.data["head"]) == ("queue.admitted", "h1")
    [held] = mq.admission_events(row("a"), admission("admit"), "h1", require_approval=True)
    assert held.type == "queue.needs_approval"
    approved = mq.admission_events(row("a", approved=True), admission("admit"), "h1",
                                   require_approval=True)
    assert [e.type for e in approved] == ["queue.admitted"]
    resolve = mq.resolve_events("a", "conflicts", ["f"], enabled=True, is_task=True,
                                target="main")
    conflict = mq.admission_events(row("a"), admission("conflict", detail="x",
                                                       conflicted_files=("f",)),
                                   "h1", require_approval=False, resolve=resolve)
    assert [e.type for e in conflict] == ["queue.evicted", "task.requeued"]
    assert conflict[0].data["kind"] == "conflict"
    [error] = mq.admission_events(row("a"), "no branch wf/a", None, require_approval=False)
    assert (error.data["kind"], error.data["detail"]) == ("error", "no branch wf/a")
    assert mq.resolve_events("a", "d", [], enabled=True, is_task=False, target="main") == []


def test_known_results_follow_the_cache_for_the_same_checks_only() -> None:
    key = mq.checks_key([["pytest"]])
    assert key != mq.checks_key([["pytest", "-x"]])
    tested = {mq.tree_key("t1", key): {"result": "pass"},
              mq.tree_key("t2", key): {"result": "fail"},
              mq.tree_key("t3", key): {"result": "infra"}}
    assert mq.known_results(["t1", "t2", "t3", "t4"], tested, key) == {1: True, 2: False}


def test_a_culprit_is_rechecked_once_flakes_were_seen_and_evicted_after_two_fails() -> None:
    entry = Entry("b", "wf/b", "hb")
    queue = {"b": row("b")}
    assert not mq.should_recheck(entry, {"fails": 1}, queue, flaky_seen=False, blame=False)
    assert mq.should_recheck(entry, {"fails": 1}, queue, flaky_seen=True, blame=False)
    assert not mq.should_recheck(entry, {"fails": 2}, queue, flaky_seen=True, blame=False)
    named_other = {"b": row("b"), "c": row("c", suspect=True)}
    assert mq.should_recheck(entry, {"fails": 1}, named_other, flaky_seen=False, blame=True)
    evicted = mq.culprit_eviction(entry, 2, "tree", {"detail": "pytest: exit 1"}, "main")
    assert evicted.data["detail"] == ("fails the checks on top of main and 2 entries before "
                                      "it: `pytest` exit 1")


def test_backoffs_grow_then_pause() -> None:
    assert [mq.git_error_backoff(n, "boom").delay for n in range(3)] == [1.0, 2.0, 4.0]
    assert mq.git_error_backoff(3, "boom").pause == "boom"
    assert mq.infra_backoff(3).pause is not None and mq.infra_backoff(0).delay == 1.0
    assert mq.only_infra(["infra", "infra"]) and not mq.only_infra(["infra", "fail"])


def test_a_flake_is_seen_once_when_a_longer_prefix_passes_where_a_shorter_failed() -> None:
    assert mq.flaky_event({1: "fail", 2: "pass"}, False) is not None
    assert mq.flaky_event({1: "fail", 2: "pass"}, True) is None
    assert mq.flaky_event({1: "pass", 2: "fail"}, False) is None


def test_a_landing_records_its_outcome() -> None:
    entries = [Entry("a", "wf/a", "ha"), Entry("b", "wf/b", "hb")]
    landed, after = mq.landing_outcome(LandOutcome("landed", "ok"), entries=entries, base="B",
                                       commit="C", target="main", last_refusal=None)
    assert landed.base == "C" and [e.type for e in landed.events] == ["queue.target_moved"]
    assert [(e.stream, e.type) for e in after] == [("task:a", "queue.landed"),
                                                   ("task:b", "queue.landed")]
    refused, _ = mq.landing_outcome(LandOutcome("refused", "dirty"), entries=entries,
                                    base="B", commit="C", target="main", last_refusal=None)
    assert refused.base is None and refused.wait > 0 and len(refused.events) == 1
    again, _ = mq.landing_outcome(LandOutcome("refused", "dirty"), entries=entries, base="B",
                                  commit="C", target="main", last_refusal="dirty")
    assert again.events == ()  # said once, not every retry
    evicted, _ = mq.landing_outcome(LandOutcome("evicted", "red", kind="forge_check"),
                                    entries=entries, base="B", commit="C", target="main",
                                    last_refusal=None)
    assert evicted.base == "B" and evicted.events[0].data["kind"] == "forge_check"


def test_conflicts_and_landings_found_in_git_are_recorded() -> None:
    entries = [Entry("a", "wf/a", "ha"), Entry("b", "wf/b", "hb")]
    detail, event = mq.conflict_eviction(entries, Conflict(1, ("f.py",)), "main")
    assert detail == "conflicts with a in f.py" and event.stream == "task:b"
    events = mq.already_landed([row("a"), row("b")], ["h-b"], "T", "main")
    assert [(e.stream, e.data["reconciled"]) for e in events] == [("task:b", True)]
