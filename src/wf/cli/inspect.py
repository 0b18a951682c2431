"""wf status, wf logs, wf diff, wf events: read-only views of the log."""

from __future__ import annotations

import sys
import time
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from wf import api
from wf.cli import app
from wf.cli.output import console, event_line, note, pr_cell, print_json, styled_state
from wf.model import format_duration

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


@app.command()
def status(as_json: JsonOpt = False) -> int:
    """The tasks in this repository's log and their states."""
    repo = api.open_repo()
    tasks = api.status(repo)
    if as_json:
        print_json(tasks)
        return 0
    if not tasks:
        note("no tasks yet: start with `wf run`")
        return 0
    now = time.time()
    table = Table(box=None, header_style="bold", pad_edge=False)
    with_pr = any(t["pr_url"] for t in tasks)  # the column appears once a PR/MR exists
    for col in ("task", "state", "tries", "agent", "branch", *(["pr"] if with_pr else []),
                "last error"):
        table.add_column(col, overflow="fold" if col in ("last error", "pr") else "ellipsis")
    for t in tasks:
        state = styled_state(t["state"])
        if t["state"] == "retrying" and t["next_retry_at"]:
            state += f" in {format_duration(t['next_retry_at'] - now)}"
        table.add_row(t["id"], state, str(t["attempts"]), t["agent"], t["branch"] or "-",
                      *([pr_cell(t)] if with_pr else []), escape(t["last_error"] or ""))
    console.print(table)
    if api.engine_active(repo):
        note("an engine is running in this repository")
    return 0


@app.command()
def logs(
    task: Annotated[str, typer.Argument(help="task id")],
    attempt: Annotated[Optional[int], typer.Option(help="attempt number (default: latest)")] = None,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="keep printing new output")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per output line")] = False,
) -> int:
    """The output of a task's agent (its latest attempt unless --attempt)."""
    repo = api.open_repo()
    path, n, running = api.attempt_log(repo, task, attempt)
    write = _json_lines(task, n) if as_json else _raw_bytes()
    rotated = path.with_name(path.name + ".1")
    if rotated.exists():
        write(rotated.read_bytes())
    pos = 0
    while True:
        try:
            with open(path, "rb") as f:
                f.seek(0, 2)
                if f.tell() < pos:  # rotated under us: start the new file from the top
                    pos = 0
                f.seek(pos)
                chunk = f.read()
        except FileNotFoundError:
            chunk = b""
        if chunk:
            write(chunk)
            pos += len(chunk)
        if not follow or not running:
            write(b"", final=True)
            return 0
        time.sleep(0.2)
        running = api.attempt_log(repo, task, n)[2]


def _raw_bytes():
    out = sys.stdout.buffer

    def write(chunk: bytes, final: bool = False) -> None:
        out.write(chunk)
        out.flush()
    return write


def _json_lines(task: str, attempt: int):
    pending = [b""]

    def write(chunk: bytes, final: bool = False) -> None:
        *lines, pending[0] = (pending[0] + chunk).split(b"\n")
        if final and pending[0]:
            lines, pending[0] = [*lines, pending[0]], b""
        for line in lines:
            print_json({"task": task, "attempt": attempt,
                        "line": line.decode("utf-8", "replace")})
    return write


@app.command()
def diff(
    task: Annotated[str, typer.Argument(help="task id")],
    stat: Annotated[bool, typer.Option("--stat", help="only the diffstat")] = False,
    as_json: JsonOpt = False,
) -> int:
    """The task's change against its base, including uncommitted work."""
    repo = api.open_repo()
    result = api.task_diff(repo, task, stat=stat)
    if as_json:
        print_json(result)
    else:
        sys.stdout.write(result["diff"])
    return 0


@app.command()
def events(
    since: Annotated[int, typer.Option(help="only events after this sequence number")] = 0,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="wait for new events")] = False,
    as_json: JsonOpt = False,
) -> int:
    """The event log, oldest first."""
    repo = api.open_repo()
    try:
        for e in api.events(repo, since=since, follow=follow):
            if as_json:
                print_json(e.to_json())
            else:
                line = event_line(e) or f"{e.type}"
                console.print(f"[dim]{e.seq:>6}[/] {escape(line)}", soft_wrap=True)
    except KeyboardInterrupt:
        return 0
    return 0
