"""The dashboard driven with Pilot against real event logs made by real runs of script agents:
what it shows, and that each key writes the signal the engine then acts on."""

from __future__ import annotations

import json
import sys

import pytest
from dashrun import drive, tasks_file, until
from helpers import commit_files, git
from rich.syntax import Syntax
from runwf import events, status, wf, wf_bg

from wf.tui.cells import COLUMNS
from wf.tui.confirm import ConfirmScreen
from wf.tui.detail import DetailPane
from wf.tui.tasks_table import TasksTable


def cell(app, task_id, column):
    keys = [key for key, _ in COLUMNS]
    return str(app.query_one(TasksTable).shown[task_id][keys.index(column)])


async def select(pilot, app, task_id):
    table = app.query_one(TasksTable)
    table.focus()
    table.move_cursor(row=table.get_row_index(task_id))
    await until(pilot, lambda: app.selected == task_id, f"{task_id} selected")


def state(app, task_id):
    return app.feed.p.tasks.get(task_id, {}).get("state")


def transcript(app):
    return "\n".join(app.query_one(DetailPane).transcript.lines)


@pytest.fixture
def finished(repo):
    proc = wf(repo, "run", str(tasks_file(repo, {"ok": "commit", "bad": "fail 3"})))
    assert proc.returncode == 1, proc.stderr
    return repo


def test_the_table_fills_from_the_log_and_a_selected_task_shows_output_diff_attempts(finished):
    async def scenario(pilot, app):
        table = app.query_one(TasksTable)
        assert list(table.shown) == ["ok", "bad"]  # submission order
        assert cell(app, "ok", "state") == "✔ done" and cell(app, "bad", "state") == "✘ failed"
        assert cell(app, "bad", "try") == "2/2"
        assert cell(app, "ok", "usage") == "–"  # this agent reports no usage
        await until(pilot, lambda: cell(app, "ok", "lines") == "+1 −0", "ok's line counts")
        await until(pilot, lambda: cell(app, "bad", "last") == "something went wrong",
                    "bad's last output line")

        await select(pilot, app, "bad")
        await until(pilot, lambda: "something went wrong" in transcript(app), "bad's log")
        await pilot.press("enter")  # focus the detail pane
        assert app.focused is app.query_one(DetailPane).transcript
        app.query_one(DetailPane).active = "attempts"
        await pilot.pause()
        attempts = str(app.query_one("#attempts-body").content)
        assert "#1" in attempts and "#2" in attempts and "agent_error" in attempts

        await select(pilot, app, "ok")
        await pilot.press("d")
        body = app.query_one("#diff-body")
        await until(pilot, lambda: isinstance(body.content, Syntax), "ok's diff")
        assert "+++ b/notes/ok.txt" in body.content.code and "+ok attempt 1" in body.content.code
        await pilot.press("l")
        assert app.query_one(DetailPane).active == "log"
        await until(pilot, lambda: "agent commit task=ok" in transcript(app), "ok's log")

    drive(finished, scenario)


def test_filter_by_state_or_words(finished):
    async def scenario(pilot, app):
        table = app.query_one(TasksTable)
        await pilot.press("slash", *"failed")
        assert list(table.shown) == ["bad"]
        await pilot.press("enter")  # back to the table, filter kept
        assert app.focused is table and list(table.shown) == ["bad"]
        await pilot.press("slash", *["backspace"] * 6, *"do ok")  # words: prompt and id
        assert list(table.shown) == ["ok"]
        await pilot.press("escape")  # clears the filter
        assert list(table.shown) == ["ok", "bad"]

    drive(finished, scenario)


@pytest.mark.parametrize(("size", "compact"), [((80, 24), True), ((160, 48), False)])
def test_a_small_terminal_shows_the_table_and_one_pane(finished, size, compact):
    async def scenario(pilot, app):
        detail, queue = app.query_one("#detail"), app.query_one("#queue-box")
        table = app.query_one(TasksTable)
        assert table.region.height >= 4 and detail.region.height >= 6
        assert detail.display and queue.display is not compact
        assert table.region.bottom <= detail.region.y  # stacked, not overlapping
        if compact:
            await pilot.press("v")  # swap to the queue pane
            await pilot.pause()
            assert queue.display and not detail.display
            await pilot.press("d")  # a detail key brings the detail back
            await pilot.pause()
            assert detail.display and not queue.display

    drive(finished, scenario, size=size)


def test_keys_send_signals_the_running_engine_acts_on(repo):
    path = tasks_file(repo, {"h1": "hang", "h2": "hang", "bad": "fail 3"}, attempts=1)
    run = wf_bg(repo, "run", str(path))
    try:
        async def scenario(pilot, app):
            p = app.feed.p
            await until(pilot, lambda: [state(app, t) for t in ("h1", "h2", "bad")]
                        == ["running", "running", "failed"], "tasks started")
            assert app.engine_active or await until(pilot, lambda: app.engine_active, "engine")

            await select(pilot, app, "h1")
            await pilot.press("c")
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("n")  # not confirmed: nothing sent
            assert not isinstance(app.screen, ConfirmScreen)
            await pilot.press("c", "y")
            await until(pilot, lambda: p.tasks["h1"]["state"] == "cancelled", "h1 cancelled")
            await until(pilot, lambda: "cancel h1: cancelling" in app.notices, "engine reply")

            await pilot.press("r")  # a cancelled task runs again
            await until(pilot, lambda: p.tasks["h1"]["state"] == "running"
                        and p.tasks["h1"]["attempts"] == 2, "h1 running again")

            await select(pilot, app, "bad")
            await pilot.press("r")  # fails again: the failure pops up
            await until(pilot, lambda: any(n.startswith("bad failed: agent_error")
                                           for n in app.notices), "failure notice")

            for tid in ("h1", "h2"):
                await select(pilot, app, tid)
                await pilot.press("c", "y")
            await until(pilot, lambda: run.poll() is not None, "the run to end", timeout=60)

        drive(repo, scenario)
    finally:
        if run.poll() is None:
            run.kill()
        run.communicate()
    assert run.returncode == 1
    kinds = [(e["data"]["kind"], e["data"]["task"]) for e in events(repo, "signal.sent")]
    assert kinds == [("cancel", "h1"), ("retry", "h1"), ("retry", "bad"), ("cancel", "h1"),
                     ("cancel", "h2")]
    assert {t: r["state"] for t, r in status(repo).items()} == {
        "h1": "cancelled", "h2": "cancelled", "bad": "failed"}


def test_queue_keys_wait_as_signals_for_the_next_run(repo):
    commit_files(repo, {"wf.toml": "[merge]\nrequire_approval = true\n"}, "queue config")
    proc = wf(repo, "run", str(tasks_file(repo, {"a": "commit", "b": "commit"})))
    assert proc.returncode == 0, proc.stderr

    async def enqueue(pilot, app):
        for tid in ("a", "b"):
            await select(pilot, app, tid)
            await pilot.press("m")
        await until(pilot, lambda: sum("no engine is running" in n for n in app.notices) == 2,
                    "the signals recorded")

    drive(repo, enqueue)
    assert wf(repo, "resume").returncode == 0  # admits both; approvals do not hold the run

    async def decide(pilot, app):
        q = app.feed.p.queue
        assert q["a"]["state"] == q["b"]["state"] == "waiting_approval"
        await select(pilot, app, "a")
        await pilot.press("a")
        await select(pilot, app, "b")
        await pilot.press("x")
        await until(pilot, lambda: len(events(repo, "signal.sent")) == 4, "approve and reject")

    drive(repo, decide)
    assert wf(repo, "resume").returncode == 1  # b was rejected: evicted, not a success

    async def after(pilot, app):
        q = app.feed.p.queue
        assert (q["a"]["state"], q["b"]["state"]) == ("landed", "evicted")
        assert q["b"]["reason"] == "rejected in wf dash"
        assert cell(app, "a", "state") == "⬆ merged"

    drive(repo, after)


def test_a_queue_that_stops_pops_up_with_the_reason(repo, tmp_path):
    (tmp_path / "infra.py").write_text("import sys\nsys.exit(75)\n")
    check = json.dumps([sys.executable, str(tmp_path / "infra.py")])
    commit_files(repo, {"wf.toml": f"[merge]\ncheck = {check}\n"}, "queue config")
    git(repo, "checkout", "-q", "-b", "g")
    commit_files(repo, {"g.txt": "ok\n"}, "g")
    git(repo, "checkout", "-q", "-")
    assert wf(repo, "queue", "add", "--branch", "g", "--id", "g").returncode == 0
    run = wf_bg(repo, "resume")
    try:
        async def scenario(pilot, app):
            await until(pilot, lambda: any(
                n.startswith("the merge queue stopped: checks keep failing with exit 75")
                for n in app.notices), "the stop notice", timeout=60)

        drive(repo, scenario)
    finally:
        if run.poll() is None:
            run.kill()
        run.communicate()


def test_a_pull_request_without_a_forge_is_a_notice_not_a_crash(finished):
    async def scenario(pilot, app):
        await pilot.press("p")  # the repository has no remote: wf pr's own one-line error
        await until(pilot, lambda: any("no remote 'origin'" in n
                                       for n in app.notices), "the error notice")
        assert app.is_running

    drive(finished, scenario)


def test_the_command_palette_lists_the_actions(finished):
    async def scenario(pilot, app):
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert {"Retry", "Cancel", "Approve", "Reject", "Queue", "PR", "Diff", "Log",
                "Filter"} <= set(titles)
        await pilot.press("ctrl+p", *"retry")
        await pilot.pause()
        assert app.screen.__class__.__name__ == "CommandPalette"

    drive(finished, scenario)


def test_agent_events_make_the_transcript_when_the_adapter_writes_them(finished):
    from wf.model import NewEvent, task_stream
    from wf.store import SqliteEventStore

    async def scenario(pilot, app):
        await select(pilot, app, "ok")
        await until(pilot, lambda: "agent commit task=ok" in transcript(app), "the log file")
        store = SqliteEventStore(finished / ".git" / "wf" / "wf.db")
        store.append([
            NewEvent(task_stream("ok"), "agent.message",
                     {"n": 1, "role": "assistant", "text": "I will add the notes"}),
            NewEvent(task_stream("ok"), "agent.tool", {"n": 1, "name": "bash",
                                                       "summary": "git commit"})])
        store.close()
        await until(pilot, lambda: transcript(app) == "assistant: I will add the notes\n"
                    "→ bash git commit", "the agent's own transcript")

    drive(finished, scenario)


def test_a_refused_key_pops_up_the_reason_as_written_brackets_and_all(finished):
    from textual.widgets._toast import Toast

    async def scenario(pilot, app):
        await select(pilot, app, "ok")
        await pilot.press("m")  # no [merge] section: the enqueue is refused, nothing recorded
        toasts = await until(pilot, lambda: list(app.screen.query(Toast)), "the pop-up")
        shown = str(toasts[-1].render())
        assert shown == "cannot queue ok: the merge queue is not enabled ([merge] in wf.toml)"
        assert events(finished, "signal.sent") == []

    drive(finished, scenario, notifications=True)


def test_a_task_forgotten_while_the_dashboard_is_open_leaves_the_table(finished):
    async def scenario(pilot, app):
        table = app.query_one(TasksTable)
        await select(pilot, app, "bad")
        proc = wf(finished, "clean", "bad", "--forget")
        assert proc.returncode == 0, proc.stderr
        await until(pilot, lambda: list(table.shown) == ["ok"], "bad's row gone")
        app.tick()  # the once-a-second refresh reads every shown row
        assert app.selected == "ok"

    drive(finished, scenario)


def test_a_budget_pause_is_a_marker_a_pop_up_and_an_attention_item(repo, tmp_path):
    """A real run: a script agent printing Claude Code's usage crosses its task's budget; the
    dashboard marks it paused, pops up why and lists it in the header until `wf budget`."""
    from runwf import agent_cmd, fast_retry, write_tasks

    path = write_tasks(repo, fast_retry(2) + f'\n[agents.s]\ncommand = {agent_cmd("spend", "30")}'
                       '\nadapter = "claude"\n\n[[task]]\nid = "t"\nprompt = "x"\nagent = "s"\n'
                       'budget = { max_tokens = 1000 }\n')
    run = wf_bg(repo, "run", str(path))
    try:
        async def scenario(pilot, app):
            await until(pilot, lambda: cell(app, "t", "state") == "⏸ paused"
                        if "t" in app.query_one(TasksTable).shown else False, "the pause")
            await until(pilot, lambda: any(n.startswith("t: task:t used") for n in app.notices),
                        "the budget pop-up")
            assert "⚠ budget: t" in str(app.query_one("#totals").render())
            assert wf(repo, "budget", "t", "--tokens", "10k").returncode == 0
            await until(pilot, lambda: state(app, "t") == "done", "the task done", timeout=60)
            assert "⚠ budget" not in str(app.query_one("#totals").render())

        drive(repo, scenario)
        assert run.wait(timeout=60) == 0
    finally:
        if run.poll() is None:
            run.kill()
        run.communicate()
