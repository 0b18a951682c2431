"""The dashboard on an 80×24 terminal: the cancel question is shown whole, the footer shows
every key, and End, Home and PageDown keep the chosen row on the screen."""

from __future__ import annotations

import math

from dashrun import drive, until
from test_snapshots import NOW, Log
from textual.widgets import Label
from textual.widgets._footer import FooterKey

from wf.tui.confirm import ConfirmScreen
from wf.tui.tasks_table import TasksTable

SIZE = (80, 24)


def many_tasks(repo, n=40):
    log = Log(repo)
    for i in range(n):
        log.submit(f"task-{i:02}")
    log.close()


def test_the_cancel_question_is_shown_whole(repo):
    many_tasks(repo, 2)
    question = ("Cancel task-00? Its agent is stopped and it is not retried; its worktree "
                "and branch stay for `wf retry` or `wf clean`.")
    found = {}

    async def scenario(pilot, app):
        app.push_screen(ConfirmScreen(question))
        await pilot.pause()
        label = app.screen.query(Label).first()
        found.update(width=label.content_region.width, height=label.content_region.height,
                     right=label.region.right)

    drive(repo, scenario, size=SIZE, clock=lambda: NOW)
    assert found["width"] > 0 and found["height"] >= math.ceil(len(question) / found["width"])
    assert found["right"] <= SIZE[0]


def test_the_footer_shows_every_key_on_80_columns(repo):
    many_tasks(repo, 2)
    shown = []

    async def scenario(pilot, app):
        await pilot.pause()
        shown.extend((k.key_display, k.region) for k in app.screen.query(FooterKey))

    drive(repo, scenario, size=SIZE, clock=lambda: NOW)
    assert shown and all(r.right <= SIZE[0] and r.width > 0 for _k, r in shown), shown
    assert {k for k, _r in shown} >= {"r", "c", "a", "x", "m", "p", "d", "l", "q"}


def test_end_home_and_pagedown_keep_the_chosen_row_on_screen(repo):
    many_tasks(repo, 40)
    seen = []

    async def scenario(pilot, app):
        table = app.query_one(TasksTable)
        await until(pilot, lambda: table.row_count == 40 and table.max_scroll_y > 0,
                    "every row, laid out")
        table.focus()
        for key in ("end", "home", "pagedown", "end"):
            await pilot.press(key)
            await pilot.pause()
            seen.append((key, table.cursor_row, table.scroll_offset.y,
                         table.scrollable_content_region.height - 1))

    drive(repo, scenario, size=SIZE, clock=lambda: NOW)
    assert [row for _k, row, _t, _n in seen][::3] == [39, 39]
    assert all(top <= row < top + rows for _k, row, top, rows in seen), seen
