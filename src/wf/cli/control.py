"""wf cancel, wf retry, wf clean, wf init: commands that change things."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from wf import api
from wf.cli import app
from wf.cli.output import console, note, print_json
from wf.errors import UsageError
from wf.model import SignalKind

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def _signal(kind: SignalKind, task: str, as_json: bool, **data: object) -> int:
    repo = api.open_repo()
    event, active = api.send_signal(repo, kind, task, **data)
    if as_json:
        print_json({"signal": str(kind), "task": task, "seq": event.seq, "engine_active": active})
    elif active:
        console.print(f"{kind} signal for {task} sent (seq {event.seq}); the running engine acts on it")
    else:
        console.print(f"{kind} signal for {task} recorded (seq {event.seq})")
        note("no engine is running: `wf resume` acts on it")
    return 0


@app.command()
def cancel(task: Annotated[str, typer.Argument(help="task id")], as_json: JsonOpt = False) -> int:
    """Stop a task: its agent's whole process group is stopped and it is not retried."""
    return _signal(SignalKind.CANCEL, task, as_json)


@app.command()
def retry(task: Annotated[str, typer.Argument(help="task id")], as_json: JsonOpt = False) -> int:
    """Run a failed, cancelled or blocked task again, with a fresh retry budget."""
    return _signal(SignalKind.RETRY, task, as_json)


@app.command()
def budget(
    task: Annotated[str, typer.Argument(help="task id")],
    add: Annotated[str | None, typer.Option("--add", help="more cost in USD, e.g. 2.00")] = None,
    tokens: Annotated[str | None, typer.Option("--tokens", help="more tokens, e.g. 200k")] = None,
    wall: Annotated[str | None, typer.Option("--wall", help="more time, e.g. 30m")] = None,
    as_json: JsonOpt = False,
) -> int:
    """Raise a task's budget; a task a budget paused resumes."""
    from wf.engine.budget import parse_budget
    from wf.errors import ConfigError

    if add is None and tokens is None and wall is None:
        raise UsageError("say how much more: --add USD, --tokens N or --wall DURATION")
    try:
        more = parse_budget({"max_cost_usd": add, "max_tokens": tokens, "max_wall": wall},
                            "wf budget")
    except ConfigError as exc:
        raise UsageError(exc.message.replace("wf budget.max_cost_usd", "--add")
                         .replace("wf budget.max_tokens", "--tokens")
                         .replace("wf budget.max_wall", "--wall")) from None
    return _signal(SignalKind.BUDGET, task, as_json, cost_usd=more.max_cost_usd or 0.0,
                   tokens=more.max_tokens or 0, wall=more.max_wall or 0.0)


@app.command()
def clean(
    tasks: Annotated[list[str] | None, typer.Argument(help="task ids (default: every finished task)")] = None,
    force: Annotated[bool, typer.Option("--force", help="also remove unmerged work, after a backup ref")] = False,
    orphans: Annotated[bool, typer.Option("--orphans", help="worktrees and wf/* branches the log does not track")] = False,
    forget: Annotated[bool, typer.Option("--forget", help="also drop the tasks from the log, so their ids can be run again")] = False,
    as_json: JsonOpt = False,
) -> int:
    """Remove worktrees of finished tasks, and branches whose work is merged or pushed."""
    repo = api.open_repo()
    report = api.clean(repo, tasks or [], force=force, orphans=orphans, forget=forget)
    # --forget that could not remove what holds the task is exit 1, like a refusal
    code = 1 if any(item.get("forgotten") is False for item in report) else 0
    if as_json:
        print_json(report)
        return code
    for item in report:
        what = item["task"] if item["kind"] == "task" else f"orphan {item['kind']} {item['name']}"
        console.print(f"{escape(what)}: {escape(item['result'])}", soft_wrap=True)
    if not report:
        note("nothing to clean")
    return code


@app.command()
def init(force: Annotated[bool, typer.Option("--force", help="overwrite wf.toml")] = False,
         as_json: JsonOpt = False) -> int:
    """Write a commented wf.toml at the repository root."""
    from wf.init_template import INIT_TEMPLATE

    root, _ = api.find_repo()
    path = Path(root) / "wf.toml"
    if path.exists() and not force:
        raise UsageError(f"{path} already exists", hint="use --force to overwrite it")
    path.write_text(INIT_TEMPLATE)
    if as_json:
        print_json({"path": str(path)})
    else:
        console.print(f"wrote {path}")
    return 0
