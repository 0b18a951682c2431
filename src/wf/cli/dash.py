"""wf dash: the live dashboard (``wf run --dash`` opens it over a run of its own)."""

from __future__ import annotations

import subprocess
import sys

from wf import api
from wf.cli import app
from wf.cli.control import JsonOpt
from wf.cli.inspect import AllOpt
from wf.cli.output import note, print_json
from wf.errors import UsageError


@app.command()
def dash(all_tasks: AllOpt = False, as_json: JsonOpt = False) -> int:
    """Watch the tasks, their output and diffs, and the merge queue live; act on them with keys."""
    repo = api.open_repo()
    if as_json:  # what the dashboard would show, once, for scripts
        from wf.tui.cells import totals

        tasks, queue = api.status(repo, all_tasks=all_tasks), api.queue_status(repo)
        print_json({"tasks": tasks, "queue": queue, "totals": totals(tasks, queue),
                    "engine_active": api.engine_active(repo)})
        return 0
    _need_terminal()
    from wf.tui import run_dashboard

    with api.mirrored(repo):
        run_dashboard(repo, all_tasks=all_tasks)
    return 0


def _need_terminal() -> None:
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("the dashboard needs a terminal",
                         hint="`wf dash --json` or `wf status --json` print the same state")


def run_with_dashboard(repo: api.Repo, run_args: list[str]) -> int:
    """``wf run --dash``: start ``wf run`` in its own session (so closing the dashboard or the
    terminal does not stop it), its output in the state folder, and watch it."""
    _need_terminal()
    if api.engine_active(repo):
        from wf.errors import EngineBusy

        raise EngineBusy("another wf engine is active in this repository",
                         hint="watch it with `wf dash`")
    repo.state_dir.mkdir(parents=True, exist_ok=True)
    out_path = repo.state_dir / "dash-run.log"
    with open(out_path, "wb") as out:
        child = subprocess.Popen([sys.executable, "-m", "wf", "run", *run_args], cwd=repo.root,
                                 stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                 start_new_session=True)
    from wf.tui import run_dashboard

    run_dashboard(repo, run_process=child)
    code = child.poll()
    if code is None:
        note(f"the run goes on in the background (pid {child.pid}); `wf dash` watches it "
             f"again, its output is in {out_path}")
        return 0
    if code not in (0, 1):  # the run itself broke (exit 2, 3, 70...): say why, in its words
        lines = out_path.read_text(errors="replace").strip().splitlines()
        sys.stderr.write("".join(f"{line}\n" for line in lines[-2:]))
    return code
