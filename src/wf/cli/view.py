"""What ``wf run`` shows while it works: a live table for a terminal, one line per event
otherwise, one JSON object per event with ``--json``."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from wf.agents.builtin import find_adapter
from wf.agents.process import AttemptFiles
from wf.cli.output import (
    ENTRY_STYLE,
    console,
    event_line,
    print_json,
    styled_state,
    transcript_line,
)
from wf.errors import UsageError
from wf.model import Event, format_duration
from wf.scope import current_run, display_order, run_start
from wf.store.projections import Projection, apply


def tasks_table(tasks: list[dict[str, Any]], logs_dir: Path, now: float,
                max_rows: int | None = None) -> Table:
    """The tasks, active first; past ``max_rows`` the last rows (finished ones) give way to a
    line that says how many are not shown."""
    table = Table(box=None, pad_edge=False, expand=True, header_style="bold")
    ids = max((len(t["id"]) for t in tasks), default=4)
    for col in ("task", "agent", "state", "try", "time"):
        table.add_column(col, no_wrap=True, min_width=ids if col == "task" else None)
    table.add_column("last output", no_wrap=True, overflow="ellipsis", ratio=1)
    ordered = display_order(tasks)
    if max_rows is not None and len(ordered) > max_rows:
        shown = ordered[:max(0, max_rows - 1)]
        rest = Counter(t["state"] for t in ordered[len(shown):])
        more = ", ".join(f"{n} {state}" for state, n in sorted(rest.items()))
        ordered = shown
    else:
        more = ""
    for t in ordered:
        started, ended = t.get("started_ts"), t.get("ended_ts")
        elapsed = format_duration((ended or now) - started) if started else "-"
        state = styled_state(t["state"])
        if t["state"] == "retrying" and t.get("next_retry_at"):
            state += f" [dim]in {format_duration(t['next_retry_at'] - now)}[/]"
        if t["state"] in ("failed", "blocked") and t.get("last_failure_kind"):
            state += f" [dim]{t['last_failure_kind']}[/]"
        last = ""
        if t.get("attempts") and t["state"] in ("running", "retrying", "failed"):
            tail = AttemptFiles.of(logs_dir, t["id"], t["attempts"]).tail(4096)
            last = last_output_line(tail, (t.get("spec") or {}).get("adapter"))
        max_attempts = (t.get("spec") or {}).get("retry", {}).get("maximum_attempts") or "∞"
        table.add_row(t["id"], t["agent"], state, f"{t.get('attempts') or 0}/{max_attempts}",
                      elapsed, Text(last, style="dim"))
    if more:
        table.add_row(Text(f"… {more} not shown (`wf status` lists them)", style="dim"))
    return table


def last_output_line(tail: str, adapter_name: str | None) -> str:
    """The last line worth showing: for an agent CLI wf knows, its last transcript line
    (not a line of its JSON), otherwise the last line of output."""
    lines = [ln.strip() for ln in tail.splitlines() if ln.strip()]
    adapter = find_adapter(adapter_name)
    if adapter is None:
        return lines[-1] if lines else ""
    for line in reversed(lines[1:]):  # the first may be cut in the middle
        rendered = [transcript_line(e) for e in adapter.reader().feed(line)]
        if rendered:
            return rendered[-1] or ""
    return ""


def queue_lines(entries: list[dict[str, Any]], stopped: str | None) -> str:
    """The merge queue in one line of counts by state, and why it stopped if it did."""
    counts = Counter(q["state"] for q in entries)
    parts = [f"[{style}]{icon} {state.replace('_', ' ')} {counts[state]}[/]"
             for state, (icon, style) in ENTRY_STYLE.items() if counts[state]]
    text = "merge queue  " + "  ".join(parts)
    return text + (f"\n[red]the merge queue stopped: {escape(stopped)}[/]" if stopped else "")


def summary_line(tasks: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for t in tasks:
        counts[t["state"]] = counts.get(t["state"], 0) + 1
    return "  ".join(f"{styled_state(s)} {n}" for s, n in sorted(counts.items()))


HEARTBEAT = 30.0  # seconds of silence on a pipe before a line says what still runs


class Heartbeat:
    """For output that is not a terminal: after ``interval`` seconds with no line printed, a
    line of what still runs, so a CI log shows wf is alive through a long attempt. It knows
    only what the events it was shown say."""

    def __init__(self, interval: float, say: Any) -> None:
        self.interval, self.say = interval, say
        self.running: dict[str, float] = {}  # task -> when its attempt started
        self.last = time.monotonic()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, name="wf-heartbeat", daemon=True)
        self.thread.start()

    def saw(self, e: Event, printed: bool) -> None:
        if e.type in ("attempt.started", "attempt.adopted") and e.task_id:
            self.running[e.task_id] = e.ts
        elif e.type == "attempt.finished" and e.task_id:
            self.running.pop(e.task_id, None)
        if printed:
            self.last = time.monotonic()

    def _beat(self) -> None:
        while not self.stop.wait(max(0.05, self.last + self.interval - time.monotonic())):
            if time.monotonic() - self.last < self.interval:
                continue  # a line was printed meanwhile
            if self.running:
                now = time.time()
                tasks = ", ".join(f"{t} ({format_duration(now - ts)})"
                                  for t, ts in sorted(self.running.items()))
                self.say(f"{time.strftime('%H:%M:%S')}  still running: {tasks}")
            self.last = time.monotonic()

    def close(self) -> None:
        self.stop.set()


def _heartbeat_interval(text: str | None) -> float:
    try:
        interval = float(text) if text else HEARTBEAT
    except ValueError:
        interval = -1.0
    if not interval >= 0:  # also NaN
        raise UsageError(f"WF_HEARTBEAT={text!r}: give a number of seconds (0 turns it off)")
    return interval


class RunView:
    """Chooses the presentation and is handed to ``wf.api.run`` as an observer of the events
    the engine commits. The live table is the log's projection as it was when the view
    started (``start``), with every observed event folded in by the store's reducer: the
    view knows nothing of the engine but its events."""

    def __init__(self, *, as_json: bool, live: bool, logs_dir: Path) -> None:
        self.as_json, self.logs_dir = as_json, logs_dir
        self.live: Live | None = None
        self.p = Projection()
        self.seq = 0  # the last event folded
        self.queue_paused: str | None = None  # the queue's last pause in this run
        self._lock = threading.Lock()
        self.heartbeat: Heartbeat | None = None
        if live and not as_json:
            self.live = Live(self, console=console, refresh_per_second=4, transient=False)
        elif not as_json:
            interval = _heartbeat_interval(os.environ.get("WF_HEARTBEAT"))
            self.heartbeat = Heartbeat(interval, self._say) if interval > 0 else None

    def _say(self, line: str) -> None:
        with self._lock:
            console.print(escape(line), soft_wrap=True)

    def start(self, projection: Projection | None, seq: int) -> None:
        """Show the log as ``projection`` (folded up to ``seq``) and what follows it."""
        with self._lock:
            self.p, self.seq = projection or Projection(), seq
        if self.live:
            self.live.start()

    def _fold(self, events: list[Event]) -> None:
        for e in events:
            if e.seq <= self.seq:
                continue
            apply(self.p, e)
            self.seq = e.seq
            if e.type == "queue.paused":
                self.queue_paused = e.data.get("reason")
            elif e.type == "run.started":
                self.queue_paused = None

    def on_events(self, events: list[Event]) -> None:
        """Called on the writer's thread with each committed batch: kept short, since the
        next commit waits for it. Only the live table needs the events folded."""
        if self.live:
            with self._lock:
                self._fold(events)
            return
        with self._lock:
            for e in events:
                if self.as_json:
                    print_json(e.to_json())
                    continue
                line = event_line(e)
                if line:
                    console.print(escape(line), soft_wrap=True)
                if self.heartbeat:
                    self.heartbeat.saw(e, printed=bool(line))

    def __rich__(self) -> Group:
        with self._lock:
            p = self.p
            tasks = current_run(p.tasks.values(), run_start(p.runs.values()))
            entries = list(p.queue.values())
        parts: list[Any] = []
        queue_part = []
        if entries:
            queue_part.append(queue_lines(entries, self.queue_paused))
        if tasks or not entries:  # a run of the queue alone has no task to show
            # Header, blank line, summary and the queue's lines always fit on the screen.
            room = console.size.height - 3 - sum(q.count("\n") + 1 for q in queue_part)
            parts += [tasks_table(tasks, self.logs_dir, time.time(), max(1, room)), "",
                      summary_line(tasks)]
        return Group(*parts, *queue_part)

    @property
    def showed_summary(self) -> bool:
        return self.live is not None

    def close(self) -> None:
        if self.heartbeat:
            self.heartbeat.close()
        if self.live and self.live.is_started:
            self.live.refresh()
            self.live.stop()
