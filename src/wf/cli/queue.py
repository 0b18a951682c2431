"""wf queue (show, add, rm, retry), wf approve, wf reject: the merge queue."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from wf import api
from wf.cli import app
from wf.cli.control import JsonOpt, _signal
from wf.cli.output import ENTRY_STYLE, console, note, pr_cell, print_json
from wf.errors import UsageError
from wf.model import SignalKind

queue_app = typer.Typer(help="The merge queue: what waits, what is under test, what landed.",
                        invoke_without_command=True, no_args_is_help=False)
app.add_typer(queue_app, name="queue")


@queue_app.callback()
def show(ctx: typer.Context, as_json: JsonOpt = False) -> int:
    """Show the queue: position, state, last check, and why anything was evicted."""
    if ctx.invoked_subcommand is not None:
        return 0
    repo = api.open_repo()
    entries = api.queue_status(repo)
    if as_json:
        print_json(entries)
        return 0
    if not entries:
        note("the merge queue is empty")
        return 0
    table = Table(box=None, header_style="bold", pad_edge=False)
    with_pr = any(e["pr_url"] for e in entries)  # the column appears once a PR/MR exists
    for col in ("#", "task", "state", "last check", *(["pr"] if with_pr else []), "reason"):
        table.add_column(col, overflow="fold" if col in ("reason", "pr") else "ellipsis")
    for e in entries:
        icon, style = ENTRY_STYLE.get(e["state"], ("?", ""))
        state = f"[{style}]{icon} {e['state']}[/]"
        reason = f"{e['reason_kind']}: {e['reason']}" if e["reason_kind"] else ""
        table.add_row(str(e["position"] or "-"), e["task_id"], state,
                      escape(e["last_check"] or "-"), *([pr_cell(e)] if with_pr else []),
                      escape(reason))
    console.print(table)
    for e in entries:  # where an evicting check's output is, and how it ended
        if e["state"] == "evicted" and e["check_log"]:
            console.print(f"\n{e['task_id']}: the check's last lines", style="bold",
                          markup=False, soft_wrap=True)
            for line in api.check_log_tail(e["check_log"]):
                console.print(f"  {line}", markup=False, soft_wrap=True)
            console.print(f"  log: {e['check_log']}", style="dim", markup=False,
                          soft_wrap=True)
    stopped = api.queue_stopped(repo)
    if stopped:
        note(f"the merge queue stopped: {stopped}; `wf resume` starts it again")
    return 0


@queue_app.command("add")
def add(
    task: Annotated[Optional[str], typer.Argument(help="task id")] = None,
    branch: Annotated[Optional[str], typer.Option("--branch", help="queue any local branch")] = None,
    entry_id: Annotated[Optional[str], typer.Option("--id", help="entry name for --branch")] = None,
    as_json: JsonOpt = False,
) -> int:
    """Put a finished task's branch, or any branch, in the merge queue."""
    if (task is None) == (branch is None):
        raise UsageError("give a task id or --branch NAME", hint="see `wf queue add --help`")
    if branch is not None:
        return _signal(SignalKind.ENQUEUE, entry_id or api.entry_id_for(branch), as_json,
                       branch=branch)
    return _signal(SignalKind.ENQUEUE, task, as_json)


@queue_app.command("rm")
def remove(task: Annotated[str, typer.Argument(help="task id")], as_json: JsonOpt = False) -> int:
    """Take an entry out of the queue (its branch stays)."""
    return _signal(SignalKind.DEQUEUE, task, as_json)


@queue_app.command("retry")
def requeue(task: Annotated[str, typer.Argument(help="task id")], as_json: JsonOpt = False) -> int:
    """Put an evicted entry back in the queue, e.g. after fixing its branch."""
    return _signal(SignalKind.REQUEUE, task, as_json)


@app.command()
def approve(task: Annotated[str, typer.Argument(help="task id")], as_json: JsonOpt = False) -> int:
    """Let an entry waiting for approval go on to be tested and landed."""
    return _signal(SignalKind.APPROVE, task, as_json)


@app.command()
def reject(
    task: Annotated[str, typer.Argument(help="task id")],
    reason: Annotated[str, typer.Option("--reason", help="why; recorded as the eviction reason")] = "rejected",
    as_json: JsonOpt = False,
) -> int:
    """Send an entry back: it leaves the queue with the reason given."""
    return _signal(SignalKind.REJECT, task, as_json, reason=reason)
