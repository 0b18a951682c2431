"""The dashboard app: reads the event log, writes signals, and does nothing else.

Every read (the log, attempt logs, git diffs) runs in a thread worker and hands its result
back to the UI thread with ``call_from_thread``, so the message pump never waits on SQLite or
git. Every command is a ``wf.api`` call, the same one the CLI makes, so a key press here is
exactly ``wf retry TASK`` typed in another terminal.
"""

from __future__ import annotations

import subprocess
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Input, Static, TabbedContent

from wf import api
from wf.agents.builtin import usage_reported
from wf.agents.process import AttemptFiles
from wf.errors import WfError
from wf.model import Event
from wf.scope import current_run, display_order, run_start
from wf.tui import cells
from wf.tui.commands import TaskCommands
from wf.tui.detail import DetailPane, transcript_lines
from wf.tui.feed import READ_CHUNK, Feed
from wf.tui.queue_pane import QueuePane
from wf.tui.tail import LogTail
from wf.tui.tasks_table import TasksTable

POLL_INTERVAL = 0.25  # how often the log is asked for new events (the engine's signal poll)
TICK_INTERVAL = 1.0  # elapsed times, last output lines, line counts, engine presence
COMPACT = (120, 32)  # below this width or height: the table and one pane


class Dashboard(TaskCommands, App[None]):
    TITLE = "wf dash"
    CSS_PATH = "dashboard.tcss"
    BINDINGS = [
        Binding("r", "retry", "Retry"),
        Binding("c", "cancel", "Cancel"),
        Binding("a", "approve", "Approve"),
        Binding("x", "reject", "Reject"),
        Binding("m", "enqueue", "Queue"),
        Binding("p", "open_pr", "PR"),
        Binding("enter", "focus_detail", "Detail", show=False),
        Binding("d", "show_tab('diff')", "Diff"),
        Binding("l", "show_tab('log')", "Log"),
        Binding("slash", "filter", "Filter"),
        Binding("v", "swap_pane", "Queue/detail", show=False),
        Binding("escape", "back", "Back", show=False),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, repo: api.Repo, *, clock: Callable[[], float] = time.time,
                 run_process: subprocess.Popen[bytes] | None = None,
                 sample_interval: float = TICK_INTERVAL, all_tasks: bool = False) -> None:
        super().__init__()
        self.repo = repo
        self.all_tasks = all_tasks
        self.clock = clock
        self.feed = Feed(repo)
        self.run_process = run_process  # `wf run --dash`: the run this dashboard watches
        self.sample_interval = sample_interval
        self.query_text = ""
        self.loaded = False  # the first full read is done: later events are news
        self.engine_active = False
        self.lines: dict[str, cells.LineCounts] = {}
        self.counted_version: dict[str, Any] = {}
        self.last_lines: dict[str, str] = {}
        self.sent: dict[int, tuple[str, str]] = {}  # signal seq -> (kind, task), for replies
        self.selected: str | None = None
        self.tail: LogTail | None = None
        self.tail_key: tuple[str, int] | None = None
        self._transcript_shown = 0  # agent events of the shown attempt already written
        self.diff_shown_for: tuple[str, Any] | None = None
        self._reading = self._sampling = self._tailing = False
        self._totals_shown: tuple[Any, ...] | None = None
        self.notices: deque[str] = deque(maxlen=100)  # every pop-up shown, newest last

    def notify(self, message: str, **kwargs: Any) -> None:  # type: ignore[override]
        self.notices.append(message)
        # Messages hold reasons and errors as written ("[merge] in wf.toml"), not markup.
        kwargs.setdefault("markup", False)
        super().notify(message, **kwargs)

    # -- layout -----------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static(id="totals")
        yield TasksTable(id="tasks")
        with Horizontal(id="panes"):
            yield DetailPane(id="detail")
            with Vertical(id="queue-box"):
                yield QueuePane(id="queue")
        yield Input(placeholder="filter: words, or a state (failed, running, ...)",
                    id="filter")
        # Compact, without the palette's key: every action's key fits in 80 columns (the
        # palette is still ctrl+p, and lists every action by name).
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#queue-box").border_title = "merge queue"
        self.query_one("#detail").border_title = "detail"
        self.query_one("#filter").display = False
        self._fit(self.size.width, self.size.height)
        self.show_totals()
        self.query_one(QueuePane).show([])
        self.set_interval(POLL_INTERVAL, self.poll)
        self.set_interval(self.sample_interval, self.tick)
        self.poll()
        self.tick()

    def on_resize(self, event: Any) -> None:
        self._fit(event.size.width, event.size.height)

    def _fit(self, width: int, height: int) -> None:
        self.screen.set_class(width < COMPACT[0] or height < COMPACT[1], "compact")

    @property
    def is_open(self) -> bool:
        """Not closing: the widgets are there to update (timers fire during shutdown too)."""
        return self.is_running and not self._closing

    def deliver(self, callback: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """From a worker thread: run ``callback`` on the UI thread, unless the app is closing
        (its widgets may be gone, and a late read has nothing left to show)."""
        def if_open() -> None:
            if self.is_open:
                callback(*args, **kwargs)

        try:
            self.call_from_thread(if_open)
        except RuntimeError:  # the app's loop has already stopped
            pass

    # -- reading the log --------------------------------------------------------------------
    def poll(self) -> None:
        if self.is_open and not self._reading:
            self._reading = True
            self.read_events()

    @work(thread=True, group="read")
    def read_events(self) -> None:
        try:
            events = self.feed.read_new()
        except WfError as exc:
            events = []
            self.deliver(self.notify, exc.message, severity="error")
        self.deliver(self.take_events, events)

    def take_events(self, events: list[Event]) -> None:
        self._reading = False
        touched = self.feed.fold(events)
        if self.loaded:
            for e in events:
                self._news(e)
        if len(events) == READ_CHUNK:
            self.poll()  # more waiting: read on before drawing everything
        elif not self.loaded:
            self.loaded = True
            self._rebuild_table()
        if touched and self.loaded:
            self._redraw(touched)

    def _redraw(self, touched: set[str]) -> None:
        table = self.query_one(TasksTable)
        now = self.clock()
        for tid in touched:
            task = self.feed.p.tasks.get(tid)
            if task is None:  # never a task, or forgotten (`wf clean --forget`): no row
                if tid in table.shown:
                    self._rebuild_table()
                    break
                continue
            if cells.matches(task, self.query_text):
                table.put(tid, self._cells(task, now))
            elif tid in table.shown:
                self._rebuild_table()
                break
        self.show_totals()
        if any(t in self.feed.p.queue for t in touched):
            self.query_one(QueuePane).show(self._queue())
        if self.selected in touched:
            self._show_selected(refresh=True)
        if self.selected is None and table.row_count:
            self._select(table.selected)

    def _rebuild_table(self) -> None:
        table = self.query_one(TasksTable)
        now = self.clock()
        rows = [(t["id"], self._cells(t, now)) for t in self._tasks()
                if cells.matches(t, self.query_text)]
        table.replace_all(rows, keep=self.selected)
        self.show_totals()
        self.query_one(QueuePane).show(self._queue())
        if table.row_count and table.selected != self.selected:
            self._select(table.selected)

    def _tasks(self) -> list[dict[str, Any]]:
        """The current run's tasks (every task with ``--all``), active ones first."""
        tasks = self.feed.p.tasks.values()
        if not self.all_tasks:
            tasks = current_run(tasks, run_start(self.feed.p.runs.values()))
        return display_order(tasks)

    def _queue(self) -> list[dict[str, Any]]:
        return sorted(self.feed.p.queue.values(), key=lambda q: q["position"] or 0)

    def _cells(self, task: dict[str, Any], now: float) -> tuple[Any, ...]:
        return cells.task_cells(task, now, lines=self.lines.get(task["id"]),
                                last_line=self.last_lines.get(task["id"], ""),
                                reported=usage_reported((task["spec"] or {}).get("adapter")))

    def show_totals(self) -> None:
        figures = cells.totals(self.feed.p.tasks.values(), self.feed.p.queue.values())
        hooks_off = tuple(sorted(self.feed.hooks_disabled))
        held = cells.budget_holds(self.feed.p.tasks.values())
        limits = cells.agent_limits(self.feed.p.agent_limits.values(), self.clock())
        shown = (figures, self.engine_active, hooks_off, held, limits)
        if shown != self._totals_shown:  # one line of fixed size: no layout pass needed
            self._totals_shown = shown
            self.query_one("#totals", Static).update(
                cells.totals_text(figures, engine_active=self.engine_active,
                                  hooks_disabled=hooks_off, budget_held=held, limits=limits),
                layout=False)

    def _news(self, e: Event) -> None:
        """Pop-ups for what a person should not miss, and the engine's answers to our keys."""
        d, tid = e.data, e.task_id
        if e.type == "task.failed":
            self.notify(f"{tid} failed: {d.get('kind')}: {d.get('error')}", title="failed",
                        severity="error", timeout=10)
        elif e.type == "queue.needs_approval":
            self.notify(f"{tid} waits for approval ({d.get('detail')}): a approves, x rejects",
                        title="approval", severity="warning", timeout=15)
        elif e.type == "queue.evicted":
            self.notify(f"{tid} left the queue: {d.get('kind')}: {d.get('detail')}",
                        severity="warning")
        elif e.type == "queue.paused":
            self.notify(f"the merge queue stopped: {d.get('reason')}; `wf resume` starts it "
                        "again", title="merge queue", severity="error", timeout=15)
        elif e.type == "budget.exceeded":
            verb = "stopped" if d.get("action") == "stop" else "paused"
            self.notify(f"{tid}: {d.get('message')} ({verb}); `wf budget {tid} --add/--tokens/"
                        "--wall` raises it", title="budget", severity="warning", timeout=15)
        elif e.type == "hook.endpoint_disabled":
            self.notify(f"hook endpoint {d.get('endpoint')} disabled: {d.get('reason')}; "
                        f"`wf hooks enable {d.get('endpoint')}`", title="hooks",
                        severity="error", timeout=15)
            self.show_totals()
        elif e.type == "signal.handled" and d.get("signal_seq") in self.sent:
            kind, task = self.sent.pop(d["signal_seq"])
            self.notify(f"{kind} {task}: {d.get('result')}", title="engine")

    # -- the slower things: once a second ----------------------------------------------------
    def tick(self) -> None:
        if not (self.loaded and self.is_open):
            return
        table = self.query_one(TasksTable)
        now = self.clock()
        for tid in table.shown:
            task = self.feed.p.tasks[tid]
            if task["state"] in ("running", "retrying"):
                table.put(tid, self._cells(task, now))
        self.show_totals()  # an agent's "starts in 3s" counts down
        if self.run_process is not None and self.run_process.poll() is not None:
            code, self.run_process = self.run_process.returncode, None
            self.notify(f"wf run finished with exit code {code}",
                        severity="information" if code == 0 else "warning")
        if not self._sampling:
            self._sampling = True
            self.sample(self._sample_jobs())

    def _sample_jobs(self) -> tuple[list[tuple[str, int]], list[tuple[str, Any]]]:
        """What to look at outside the log: running tasks' last output lines, and line counts
        of tasks that changed since they were counted."""
        tails, counts = [], []
        for tid, t in self.feed.p.tasks.items():
            if t["attempts"] and (t["state"] == "running" or tid not in self.last_lines):
                tails.append((tid, t["attempts"]))
            stamp = (t["version"], t["state"] == "running" and int(self.clock() // 10))
            if t["base_commit"] and self.counted_version.get(tid) != stamp:
                counts.append((tid, stamp))
        return tails, counts[:20]  # git is the slow part: a few each second

    @work(thread=True, group="sample")
    def sample(self, jobs: tuple[list[tuple[str, int]], list[tuple[str, Any]]]) -> None:
        tails, counts = jobs
        last = {tid: cells.last_output_line(AttemptFiles.of(self.repo.logs_dir, tid, n)
                                            .tail(512)) for tid, n in tails}
        lines: dict[str, tuple[Any, cells.LineCounts | None]] = {}
        for tid, stamp in counts:
            try:
                stat = api.task_diff(self.repo, tid, stat=True)["diff"]
                lines[tid] = (stamp, cells.parse_diffstat(stat))
            except WfError:
                lines[tid] = (stamp, None)
        self.deliver(self.take_sample, last, lines, api.engine_active(self.repo))

    def take_sample(self, last: dict[str, str], lines: dict[str, Any], active: bool) -> None:
        self._sampling = False
        changed = {t for t, line in last.items() if self.last_lines.get(t) != line}
        self.last_lines.update(last)
        for tid, (stamp, counts) in lines.items():
            self.counted_version[tid] = stamp
            if counts is not None and self.lines.get(tid) != counts:
                self.lines[tid] = counts
                changed.add(tid)
        if active != self.engine_active:
            self.engine_active = active
            self.show_totals()
        if changed:
            self._redraw(changed)
        self.follow_transcript()

    # -- the selected task ------------------------------------------------------------------
    def on_tasks_table_highlighted(self, event: TasksTable.Highlighted) -> None:
        if event.task_id != self.selected:
            self._select(event.task_id)

    def on_tasks_table_chosen(self, event: TasksTable.Chosen) -> None:
        self.action_focus_detail()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self._show_selected(refresh=False)

    def _select(self, task_id: str | None) -> None:
        self.selected = task_id
        self.tail = self.tail_key = None
        self.diff_shown_for = None
        self.query_one(DetailPane).transcript.clear()
        self._show_selected(refresh=False)

    def _show_selected(self, *, refresh: bool) -> None:
        tid = self.selected
        task = self.feed.p.tasks.get(tid) if tid else None
        detail = self.query_one(DetailPane)
        if task is None:
            return
        paused = " · paused by a budget" if task.get("paused") else ""
        limit = cells.agent_limit(self.feed.p.agent_limits.get(task["agent"]), self.clock())
        detail.border_title = f"{tid} · {task['state']}{paused}" + (
            f" · {limit}" if limit else "")
        detail.show_attempts(self.feed.attempts_of(tid), task)
        self.follow_transcript()
        if detail.active == "diff" and self.diff_shown_for != (tid, task["version"]):
            if self.diff_shown_for is None or self.diff_shown_for[0] != tid:
                detail.show_message("diff", "reading the diff…")
            self.diff_shown_for = (tid, task["version"])
            self.load_diff(tid)

    def follow_transcript(self) -> None:
        """Show the selected attempt's new output: agent events when its adapter writes
        them, else the attempt's log file, read on from where the last read stopped."""
        tid = self.selected
        task = self.feed.p.tasks.get(tid) if tid else None
        if task is None or not task["attempts"]:
            return
        key = (tid, task["attempts"])
        log = self.query_one(DetailPane).transcript
        events = self.feed.transcript(tid, task["attempts"])
        if events:
            if self.tail_key != key or self.tail is not None:
                log.clear()
                self.tail, self.tail_key = None, key
                self._transcript_shown = 0
            lines = transcript_lines(events[self._transcript_shown:])
            self._transcript_shown = len(events)
            log.write_lines(lines)
            return
        if self.tail_key != key:
            log.clear()
            self.tail_key = key
            self.tail = LogTail(AttemptFiles.of(self.repo.logs_dir, tid, task["attempts"]).log)
        if self.tail is not None and not self._tailing:
            self._tailing = True
            self.read_tail(self.tail, key)

    @work(thread=True, group="tail")
    def read_tail(self, tail: LogTail, key: tuple[str, int]) -> None:
        text = tail.read_new()
        self.deliver(self.take_tail, text, key)

    def take_tail(self, text: str, key: tuple[str, int]) -> None:
        self._tailing = False
        if key != self.tail_key:  # read for a task no longer shown: read the one that is now
            self.follow_transcript()
            return
        if text:
            self.query_one(DetailPane).transcript.write_lines(text.splitlines())

    @work(thread=True, group="diff", exclusive=True)
    def load_diff(self, task_id: str) -> None:
        try:
            text = api.task_diff(self.repo, task_id)["diff"]
        except WfError as exc:
            self.deliver(self.take_diff, task_id, None, exc.message)
            return
        self.deliver(self.take_diff, task_id, text, None)

    def take_diff(self, task_id: str, text: str | None, error: str | None) -> None:
        if task_id != self.selected:
            return
        detail = self.query_one(DetailPane)
        if text is None:
            detail.show_message("diff", error or "")
        else:
            detail.show_diff(text)

    # -- keys that move around ------------------------------------------------------------
    def action_focus_detail(self) -> None:
        self.screen.remove_class("queue-only")
        self.query_one(DetailPane).focus_active()

    def action_show_tab(self, tab: str) -> None:
        self.screen.remove_class("queue-only")
        self.query_one(DetailPane).active = tab

    def action_swap_pane(self) -> None:
        self.screen.toggle_class("queue-only")

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.query_text = event.value.strip()
        if self.loaded:
            self._rebuild_table()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_one(TasksTable).focus()

    def action_back(self) -> None:
        box = self.query_one("#filter", Input)
        if box.has_focus:
            box.value = ""
            box.display = False
        self.query_one(TasksTable).focus()

    def on_unmount(self) -> None:
        self.feed.close()
