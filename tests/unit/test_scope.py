"""Which tasks the views show by default, and in what order (wf.scope), and the live table's
promise that the summary fits: past the terminal's height, finished rows give way."""

from __future__ import annotations

from rich.console import Console

from wf.cli.view import tasks_table
from wf.scope import current_run, display_order, run_start


def row(tid, state, updated, seq):
    return {"id": tid, "state": state, "updated_ts": updated, "submitted_seq": seq,
            "agent": "a", "attempts": 0, "spec": {}}


def test_the_current_run_starts_at_the_newest_wf_run_and_resume_carries_it_on():
    runs = [{"started_ts": 10.0, "argv": ["wf run"]}, {"started_ts": 50.0, "argv": ["wf run"]},
            {"started_ts": 90.0, "argv": ["wf resume"]}]
    assert run_start(runs) == 50.0
    assert run_start([]) is None


def test_the_current_run_holds_what_moved_since_and_everything_unfinished():
    tasks = [row("old-done", "done", 20, 1), row("old-failed", "failed", 30, 2),
             row("old-queued", "queued", 30, 3), row("new", "done", 60, 4)]
    assert [t["id"] for t in current_run(tasks, 50.0)] == ["old-queued", "new"]
    assert len(current_run(tasks, None)) == 4  # no run yet: everything


def test_active_tasks_come_first_then_the_rest_in_submission_order():
    tasks = [row("a", "done", 0, 1), row("b", "failed", 0, 2), row("c", "running", 0, 3),
             row("d", "queued", 0, 4), row("e", "retrying", 0, 5), row("f", "running", 0, 6)]
    assert [t["id"] for t in display_order(tasks)] == ["c", "f", "e", "d", "a", "b"]


def test_the_live_table_keeps_to_its_rows_and_says_what_it_left_out(tmp_path):
    tasks = [row(f"task-{i:02}", "done", 0, i) for i in range(40)]
    tasks.append(row("the-running-one-with-a-long-identifier-that-must-stay-whole", "running",
                     0, 99))
    console = Console(width=60, record=True)
    console.print(tasks_table(tasks, tmp_path, 0.0, max_rows=6))
    lines = console.export_text().splitlines()
    assert len(lines) == 7  # the header and six rows
    assert "the-running-one-with-a-long-identifier-that-must-stay-whole" in lines[1]
    assert "36 done not shown" in lines[-1]
