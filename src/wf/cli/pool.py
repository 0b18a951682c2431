"""wf pool (show), wf pool warm [N], wf pool drain: the warm worktrees of this clone."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from wf import api
from wf.cli import app
from wf.cli.control import JsonOpt
from wf.cli.output import console, note, print_json
from wf.model import format_duration

pool_app = typer.Typer(help="The pool of warm worktrees: prepared ahead, handed to tasks.",
                       invoke_without_command=True, no_args_is_help=False)
app.add_typer(pool_app, name="pool")


def size_text(size: int | None) -> str:
    if size is None:
        return "-"
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


@pool_app.callback()
def show(ctx: typer.Context, as_json: JsonOpt = False) -> int:
    """Show the pooled worktrees: slot, state, task, setup key, age and size on disk."""
    if ctx.invoked_subcommand is not None:
        return 0
    status = api.pool_status(api.open_repo())
    if as_json:
        print_json(status)
        return 0
    cap = f", cap {size_text(status['pool_max_disk'])}" if status["pool_max_disk"] else ""
    console.print(f"pool = {status['pool']}: {status['idle']} idle, "
                  f"{size_text(status['idle_bytes'])}{cap}", markup=False)
    if not status["slots"]:
        note("no pooled worktrees" + ("" if status["pool"] else
                                      "; set pool = N under [worktrees] in wf.toml"))
        return 0
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("slot", "state", "task", "key", "base", "age", "size", "uses", "path"):
        table.add_column(col, overflow="fold" if col == "path" else "ellipsis")
    for s in status["slots"]:
        table.add_row(s["slot"], s["state"], s["task"] or "-", (s["key"] or "-")[:10],
                      (s["base"] or "-")[:10], format_duration(s["age"]), size_text(s["size"]),
                      str(s["uses"] or 0), escape(s["path"]))
    console.print(table)
    return 0


def _report(items: list[dict[str, Any]], as_json: bool, empty: str) -> int:
    failed = any(str(i["result"]).startswith("failed") for i in items)
    if as_json:
        print_json(items)
        return 1 if failed else 0
    for i in items:
        extra = f" ({size_text(i['size'])} in {i['seconds']:.1f}s)" if "seconds" in i else ""
        console.print(f"{i['slot'] or i['path']}: {i['result']}{extra}", markup=False,
                      soft_wrap=True)
    if not items:
        note(empty)
    return 1 if failed else 0


@pool_app.command("warm")
def warm(n: Annotated[int | None, typer.Argument(min=1, help="idle worktrees wanted "
                                                    "(default: [worktrees] pool)")] = None,
         as_json: JsonOpt = False) -> int:
    """Prepare worktrees ahead (checked out and set up), e.g. in a CI cache step."""
    items = api.pool_warm(api.open_repo(), n)
    return _report(items, as_json, "the pool is already warm")


@pool_app.command("drain")
def drain(as_json: JsonOpt = False) -> int:
    """Remove the idle pooled worktrees (a task's worktree is kept)."""
    return _report(api.pool_drain(api.open_repo()), as_json, "the pool is empty")
