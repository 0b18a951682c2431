"""wf status, wf logs, wf diff, wf events: read-only views of the log."""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from wf import api
from wf.cli import app
from wf.cli.output import (
    console, event_text, note, pr_cell, print_json, styled_state, transcript_line,
)
from wf.model import format_duration

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


AllOpt = Annotated[bool, typer.Option("--all", help="every task in the log, not only the "
                                                  "current run's")]


@app.command()
def status(all_tasks: AllOpt = False, as_json: JsonOpt = False) -> int:
    """The tasks of the current run (--all: every task in the log), active ones first."""
    repo = api.open_repo()
    if not api.refresh(repo):
        note("the Temporal workflows did not answer within 0.4 s: this is the log as this "
             "clone last pulled it (`wf events -f` pulls as it goes)")
    tasks = api.status(repo, all_tasks=all_tasks)
    if as_json:
        print_json(tasks)
        return 0
    for hook in api.hooks_disabled(repo):  # attention: nothing reaches that endpoint now
        note(f"hook endpoint {hook['endpoint']} is disabled ({hook['reason']}): "
             f"`wf hooks enable {hook['endpoint']}` sends what waited")
    if not tasks:
        note("no tasks yet: start with `wf run`" if all_tasks or not api.status(
            repo, all_tasks=True) else "no tasks in the current run; `wf status --all` "
                                       "shows every task in the log")
        return 0
    now = time.time()
    table = Table(box=None, header_style="bold", pad_edge=False)
    with_pr = any(t["pr_url"] for t in tasks)  # the column appears once a PR/MR exists
    for col in ("task", "state", "tries", "agent", "branch", *(["pr"] if with_pr else []),
                "tokens", "cost", "last error"):
        # Ids and branches are what people type: never cut; the other columns give way.
        whole = {"task": "id", "branch": "branch"}.get(col)
        table.add_column(col, overflow="fold" if col in ("last error", "pr") else "ellipsis",
                         justify="right" if col in ("tokens", "cost") else "left",
                         no_wrap=whole is not None,
                         min_width=max((len(t[whole] or "-") for t in tasks), default=1)
                         if whole else None)
    for t in tasks:
        state = styled_state(t["state"])
        if t["state"] == "retrying" and t["next_retry_at"]:
            state += f" in {format_duration(t['next_retry_at'] - now)}"
        held = t.get("budget_exceeded") if t["state"] in ("running", "queued",
                                                          "retrying") else None
        if held:  # attention: a budget holds it until `wf budget`
            state += " (paused: budget)" if t.get("paused") else " (held: budget)"
        error = (f"{held['message']}; `wf budget {t['id']} --add/--tokens/--wall` resumes it"
                 if held else t["last_error"] or "")
        table.add_row(t["id"], state, str(t["attempts"]), t["agent"], t["branch"] or "-",
                      *([pr_cell(t)] if with_pr else []), _tokens(t["tokens"]),
                      _cost(t["cost_usd"]), escape(error))
    costs = [t["cost_usd"] for t in tasks if t["cost_usd"] is not None]
    if any(t["tokens"] for t in tasks) or costs:
        table.add_section()
        blanks = [""] * (5 if with_pr else 4)
        table.add_row("total", *blanks, _tokens(sum(t["tokens"] or 0 for t in tasks)),
                      _cost(sum(costs) if costs else None), "")
    console.print(table)
    for line in [*agent_limit_lines(tasks, now), *no_live_figures_lines(tasks)]:
        console.print(escape(line), soft_wrap=True)
    hidden = 0 if all_tasks else len(api.status(repo, all_tasks=True)) - len(tasks)
    if hidden:
        note(f"{hidden} task(s) of earlier runs not shown: `wf status --all`")
    if api.engine_active(repo):
        note("an engine is running in this repository")
    return 0


def agent_limit_lines(tasks: list[dict], now: float) -> list[str]:
    """One line per agent of ``tasks`` whose parallelism adapts: how many of its attempts
    may run at once now, of how many, why, and how long its starts are held."""
    limits = {t["agent"]: t["agent_limit"] for t in tasks if t.get("agent_limit")}
    out = []
    for agent, lim in sorted(limits.items()):
        line = (f"agent {agent}: {lim['limit']} at once"
                + (f" of {lim['max_parallel']}" if lim.get("max_parallel") else "")
                + f" ({lim['reason']})")
        if (lim.get("not_before") or 0) > now:
            line += f"; no start before {format_duration(lim['not_before'] - now)} from now"
        out.append(line)
    return out


def no_live_figures_lines(tasks: list[dict]) -> list[str]:
    """A line naming the running tasks whose usage is not known while they run (a budget
    counts it only once it is reported), if any."""
    why = {"at_end": "usage only at an attempt's end", "none": "its agent reports none"}
    quiet = [f"{t['id']} ({why[t['usage_reported']]})" for t in tasks
             if t["state"] == "running" and t.get("usage_reported") in why]
    if not quiet:
        return []
    return [f"no live figures: {', '.join(quiet)}; budgets count their usage once known"]


def _tokens(tokens: int | None) -> str:
    return f"{tokens:,}" if tokens else "-"


def _cost(cost: float | None) -> str:
    return "-" if cost is None else f"${cost:.4f}"


@app.command()
def logs(
    task: Annotated[str, typer.Argument(help="task id")],
    attempt: Annotated[Optional[int], typer.Option(help="attempt number (default: latest)")] = None,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="keep printing new output")] = False,
    raw: Annotated[bool, typer.Option("--raw", help="the agent's output as it wrote it")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per output line")] = False,
) -> int:
    """What a task's agent said and did (its latest attempt unless --attempt): a transcript
    for the agent CLIs wf knows, their output as written otherwise."""
    from wf.agents.builtin import find_adapter

    repo = api.open_repo()
    path, n, running, adapter_name = api.attempt_log(repo, task, attempt)
    adapter = find_adapter(adapter_name)
    if as_json:
        write = _json_lines(task, n)
    elif adapter is not None and not raw:
        write = _transcript(adapter.reader())
    else:
        write = _raw_bytes()
    if not path.exists() and (elsewhere := api.log_elsewhere(repo, task, n)) is not None:
        write(elsewhere)  # the host that ran it sent its end; following it is for that host
        write(b"", final=True)
        return 0
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


def _lines(emit):
    """A writer that hands ``emit`` each complete line of the chunks it is given."""
    pending = [b""]

    def write(chunk: bytes, final: bool = False) -> None:
        *lines, pending[0] = (pending[0] + chunk).split(b"\n")
        if final and pending[0]:
            lines, pending[0] = [*lines, pending[0]], b""
        for line in lines:
            emit(line.decode("utf-8", "replace"))
    return write


def _transcript(reader):
    def emit(line: str) -> None:
        for entry in reader.feed(line):
            text = transcript_line(entry)
            if text is not None:
                console.print(text, soft_wrap=True, markup=False, highlight=False)
    return _lines(emit)


def _raw_bytes():
    out = sys.stdout.buffer

    def write(chunk: bytes, final: bool = False) -> None:
        out.write(chunk)
        out.flush()
    return write


def _json_lines(task: str, attempt: int):
    return _lines(lambda line: print_json({"task": task, "attempt": attempt, "line": line}))


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
    if not follow:
        api.refresh(repo)
    try:
        with api.mirrored(repo) if follow else contextlib.nullcontext():
            for e in api.events(repo, since=since, follow=follow):
                _print_event(e, as_json)
    except KeyboardInterrupt:
        return 0
    return 0


def _print_event(e: api.Event, as_json: bool) -> None:
    if as_json:
        print_json(e.to_json())
    else:
        line = event_text(e)
        console.print(f"[dim]{e.seq:>6}[/] {escape(line)}", soft_wrap=True)
