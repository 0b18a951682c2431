"""The event store contract, run against every implementation, plus the group-commit writer.

Real SQLite files in tmp_path; a second store instance on the same file stands in for a second
process, and one test runs a real second process.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from wf.errors import ConcurrencyError, StoreDamaged, StoreError
from wf.model import RUN_STREAM, SIGNAL_STREAM, Event, NewEvent, task_stream
from wf.store import EventStore, GroupCommitWriter, SqliteEventStore
from wf.store.projections import COLUMNS

StoreFactory = Callable[..., EventStore]  # open_store(path=the test's default file)
IMPLEMENTATIONS: dict[str, Callable[[Path], EventStore]] = {"sqlite": SqliteEventStore}


def spec(task_id: str, **extra: object) -> dict[str, object]:
    return {"id": task_id, "prompt": f"do {task_id}", "agent": "shell",
            "command": ["sh", "-c", "x"], "env": {}, "depends_on": [], "base": "main",
            "timeout": None,
            "no_output_timeout": None, "retry": {"maximum_attempts": 3}, "setup": None, **extra}


def submitted(task_id: str, **kw: Any) -> NewEvent:
    return NewEvent(task_stream(task_id), "task.submitted", {"spec": spec(task_id)}, **kw)


def signal(kind: str, task_id: str, **kw: Any) -> NewEvent:
    return NewEvent(SIGNAL_STREAM, "signal.sent", {"kind": kind, "task": task_id}, **kw)


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Opens stores of the implementation under test; closes them all afterwards."""
    factory, opened = IMPLEMENTATIONS[request.param], []

    def open_(path: Path = tmp_path / "wf" / "wf.db") -> EventStore:
        opened.append(factory(path))
        return opened[-1]

    yield open_
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: StoreFactory) -> EventStore:
    return open_store()


# -- appending -----------------------------------------------------------------------------------
def test_append_assigns_seq_and_stream_versions(store: EventStore) -> None:
    first = store.append([submitted("a"), submitted("b")], ts=100.0)
    second = store.append([NewEvent(task_stream("a"), "task.setup_done")], ts=101.0)

    assert [(e.seq, e.stream, e.stream_version) for e in first + second] == [
        (1, "task:a", 1), (2, "task:b", 1), (3, "task:a", 2)]
    assert [e.ts for e in first + second] == [100.0, 100.0, 101.0]
    assert store.last_seq() == 3
    assert store.stream_version("task:a") == 2
    assert store.stream_version("task:nobody") == 0
    assert store.read() == first + second


def test_data_is_returned_as_stored(store: EventStore) -> None:
    [e] = store.append([NewEvent("notes", "note", {"argv": ("a", "b"), "n": {1: "x"}})])

    assert e.data == {"argv": ["a", "b"], "n": {"1": "x"}}
    assert store.read() == [e]


def test_expected_version_is_the_version_the_event_gets(store: EventStore) -> None:
    store.append([submitted("a", expected_version=1)])
    store.append([NewEvent(task_stream("a"), "task.setup_done", expected_version=2)])

    with pytest.raises(ConcurrencyError, match="task:a"):
        store.append([NewEvent(task_stream("a"), "task.setup_done", expected_version=2)])
    assert store.stream_version("task:a") == 2


def test_a_rejected_append_writes_nothing(store: EventStore) -> None:
    with pytest.raises(ConcurrencyError):
        store.append([submitted("a"), NewEvent(task_stream("b"), "x", expected_version=7)])

    assert store.read() == []
    assert store.tasks() == []
    assert store.append([submitted("a")])[0].seq == 1


def test_idempotency_key_returns_the_stored_event(store: EventStore) -> None:
    [original] = store.append([signal("cancel", "a", idempotency_key="k1")])

    again = store.append([signal("cancel", "a", idempotency_key="k1"), signal("retry", "b")])

    assert again[0] == original
    assert again[1].seq == 2 and again[1].stream_version == 2
    assert len(store.read()) == 2
    assert len(store.signals()) == 2


def test_idempotency_key_twice_in_one_append(store: EventStore) -> None:
    events = store.append([signal("cancel", "a", idempotency_key="k"),
                           signal("cancel", "a", idempotency_key="k")])

    assert events[0] == events[1]
    assert store.last_seq() == 1


def test_append_many_isolates_a_failing_batch(store: EventStore) -> None:
    results = store.append_many([
        [submitted("a")],
        [submitted("b"), NewEvent(task_stream("a"), "task.setup_done", expected_version=5)],
        [submitted("c")],
    ])

    first, failed, third = results
    assert isinstance(failed, ConcurrencyError)
    assert isinstance(first, list) and isinstance(third, list)
    assert [e.stream for e in first + third] == ["task:a", "task:c"]
    assert [e.seq for e in store.read()] == [1, 2]
    assert [t["id"] for t in store.tasks()] == ["a", "c"]


def test_a_batch_the_projections_cannot_take_is_rejected(store: EventStore) -> None:
    results = store.append_many([
        [submitted("a")],
        [submitted("b"), NewEvent(task_stream("c"), "task.submitted", {"no": "spec"})],
        [NewEvent(task_stream("a"), "task.worktree_requested", {"branch": "wf/a", "path": "/w"})],
        [NewEvent(task_stream("a"), "task.succeeded", {"commit": {"not": "a scalar"}})],
    ])

    assert isinstance(results[1], StoreError) and "task.submitted" in str(results[1])
    assert isinstance(results[3], StoreError) and "tasks.commit_sha" in str(results[3])
    assert [e.type for e in store.read()] == ["task.submitted", "task.worktree_requested"]
    [a] = store.tasks()
    assert (a["id"], a["worktree"], a["state"], a["version"]) == ("a", "/w", "queued", 2)
    before = store.snapshot()
    store.rebuild_projections()
    assert store.snapshot() == before


@pytest.mark.parametrize("data", [{"x": object()}, {"x": float("nan")}, ["not", "a dict"]])
def test_data_must_be_a_json_object(store: EventStore, data: object) -> None:
    with pytest.raises(StoreError, match="data"):
        store.append([NewEvent("s", "t", data)])  # type: ignore[arg-type]
    assert store.last_seq() == 0


def test_clock_is_injected(tmp_path: Path) -> None:
    with SqliteEventStore(tmp_path / "wf.db", clock=lambda: 42.0) as store:
        assert store.append([submitted("a")])[0].ts == 42.0


# -- reading -------------------------------------------------------------------------------------
def test_read_filters(store: EventStore) -> None:
    store.append([submitted("a"), signal("cancel", "a"), submitted("b"),
                  NewEvent(task_stream("a"), "task.setup_done"), signal("retry", "b")])

    assert [e.seq for e in store.read(since=2)] == [3, 4, 5]
    assert [e.seq for e in store.read(limit=2)] == [1, 2]
    assert [e.seq for e in store.read(stream="task:a")] == [1, 4]
    assert [e.seq for e in store.read(types=["signal.sent"])] == [2, 5]
    assert [e.seq for e in store.read(1, stream=SIGNAL_STREAM, limit=1)] == [2]
    assert [e.seq for e in store.read(types=["task.submitted", "task.setup_done"],
                                      since=1)] == [3, 4]
    assert store.read(types=[]) == []
    assert store.read(since=5) == []


def test_projection_reads(store: EventStore) -> None:
    store.append([submitted("b"), submitted("a"),
                  NewEvent(task_stream("a"), "attempt.started", {"n": 1}),
                  NewEvent(task_stream("a"), "attempt.spawned", {"n": 1, "pid": 7}),
                  NewEvent(RUN_STREAM, "run.started", {"run_id": "r1", "argv": ["run"]})], ts=1.0)
    [sent] = store.append([signal("cancel", "a")], ts=2.0)

    assert [t["id"] for t in store.tasks()] == ["b", "a"]  # submission order
    a = store.task("a")
    assert a is not None and a["state"] == "running" and a["spec"] == spec("a")
    assert store.task("nope") is None
    assert [(r["task_id"], r["n"], r["pid"]) for r in store.attempts()] == [("a", 1, 7)]
    assert store.attempts("b") == []
    assert [s["seq"] for s in store.signals()] == [sent.seq]
    assert store.signals()[0]["data"] == {"kind": "cancel", "task": "a"}
    assert [r["argv"] for r in store.runs()] == [["run"]]

    store.append([NewEvent(SIGNAL_STREAM, "signal.handled",
                           {"signal_seq": sent.seq, "result": "cancelled"})])
    assert store.signals() == []
    [handled] = store.signals(pending_only=False)
    assert handled["result"] == "cancelled"

    p = store.projection()
    assert p.tasks["a"] == store.task("a")
    assert p.attempts[("a", 1)]["pid"] == 7
    assert set(p.signals) == {sent.seq}
    assert set(p.runs) == {"r1"}


def test_snapshot_rows_are_sorted_by_primary_key(store: EventStore) -> None:
    store.append([submitted("b"), submitted("a"),
                  NewEvent(task_stream("b"), "attempt.started", {"n": 2}),
                  NewEvent(task_stream("b"), "attempt.started", {"n": 1})])

    snap = store.snapshot()
    assert set(snap) == set(COLUMNS)
    assert [t["id"] for t in snap["tasks"]] == ["a", "b"]
    assert [a["n"] for a in snap["attempts"]] == [1, 2]


# -- several writers -----------------------------------------------------------------------------
def test_two_instances_on_one_file_interleave(open_store: StoreFactory) -> None:
    one, two = open_store(), open_store()

    one.append([submitted("a")])
    two.append([NewEvent(task_stream("a"), "attempt.started", {"n": 1})])
    one.append([NewEvent(task_stream("a"), "attempt.spawned", {"n": 1, "pid": 9})])
    [sent] = two.append([signal("cancel", "a")])
    one.append([NewEvent(SIGNAL_STREAM, "signal.handled", {"signal_seq": sent.seq})])

    assert [(e.seq, e.stream_version) for e in one.read(stream="task:a")] == [
        (1, 1), (2, 2), (3, 3)]
    for store in (one, two):
        assert store.task("a")["state"] == "running"  # type: ignore[index]
        assert store.attempts("a")[0]["pid"] == 9
        assert store.signals() == []
    live = one.snapshot()
    assert two.snapshot() == live
    two.rebuild_projections()
    assert one.snapshot() == live


def test_a_decision_on_stale_state_loses(open_store: StoreFactory) -> None:
    one, two = open_store(), open_store()
    one.append([submitted("a")])
    seen = two.stream_version("task:a")

    one.append([NewEvent(task_stream("a"), "task.setup_done", expected_version=seen + 1)])
    with pytest.raises(ConcurrencyError):
        two.append([NewEvent(task_stream("a"), "task.cancelled", expected_version=seen + 1)])
    assert two.task("a")["state"] == "queued"  # type: ignore[index]


def test_a_second_process_appends_a_signal(store: EventStore, tmp_path: Path) -> None:
    store.append([submitted("a")])
    path = tmp_path / "wf" / "wf.db"
    script = (
        "import sys; from pathlib import Path\n"
        "from wf.model import NewEvent\n"
        "from wf.store import open_store\n"
        "with open_store(Path(sys.argv[1])) as s:\n"
        "    sent = NewEvent('signals', 'signal.sent', {'kind': 'cancel', 'task': 'a'})\n"
        "    [e] = s.append([sent])\n"
        "    print(e.seq)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    seq = int(proc.stdout)

    assert seq == 2
    assert [s["seq"] for s in store.signals()] == [seq]
    store.append([NewEvent(SIGNAL_STREAM, "signal.handled", {"signal_seq": seq, "result": "ok"})])
    assert store.signals() == []
    assert [e.type for e in store.read()] == ["task.submitted", "signal.sent", "signal.handled"]


# -- the SQLite file -----------------------------------------------------------------------------
def test_a_held_write_lock_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "wf.db"
    SqliteEventStore(path).close()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with SqliteEventStore(path, busy_timeout=0.05) as store:  # opening needs no lock
            assert store.tasks() == []
            with pytest.raises(StoreError, match="locked by another process"):
                store.append([submitted("a")])
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_the_file_is_wal_with_full_sync(tmp_path: Path) -> None:
    with SqliteEventStore(tmp_path / "deep" / "er" / "wf.db") as store:
        assert store.path.exists()
        conn = sqlite3.connect(store.path)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.close()
        assert store._query("PRAGMA synchronous")[0][0] == 2  # FULL


def test_what_is_not_an_event_log_is_refused(tmp_path: Path) -> None:
    (tmp_path / "junk.db").write_bytes(b"not sqlite" * 500)
    with pytest.raises(StoreDamaged, match="event log .*junk.db is damaged") as damaged:
        SqliteEventStore(tmp_path / "junk.db")
    assert damaged.value.exit_code == 4
    copies = list(tmp_path.glob("junk.db.damaged-*"))  # kept as found, before anything else
    assert len(copies) == 1 and copies[0].read_bytes() == b"not sqlite" * 500
    with pytest.raises(StoreError, match="cannot open event log"):
        SqliteEventStore(tmp_path)  # a directory


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "wf.db"
    SqliteEventStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.close()
    with pytest.raises(StoreError, match="schema version 99"):
        SqliteEventStore(path)


def test_changed_projection_tables_are_rebuilt_on_open(tmp_path: Path) -> None:
    path = tmp_path / "wf.db"
    with SqliteEventStore(path) as store:
        store.append([submitted("a")])
        live = store.snapshot()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '[]' WHERE key = 'projection_shape'")
        conn.execute("DELETE FROM tasks")
    conn.close()
    with SqliteEventStore(path) as store:
        assert store.snapshot() == live


def test_a_closed_store_says_so(store: EventStore) -> None:
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.read()
    with pytest.raises(StoreError, match="closed"):
        store.append([submitted("a")])


# -- group commit --------------------------------------------------------------------------------
@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SqliteEventStore]:
    with SqliteEventStore(tmp_path / "wf.db") as store:
        yield store


def test_writer_many_threads_each_event_once_in_stream_order(
        sqlite_store: SqliteEventStore) -> None:
    threads, per_thread = 8, 500
    heard: list[Event] = []
    with GroupCommitWriter(sqlite_store) as writer:
        writer.add_listener(heard.extend)

        def produce(t: int) -> None:
            futures = []
            for i in range(per_thread):
                event = NewEvent(f"producer:{t}", "tick", {"i": i}, idempotency_key=f"{t}/{i}")
                if i % 50 == 0:  # some producers wait for each commit, most do not
                    writer.append_sync([event])
                else:
                    futures.append(writer.submit([event]))
            for future in futures:
                future.result()

        workers = [threading.Thread(target=produce, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()

    events = sqlite_store.read()
    assert len(events) == threads * per_thread
    assert len({e.idempotency_key for e in events}) == threads * per_thread
    for t in range(threads):
        mine = [e for e in events if e.stream == f"producer:{t}"]
        assert [e.data["i"] for e in mine] == list(range(per_thread))
        assert [e.stream_version for e in mine] == list(range(1, per_thread + 1))
    assert heard == events  # every commit announced, once, in seq order


def test_writer_puts_a_rejected_batch_in_its_future(sqlite_store: SqliteEventStore) -> None:
    with GroupCommitWriter(sqlite_store) as writer:
        bad = writer.submit([NewEvent("s", "t", expected_version=3)])
        good = writer.submit([NewEvent("s", "t")])

        with pytest.raises(ConcurrencyError):
            bad.result()
        assert good.result()[0].stream_version == 1
        assert writer.append_sync([NewEvent("s", "t")])[0].stream_version == 2


def test_writer_reports_a_failed_transaction_and_keeps_going(tmp_path: Path) -> None:
    store = SqliteEventStore(tmp_path / "wf.db")
    with GroupCommitWriter(store) as writer:
        store.close()
        with pytest.raises(StoreError, match="closed"):
            writer.append_sync([NewEvent("s", "t")])
        with pytest.raises(StoreError, match="closed"):
            writer.append_sync([NewEvent("s", "t")])


def test_a_failing_listener_does_not_stop_the_writer(
        sqlite_store: SqliteEventStore, caplog: pytest.LogCaptureFixture) -> None:
    heard: list[Event] = []

    def broken(events: list[Event]) -> None:
        raise RuntimeError("listener bug")

    with GroupCommitWriter(sqlite_store) as writer:
        writer.add_listener(broken)
        writer.add_listener(heard.extend)
        first = writer.append_sync([NewEvent("s", "t")])
        writer.remove_listener(broken)
        second = writer.append_sync([NewEvent("s", "t")])

    assert heard == first + second
    assert "listener bug" in caplog.text


def test_listeners_do_not_hear_idempotent_repeats(sqlite_store: SqliteEventStore) -> None:
    heard: list[Event] = []
    with GroupCommitWriter(sqlite_store) as writer:
        writer.add_listener(heard.extend)
        [e] = writer.append_sync([NewEvent("s", "t", idempotency_key="k")])
        assert writer.append_sync([NewEvent("s", "t", idempotency_key="k")]) == [e]
    assert heard == [e]


def test_a_listener_cannot_wait_on_the_writer(sqlite_store: SqliteEventStore) -> None:
    errors: list[Exception] = []

    def listener(events: list[Event]) -> None:
        try:
            writer.append_sync([NewEvent("s", "nested")])
        except StoreError as exc:
            errors.append(exc)

    with GroupCommitWriter(sqlite_store) as writer:
        writer.add_listener(listener)
        writer.append_sync([NewEvent("s", "t")])
    assert len(errors) == 1 and "writer thread" in str(errors[0])


def test_close_flushes_and_refuses_more(sqlite_store: SqliteEventStore) -> None:
    writer = GroupCommitWriter(sqlite_store)
    futures = [writer.submit([NewEvent("s", "t", {"i": i})]) for i in range(100)]
    writer.close()
    writer.close()

    assert all(f.done() for f in futures)
    assert sqlite_store.last_seq() == 100
    with pytest.raises(StoreError, match="closed"):
        writer.submit([NewEvent("s", "t")])


def test_async_append(sqlite_store: SqliteEventStore) -> None:
    async def main() -> list[list[Event]]:
        results: list[list[Event]] = []

        async def one(i: int) -> None:
            results.append(await writer.append([NewEvent(f"s{i}", "t", {"i": i})]))

        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(one, i)
        return results

    with GroupCommitWriter(sqlite_store) as writer:
        results = anyio.run(main)

    assert sorted(r[0].data["i"] for r in results) == list(range(20))
    assert sqlite_store.last_seq() == 20


def test_events_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "wf.db"
    with SqliteEventStore(path) as store, GroupCommitWriter(store) as writer:
        written = writer.append_sync([submitted("a"), signal("cancel", "a")])
    with SqliteEventStore(path) as store:
        assert store.read() == written
        assert json.loads(json.dumps(store.snapshot())) == store.snapshot()


def test_a_cancelled_submission_is_dropped(sqlite_store: SqliteEventStore) -> None:
    entered, release = threading.Event(), threading.Event()

    def hold(events: list[Event]) -> None:
        if events[0].type == "hold":
            entered.set()
            release.wait()

    with GroupCommitWriter(sqlite_store) as writer:
        writer.add_listener(hold)
        first = writer.submit([NewEvent("s", "hold")])
        assert entered.wait(30)  # the writer thread is inside the listener
        dropped = writer.submit([NewEvent("s", "dropped")])
        kept = writer.submit([NewEvent("s", "kept")])
        assert dropped.cancel()
        release.set()
        assert first.result()[0].seq == 1
        assert kept.result()[0].seq == 2
    assert [e.type for e in sqlite_store.read()] == ["hold", "kept"]


def test_an_event_the_reducer_rejects_is_reported_by_seq(tmp_path: Path) -> None:
    path = tmp_path / "wf.db"
    with SqliteEventStore(path) as store:
        store.append([submitted("a")])
        live = store.snapshot()
        # Another writer (a different wf version, a hand edit) put in an event apply chokes on.
        raw = sqlite3.connect(path, isolation_level=None)
        raw.execute("INSERT INTO events VALUES (2, 'task:b', 1, 'task.submitted', 1.0, '{}', NULL)")
        raw.close()

        # Appends go on: the cache trusts the tables that other writer left.
        store.append([submitted("c")])
        assert [t["id"] for t in store.tasks()] == ["a", "c"]
        live = store.snapshot()

        with pytest.raises(StoreError, match="event 2 .task.submitted. .*cannot be projected"):
            store.rebuild_projections()
        assert store.snapshot() == live  # nothing half-done


def test_catching_up_after_many_foreign_events(open_store: StoreFactory) -> None:
    one, two = open_store(), open_store()
    one.append([submitted("a")])
    two.append([NewEvent(task_stream("a"), "attempt.progress", {"i": i}) for i in range(6000)])
    two.append([NewEvent(task_stream("a"), "attempt.started", {"n": 1})])

    [e] = one.append([NewEvent(task_stream("a"), "attempt.spawned", {"n": 1, "pid": 5})])

    assert e.stream_version == 6003
    assert one.task("a")["state"] == "running"  # type: ignore[index]
    live = one.snapshot()
    one.rebuild_projections()
    assert one.snapshot() == live
