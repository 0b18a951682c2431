"""Printing: one red line for errors, JSON lines for machines, rich for people."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from rich.console import Console
from rich.markup import escape

from wf.model import Event, format_duration

# On a terminal rich fits its width; into a pipe or a file it would wrap at 80 columns, which
# cuts task ids and error lines for grep and scripts: there a line is as long as it needs.
PIPE_WIDTH = 10_000
console = Console(highlight=False, width=None if sys.stdout.isatty() else PIPE_WIDTH)
err_console = Console(stderr=True, highlight=False,
                      width=None if sys.stderr.isatty() else PIPE_WIDTH)

STATE_STYLE = {
    "queued": ("·", "dim"),
    "running": ("▶", "cyan"),
    "retrying": ("↻", "yellow"),
    "done": ("✔", "green"),
    "failed": ("✘", "red"),
    "cancelled": ("■", "magenta"),
    "blocked": ("⊘", "red"),
    "merged": ("⬆", "bold green"),
    "evicted": ("↩", "red"),  # the merge queue sent its branch back
}

ENTRY_STYLE = {"pending": ("·", "dim"), "queued": ("·", "cyan"),
               "waiting_approval": ("?", "yellow"), "landed": ("⬆", "green"),
               "evicted": ("✘", "red"), "removed": ("■", "magenta")}
CHECK_OUTCOME = {"pass": "passed", "fail": "failed", "infra": "failed (infrastructure)"}


def fail(message: str, hint: str | None = None) -> None:
    err_console.print(f"[bold red]wf: error:[/] {escape(message)}", soft_wrap=True)
    if hint:
        err_console.print(f"[dim]hint: {escape(hint)}[/]", soft_wrap=True)


def note(message: str) -> None:
    err_console.print(f"[dim]{escape(message)}[/]", soft_wrap=True)


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()


def styled_state(state: str) -> str:
    icon, style = STATE_STYLE.get(state, ("?", ""))
    return f"[{style}]{icon} {state}[/]"


def pr_cell(row: dict[str, Any]) -> str:
    """A task's or queue entry's PR/MR link and forge check state, or "-"."""
    if not row.get("pr_url"):
        return "-"
    checks = f" ({row['forge_checks']})" if row.get("forge_checks") else ""
    return escape(f"{row['pr_url']} [{row.get('pr_state') or '?'}]{checks}")


def clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))


# Steps `wf run`'s plain output leaves out: each is followed at once by the line that matters
# (worktree_ready, attempt.started's outcome, the check's result, the landing). `wf events`
# shows them all.
QUIET_IN_RUN = frozenset({
    "task.worktree_requested", "attempt.spawned", "task.setup_done", "attempt.reset",
    "queue.admitted", "queue.check_started", "queue.land_requested", "queue.target_moved",
    "pr.push_requested"})


def event_line(e: Event) -> str | None:
    """A person's one-line account of an event for `wf run`'s output, None for the steps it
    leaves out (``QUIET_IN_RUN``)."""
    return None if e.type in QUIET_IN_RUN else event_text(e)


def event_text(e: Event) -> str:
    """A person's one-line account of any event (what `wf events` prints): a line written for
    each type wf appends, and for a type it does not know, its name and data in one line."""
    d, task = e.data, e.task_id or ""
    t = e.type
    text = {
        "task.submitted": lambda: f"{task}: queued ({d['spec']['agent']})",
        "task.worktree_ready": lambda: f"{task}: worktree {d['path']} on {d['branch']}",
        "attempt.started": lambda: f"{task}: attempt {d['n']} started",
        "attempt.adopted": lambda: f"{task}: attempt {d['n']} adopted (pid {d['pid']})",
        "attempt.finished": lambda: (
            f"{task}: attempt {d['n']} {d['state']}"
            + (f" ({d['failure_kind']}: {d['error']})" if d.get("failure_kind") else "")),
        "task.retry_scheduled": lambda: f"{task}: retry in {format_duration(d['delay'])}",
        "task.succeeded": lambda: f"{task}: done at {str(d.get('commit'))[:10]}",
        "task.failed": lambda: f"{task}: failed ({d['kind']}: {d.get('error')}; {d.get('why')})",
        "task.blocked": lambda: f"{task}: blocked ({d.get('error')})",
        "task.cancelled": lambda: f"{task}: cancelled",
        "task.requeued": lambda: f"{task}: requeued",
        "task.cleaned": lambda: f"{task}: cleaned",
        "signal.sent": lambda: f"signal {d['kind']} for {d.get('task')}",
        "signal.handled": lambda: f"signal for {d.get('task')}: {d.get('result')}",
        "run.started": lambda: f"run {d['run_id']} started (pid {d['pid']})",
        "run.finished": lambda: f"run {d['run_id']} finished (exit {d.get('exit_code')})"
                                + _run_summary(d.get("summary")),
        "queue.entered": lambda: f"{task}: in the merge queue",
        "queue.needs_approval": lambda: f"{task}: waits for `wf approve` ({d.get('detail')})",
        "queue.evicted": lambda: f"{task}: evicted from the queue ({d.get('kind')}: "
                                 f"{d.get('detail')})",
        "queue.landed": lambda: f"{task}: landed on {d.get('target')} at "
                                f"{str(d.get('commit'))[:10]}",
        "queue.check_finished": lambda: (
            f"queue: check of {_entries(d.get('size'))} "
            f"{CHECK_OUTCOME.get(d.get('result'), d.get('result'))} "
            f"in {format_duration(d.get('duration'))}"),
        "queue.land_refused": lambda: f"queue: cannot land yet: {d.get('detail')}",
        "queue.paused": lambda: f"queue: stopped: {d.get('reason')}",
        "queue.retrying": lambda: f"queue: {str(d.get('reason')).rstrip('.')}; again in "
                                  f"{format_duration(d.get('delay'))}",
        "pr.opened": lambda: f"{task}: {'opened' if d.get('created') else 'updated'} "
                             f"{d.get('url')} ({d.get('state')})",
        "pr.checks": lambda: f"{task}: forge checks {d['state']} ({d.get('detail')})",
        "pr.merged": lambda: f"{task}: merged on the forge at {str(d.get('commit'))[:10]}",
        "agent.session": lambda: f"{task}: agent session {d.get('session_id')}",
        "agent.tool": lambda: f"{task}: → {d.get('name')} {_one_line(d.get('input'))}",
        "agent.message": lambda: f"{task}: {_one_line(d.get('text'))}",
        "agent.usage": lambda: f"{task}: {tokens_and_cost(d)}",
        "task.worktree_requested": lambda: f"{task}: making worktree {d.get('path')} on "
                                           f"{d.get('branch')} from {d.get('start_point') or d.get('base_ref')}",
        "task.worktree_lost": lambda: f"{task}: worktree {d.get('path')} was deleted; making "
                                      f"it again from {d.get('branch')}",
        "task.setup_done": lambda: f"{task}: setup done (attempt {d.get('n')})",
        "task.worktree_released": lambda: f"{task}: worktree {d.get('path')} given back to "
                                          "the pool",
        "pool.prepare_requested": lambda: f"pool: preparing {d.get('slot')} at "
                                          f"{str(d.get('base'))[:10]}",
        "pool.prepared": lambda: f"pool: {d.get('slot')} ready",
        "pool.take_requested": lambda: f"{task}: taking pooled worktree {d.get('slot')}",
        "pool.create_requested": lambda: f"{task}: new pooled worktree {d.get('slot')}",
        "pool.taken": lambda: f"{task}: pooled worktree {d.get('slot')} is its worktree",
        "pool.setup_started": lambda: f"pool: setup runs in {d.get('slot')}",
        "pool.setup_done": lambda: f"pool: {d.get('slot')} set up",
        "pool.return_requested": lambda: f"{task}: giving pooled worktree {d.get('slot')} back",
        "pool.returned": lambda: f"pool: {d.get('slot')} ready again",
        "pool.remove_requested": lambda: f"pool: removing {d.get('slot')}"
                                         + (f" ({d['reason']})" if d.get("reason") else ""),
        "pool.removed": lambda: f"pool: {d.get('slot')} removed",
        "task.pushed": lambda: f"{task}: pushed {d.get('branch')} to {d.get('remote')} at "
                               f"{str(d.get('commit'))[:10]}",
        "task.push_failed": lambda: f"{task}: could not push to {d.get('remote')}: "
                                    f"{d.get('error')}; the work stays on its host",
        "task.host_lost": lambda: f"{task}: host {d.get('host')} took no step for "
                                  f"{d.get('after')}s; prepared again elsewhere from "
                                  f"{d.get('start_from')}",
        "task.paused": lambda: f"{task}: attempt {d['n']} paused (its agent is stopped, "
                               f"not killed); `wf budget {task} --add ...` resumes it",
        "agent.limit_changed": lambda: f"agent {d.get('agent')}: parallelism {d.get('limit')}"
                                       f" ({d.get('reason')})" + (
            f"; {d['successes']} success(es) toward {d['limit'] + 1}"
            if d.get("successes") else ""),
        "task.resumed": lambda: f"{task}: attempt {d['n']} resumed",
        "budget.exceeded": lambda: f"{task}: budget crossed: {d.get('message')} "
                                   f"({'stopped' if d.get('action') == 'stop' else 'paused'})",
        "budget.raised": lambda: f"{task}: budget raised by " + ", ".join(
            f"{k} {d[k]:g}" for k in ("cost_usd", "tokens", "wall") if d.get(k)),
        "task.forgotten": lambda: f"{task}: forgotten (was {d.get('state')}, "
                                  f"{d.get('attempts')} attempt(s))",
        "attempt.spawned": lambda: f"{task}: attempt {d['n']} running (pid {d.get('pid')})"
                                   + (" resuming its session" if d.get("resumed_session") else ""),
        "attempt.reset": lambda: f"{task}: attempt {d['n']} starts from the base; the last "
                                 f"attempt's work is kept at {d.get('backup_ref')}",
        "attempt.conflict": lambda: f"{task}: attempt {d['n']} resolves conflicts with "
                                    f"{d.get('target')} in {', '.join(d.get('files') or []) or '?'}",
        "queue.admitted": lambda: f"{task}: admitted to the queue at {str(d.get('head'))[:10]}",
        "queue.approved": lambda: f"{task}: approved" + (f" by {d['by']}" if d.get("by") else ""),
        "queue.removed": lambda: f"{task}: removed from the queue ({d.get('detail')})",
        "queue.check_started": lambda: "queue: checking " + "; ".join(
            ", ".join(b) for b in d.get("batches") or []),
        "queue.flaky_seen": lambda: f"queue: a flaky check seen ({d.get('detail')})",
        "queue.land_requested": lambda: f"queue: landing {', '.join(d.get('entries') or [])} "
                                        f"at {str(d.get('new'))[:10]}",
        "queue.land_aborted": lambda: f"queue: landing given up: {d.get('detail')}",
        "queue.target_moved": lambda: f"queue: target moved {str(d.get('old'))[:10]} -> "
                                      f"{str(d.get('new'))[:10]}",
        "pr.push_requested": lambda: f"{task}: pushing {d.get('branch')} to {d.get('remote')}",
        "hook.endpoint_added": lambda: f"hooks: endpoint {d['endpoint']} ({d.get('target')}) "
                                       f"takes events after {d.get('from_seq')}",
        "hook.delivered": lambda: f"hooks: {len(d.get('seqs') or [])} event(s) delivered to "
                                  f"{d['endpoint']}",
        "hook.failed": lambda: f"hooks: event {d['seq']} to {d['endpoint']} failed (attempt "
                               f"{d.get('attempt')}: {d.get('error')})"
                               + ("; dead letter" if d.get("dead") else ""),
        "hook.endpoint_disabled": lambda: f"hooks: endpoint {d['endpoint']} disabled "
                                          f"({d.get('reason')}); `wf hooks enable "
                                          f"{d['endpoint']}`",
        "hook.endpoint_enabled": lambda: f"hooks: endpoint {d['endpoint']} enabled",
        "hook.replayed": lambda: f"hooks: {len(d.get('seqs') or [])} event(s) to send again "
                                 f"to {d['endpoint']}",
        "hook.test": lambda: "hooks: a test event",
    }.get(t)
    try:
        if text is not None:
            return f"{clock(e.ts)}  {text()}"
    except (KeyError, TypeError, ValueError):  # data written by another version of wf
        pass
    # A type this wf does not know (a newer wf, a plugin), or odd data: the data in a line.
    body = " ".join(f"{k}={_one_line(v, 60)}" for k, v in d.items())
    return f"{clock(e.ts)}  {task + ': ' if task else ''}{t} {body}".rstrip()


def _run_summary(summary: object) -> str:
    if not isinstance(summary, dict) or not isinstance(summary.get("states"), dict):
        return ""
    return ": " + ", ".join(f"{n} {state}" for state, n in sorted(summary["states"].items()))


def _entries(n: object) -> str:
    return f"{n} entr{'y' if n == 1 else 'ies'}"


def _one_line(text: object, width: int = 100) -> str:
    line = " ".join(str(text or "").split())
    return line if len(line) <= width else line[: width - 1] + "…"


def tokens_and_cost(d: dict[str, Any]) -> str:
    """``1,234 tokens in, 56 out, $0.0123`` from an ``agent.usage`` event's data."""
    cost = d.get("cost_usd")
    return (f"{d.get('input_tokens', 0):,} tokens in, {d.get('output_tokens', 0):,} out"
            + (f", ${cost:.4f}" if cost is not None else ""))


def transcript_line(entry: Any) -> str | None:
    """A person's rendering of one adapter ``Entry`` in ``wf logs``."""
    d = entry.data
    if entry.kind == "message":
        text = str(d.get("text", "")).rstrip()
        return f"{d.get('role', 'assistant')}: " + text.replace("\n", "\n    ")
    if entry.kind == "tool":
        return f"→ {d.get('name')} {d.get('input')}"
    if entry.kind == "tool_result":
        return f"  {'✗' if d.get('error') else '←'} {d.get('output')}"
    if entry.kind == "usage":
        return f"· {tokens_and_cost(d)}"
    if entry.kind == "session":
        return f"· session {d.get('session_id')}"
    if entry.kind == "error":
        return f"! {d.get('text')}"
    return str(d.get("text", ""))
