"""wf run, wf resume, wf demo."""

from __future__ import annotations

import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from wf import api, gitx
from wf.cli import app
from wf.cli.output import console, note, print_json
from wf.cli.view import RunView, summary_line
from wf.errors import UsageError

JsonOpt = Annotated[bool, typer.Option("--json", help="one JSON object per event, per line")]


def _stop_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM stops the engine exactly as Ctrl-C does: through the SIGINT handler of the
    running event loop (asyncio's cancels the main task, and the run ends in one
    KeyboardInterrupt). Raised here instead, the KeyboardInterrupt would land in whichever
    task happens to run, and asyncio would print that task's traceback at shutdown."""
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
        return
    raise KeyboardInterrupt  # SIGINT is ignored: stop all the same


def _drive(repo: api.Repo, specs: list | None, *, as_json: bool, command: str) -> int:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    if api.worker_missing(repo):
        note("no `wf worker` polls this repository's Temporal queue: the tasks wait until one "
             "does (`wf worker` on a machine with a clone and the agent CLIs)")
    view = RunView(as_json=as_json, live=sys.stdout.isatty(), logs_dir=repo.logs_dir)
    try:
        view.start(*(api.projection(repo) if view.live else (None, 0)))
        result = api.run(repo, specs, command=command, observers=[view.on_events], say=note)
    finally:
        view.close()
    if not as_json:
        if result.queue_stopped:
            note(f"the merge queue stopped: {result.queue_stopped}; its entries wait "
                 "(`wf queue`) until `wf resume` starts it again")
        elif result.idle:
            note("nothing to do: every task in the log has finished")
        if result.tasks and not view.showed_summary:
            console.print(summary_line(result.tasks))
        for line in next_steps(result.tasks, result.queue):
            note(line)
    return result.exit_code


def next_steps(tasks: list[dict], entries: list[dict]) -> list[str]:
    """What the user can do about what did not succeed, one line per kind of outcome."""
    def ids(rows: list[dict], key: str = "id") -> str:
        return ", ".join(r[key] for r in rows)

    def state(rows: list[dict], name: str) -> list[dict]:
        return [r for r in rows if r["state"] == name]

    lines = []
    if waiting := state(entries, "waiting_approval"):
        lines.append(f"waiting for `wf approve ID` (or `wf reject ID`): {ids(waiting, 'task_id')}")
    if evicted := state(entries, "evicted"):
        why = ", ".join(f"{e['task_id']} ({e['reason_kind']})" for e in evicted)
        lines.append(f"evicted from the merge queue: {why}; `wf queue` shows why; "
                     "`wf queue retry ID` queues the branch again, `wf retry ID` runs the "
                     "agent again")
    if failed := state(tasks, "failed"):
        lines.append(f"failed: {ids(failed)}; `wf logs ID` shows why, `wf retry ID` runs it "
                     "again")
    stopped = [r for r in tasks if r["state"] in ("cancelled", "blocked")]
    if stopped:
        which = ", ".join(f"{r['id']} ({r['state']})" for r in stopped)
        lines.append(f"not run to the end: {which}; `wf retry ID` runs it again")
    return lines


@app.command()
def run(
    tasks_file: Annotated[Optional[Path], typer.Argument(help="a TOML file of [[task]] tables")] = None,
    prompt: Annotated[Optional[str], typer.Option("-p", "--prompt", help="run this prompt")] = None,
    n: Annotated[int, typer.Option("-n", help="copies of the prompt", min=1, max=100)] = 1,
    agent: Annotated[Optional[str], typer.Option("--agent", help="agent for the tasks")] = None,
    max_parallel: Annotated[Optional[int], typer.Option(help="tasks at once", min=1)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="check and print the plan only")] = False,
    dash: Annotated[bool, typer.Option("--dash", help="watch it in the live dashboard")] = False,
    as_json: JsonOpt = False,
) -> int:
    """Run tasks, each in its own worktree and branch, until every one has ended."""
    from wf.task_input import plan_prompt, plan_tasks_file

    if (tasks_file is None) == (prompt is None):
        raise UsageError("give either a tasks file or -p PROMPT", hint="see `wf run --help`")
    repo = api.open_repo()
    if tasks_file is not None:
        repo, specs = plan_tasks_file(repo, tasks_file, agent=agent, max_parallel=max_parallel)
    else:
        repo, specs = plan_prompt(repo, prompt, n, agent=agent, max_parallel=max_parallel)
    if dry_run:
        return _print_plan(specs, as_json)
    if dash:
        if as_json:
            raise UsageError("--dash and --json do not go together", hint="pick one")
        from wf.cli.dash import run_with_dashboard

        return run_with_dashboard(repo, _run_args(tasks_file, prompt, n, agent, max_parallel))
    if not as_json and gitx.has_tracked_changes(repo.root):
        note(f"note: {repo.root} has uncommitted changes; agents start from the committed "
             f"{specs[0].base if specs else 'base'}, without them")
    return _drive(repo, specs, as_json=as_json, command="wf run")


def _run_args(tasks_file: Path | None, prompt: str | None, n: int, agent: str | None,
              max_parallel: int | None) -> list[str]:
    """The arguments of the same ``wf run`` without ``--dash``, for the run it starts."""
    args = [str(tasks_file.resolve())] if tasks_file else ["-p", prompt or "", "-n", str(n)]
    if agent:
        args += ["--agent", agent]
    if max_parallel:
        args += ["--max-parallel", str(max_parallel)]
    return args


def _print_plan(specs: list, as_json: bool) -> int:
    if as_json:
        print_json([s.model_dump(mode="json") for s in specs])
        return 0
    for s in specs:
        after = f" after {', '.join(s.depends_on)}" if s.depends_on else ""
        console.print(f"{s.id}: {s.agent} from {s.base}{after}", soft_wrap=True, markup=False)
    return 0


@app.command()
def resume(as_json: JsonOpt = False) -> int:
    """Carry on from the log after Ctrl-C, kill -9 or a reboot; act on waiting signals."""
    repo = api.open_repo()
    return _drive(repo, None, as_json=as_json, command="wf resume")


@app.command()
def demo(
    path: Annotated[Optional[Path], typer.Option(help="where to make the demo repository")] = None,
    as_json: JsonOpt = False,
) -> int:
    """Make a throwaway repository and run the whole flow there with the demo agent."""
    from wf.demo import make_demo_repo

    root = make_demo_repo(path)
    if not as_json:
        note(f"demo repository: {root}")
    repo = api.open_repo(root)
    from wf.task_input import plan_tasks_file

    repo, specs = plan_tasks_file(repo, root / "tasks.toml")
    code = _drive(repo, specs, as_json=as_json, command="wf demo")
    if not as_json:
        wf = _how_to_call_wf()
        console.print(f"\nexplore it: [bold]cd {escape(str(root))}[/] then "
                      f"`{escape(wf)} status`, `{escape(wf)} logs flaky-api`, "
                      f"`{escape(wf)} diff summary`, `{escape(wf)} events`", soft_wrap=True)
    return code


def _how_to_call_wf() -> str:
    """``wf`` if that is what the shell finds, else the full path this one was started by."""
    me = os.path.abspath(sys.argv[0])
    found = shutil.which("wf")
    return "wf" if found and os.path.abspath(found) == me or not os.path.isfile(me) else me
