"""The detail pane of the selected task: its transcript, its diff, its attempts."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.syntax import Syntax
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Log, Static, TabbedContent, TabPane

from wf.model import Event, format_duration

TRANSCRIPT_MAX_LINES = 5000


class DetailPane(Vertical):
    """Tabs ``log`` (follows new output while scrolled to the end, stays put when scrolled
    back: ``tail -f``), ``diff`` (against the task's base, highlighted) and ``attempts``."""

    attempts_shown = ""

    def compose(self) -> ComposeResult:
        with TabbedContent(initial="log"):
            with TabPane("Log", id="log"):
                yield Log(id="transcript", max_lines=TRANSCRIPT_MAX_LINES, auto_scroll=True)
            with TabPane("Diff", id="diff"):
                with VerticalScroll(id="diff-scroll"):
                    yield Static("", id="diff-body")
            with TabPane("Attempts", id="attempts"):
                with VerticalScroll(id="attempts-scroll"):
                    yield Static("", id="attempts-body")

    @property
    def active(self) -> str:
        return self.query_one(TabbedContent).active

    @active.setter
    def active(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def focus_active(self) -> None:
        """Focus what scrolls in the active tab, so the arrow keys page through it."""
        target = {"log": "#transcript", "diff": "#diff-scroll", "attempts": "#attempts-scroll"}
        self.query_one(target[self.active]).focus()

    @property
    def transcript(self) -> Log:
        return self.query_one("#transcript", Log)

    def show_diff(self, text: str) -> None:
        body = (Syntax(text, "diff", theme="ansi_dark", word_wrap=False) if text.strip()
                else "[dim]no changes against the base yet[/]")
        self.query_one("#diff-body", Static).update(body)

    def show_message(self, where: str, message: str) -> None:
        self.query_one(f"#{where}-body", Static).update(f"[dim]{escape(message)}[/]")

    def show_attempts(self, attempts: list[dict[str, Any]], task: dict[str, Any]) -> None:
        lines = [f"[bold]{escape(task['id'])}[/]  {escape(task.get('prompt') or '')}"]
        for a in attempts:
            took = (format_duration(a["ended_ts"] - a["started_ts"])
                    if a.get("ended_ts") and a.get("started_ts") else "…")
            line = f"#{a['n']}  {a.get('state') or '?'}  {took}"
            if a.get("exit_code") is not None:
                line += f"  exit {a['exit_code']}"
            if a.get("failure_kind"):
                line += f"  [red]{escape(a['failure_kind'])}[/]: {escape(a.get('error') or '')}"
            if a.get("retry_delay") is not None:
                line += f"  [dim](retried after {format_duration(a['retry_delay'])})[/]"
            lines.append(line)
        if task.get("last_error") and task["state"] in ("failed", "blocked", "cancelled"):
            lines.append(f"[red]{escape(task['state'])}[/]: {escape(task['last_error'])}")
        if len(lines) == 1:
            lines.append("[dim]no attempt yet[/]")
        text = "\n".join(lines)
        if text != self.attempts_shown:  # an update costs a layout pass of the screen
            self.attempts_shown = text
            self.query_one("#attempts-body", Static).update(text)


def transcript_lines(events: list[Event]) -> list[str]:
    """An agent's messages and tool calls as lines (for adapters that write agent.* events)."""
    out = []
    for e in events:
        d = e.data
        if e.type == "agent.message":
            text = str(d.get("text") or d.get("content") or "")
            out += [f"{d.get('role', 'agent')}: {ln}" for ln in text.splitlines() or [""]]
        else:
            detail = d.get("summary") or d.get("input") or ""
            out.append(f"→ {d.get('name') or d.get('tool') or 'tool'} {detail}".rstrip())
    return out
