"""The worktree pool's pure rules: the reducer of the ``pool`` stream (live appends equal a
rebuild), which slot a task gets, when setup runs again, refill, the disk cap, giving back,
and what a crashed step becomes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wf.model import NewEvent
from wf.pool import rules
from wf.pool.rules import POOL_STREAM, Want
from wf.store import SqliteEventStore
from wf.store.projections import fold

OWNER = {"pid": 1, "start": 2, "host": "h"}


def row(slot: str, state: str = "ready", *, base: str = "c1", key: str | None = "k1",
        size: int | None = 100, ts: float = 1.0, task: str | None = None) -> dict[str, Any]:
    r = dict.fromkeys(rules.COLUMNS)
    r.update(slot=slot, path=f"/wt/{rules.slot_dir(slot)}", state=state, base=base, key=key,
             size=size, updated_ts=ts, task=task, uses=0)
    return r


def rows(*items: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["slot"]: r for r in items}


def test_a_slot_folder_never_looks_like_a_task_id() -> None:
    assert rules.slot_dir("p12") == ".wf-pool-12"


def test_a_task_gets_a_ready_slot_valid_for_its_setup_then_at_its_commit_then_the_oldest():
    pool = rows(row("p1", base="c0", key="k0", ts=1.0), row("p2", base="c1", key="k0", ts=2.0),
                row("p3", base="c0", key="k1", ts=3.0), row("p4", "preparing", key="k1"),
                row("p5", "taken", key="k1", base="c1", task="x"))
    assert rules.choose_slot(pool, Want("c1", "k1")) == "p3"  # valid setup beats the commit
    assert rules.choose_slot(pool, Want("c1", "k9")) == "p2"  # at the task's commit
    assert rules.choose_slot(pool, Want("c7", None)) == "p1"  # idle the longest
    assert rules.choose_slot(rows(row("p4", "preparing")), Want("c1", "k1")) is None


def test_setup_runs_again_unless_it_ran_for_exactly_these_inputs():
    assert not rules.setup_needed("k1", "k1")
    assert rules.setup_needed("k1", "k2")
    assert rules.setup_needed(None, "k1")  # never set up, or a setup cut short
    assert rules.setup_needed("k1", None)  # no setup_inputs named: nothing says it is valid


def test_a_returned_slot_keeps_its_setup_only_if_the_task_left_the_inputs_alone():
    assert rules.key_after_return("k1", "k1") == "k1"
    assert rules.key_after_return("k1", "k2") is None
    assert rules.key_after_return(None, None) is None


def test_a_new_slot_takes_the_smallest_free_name():
    assert rules.next_slot(rows(row("p1"), row("p3")), []) == "p2"
    assert rules.next_slot(rows(row("p1")), [".wf-pool-2"]) == "p3"


def test_refill_prepares_what_is_missing_within_the_disk_cap():
    pool = rows(row("p1", size=100), row("p2", "taken", task="t", size=5000))
    assert rules.to_prepare(pool, 3, None) == 2
    assert rules.to_prepare(pool, 3, 5000) == 2  # held slots are the tasks', not the pool's
    assert rules.to_prepare(rows(row("p1", size=100)), 4, 250) == 1  # the largest: 100 each
    assert rules.to_prepare(rows(), 3, 1000) == 1  # nothing measured yet: one at a time
    assert rules.to_prepare(pool, 1, None) == 0
    assert rules.to_prepare(pool, 2, None, held_come_back=True) == 0  # p2 comes back


def test_the_cap_evicts_idle_slots_idle_longest_first():
    pool = rows(row("p1", size=300, ts=3.0), row("p2", size=300, ts=1.0),
                row("p3", size=300, ts=2.0), row("p4", "taken", size=900, task="t"))
    assert rules.evict_for_cap(pool, 500) == ["p2", "p3"]
    assert rules.evict_for_cap(pool, 700) == ["p2"]
    assert rules.evict_for_cap(pool, 900) == []
    assert rules.evict_for_cap(pool, None) == []


def test_a_finished_tasks_slot_is_returned_while_the_pool_has_room():
    pool = rows(row("p1"), row("p2", "taken", task="t", size=200))
    assert rules.give_back(pool, "p2", 2, None) == "return"
    assert rules.give_back(pool, "p2", 1, None) == "remove"  # already one idle
    assert rules.give_back(pool, "p2", 2, 250) == "remove"  # 100 + 200 > 250
    preparing = rows(row("p1", "preparing"), row("p2", "taken", task="t"))
    assert rules.give_back(preparing, "p2", 1, None) == "return"  # set up already: kept
    assert rules.holder(pool, "t")["slot"] == "p2" and rules.holder(pool, "u") is None


def test_a_step_whose_owner_died_is_finished_by_the_next_keeper():
    assert rules.stale(row("p1", "preparing"), owner_alive=False)
    assert not rules.stale(row("p1", "preparing"), owner_alive=True)
    assert not rules.stale(row("p1", "ready"), owner_alive=False)
    assert [rules.recovery(row("p", s)) for s in ("preparing", "returning", "removing",
                                                  "taking", "creating")] == [
        "prepare", "return", "remove", "wait", "wait"]


def test_the_pool_table_is_the_fold_of_its_events(tmp_path: Path) -> None:
    def ev(type_: str, **data: Any) -> NewEvent:
        return NewEvent(POOL_STREAM, type_, data)

    with SqliteEventStore(tmp_path / "wf.db") as store:
        store.append([ev("pool.prepare_requested", slot="p1", path="/wt/.wf-pool-1",
                         base="c1", owner=OWNER),
                      ev("pool.prepare_requested", slot="p2", path="/wt/.wf-pool-2",
                         base="c1", owner=OWNER)], ts=1.0)
        store.append([ev("pool.prepared", slot="p1", base="c1", key="k1", size=10)], ts=2.0)
        store.append([ev("pool.take_requested", slot="p1", task="t", branch="wf/t",
                         start="c1", owner=OWNER)], ts=3.0)
        store.append([ev("pool.taken", slot="p1", task="t", base="c1"),
                      ev("pool.setup_started", slot="p1"),
                      ev("pool.setup_done", slot="p1", key="k2")], ts=4.0)
        store.append([ev("pool.return_requested", slot="p1", task="t", owner=OWNER),
                      ev("pool.returned", slot="p1", base="c2", key="k2", size=12),
                      ev("pool.remove_requested", slot="p2", reason="drain", owner=OWNER),
                      ev("pool.removed", slot="p2")], ts=5.0)
        live = store.pool()
        assert [(r["slot"], r["state"], r["task"], r["base"], r["key"], r["size"], r["uses"])
                for r in live] == [("p1", "ready", None, "c2", "k2", 12, 1)]
        rebuilt = fold(store.read()).pool
        assert sorted(rebuilt.values(), key=lambda r: r["slot"]) == live
        store.rebuild_projections()
        assert store.pool() == live
