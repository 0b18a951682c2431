"""wf worker: this host's Temporal worker for the repository (``[engine] kind = "temporal"``)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from typing import Annotated, Any, Optional

import typer

from wf import api
from wf.cli import app
from wf.cli.output import console
from wf.errors import ConfigError


def _line(kind: str, data: dict[str, Any]) -> str:
    """What the worker says about one thing it did, for a person."""
    if kind == "ready":
        return (f"worker on {data['host']}: {data['slots']} slot(s), polling "
                f"{' and '.join(data['queues'])} at {data['address']}; Ctrl-C stops polling "
                "and leaves running agents to be adopted")
    if kind == "worktree":
        return f"{data['task']}: worktree {data['path']}"
    if kind == "attempt":
        verb = "adopting" if data["adopt"] else "running"
        return f"{data['task']}: {verb} attempt {data['n']}"
    if kind == "ended":
        return f"{data['task']}: attempt {data['n']} {data['ended']}"
    return f"{kind}: {data}"


@app.command()
def worker(
    slots: Annotated[Optional[int], typer.Option(  # noqa: UP045 (typer reads the hint)
        "--slots", min=1, help="attempts this host runs at once (default: max_parallel)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
) -> int:
    """Run this host's Temporal worker: take the repository's tasks and run their agents here."""
    repo = api.open_repo()
    if repo.config.engine.kind != "temporal":
        raise ConfigError("`wf worker` needs the Temporal engine",
                          hint='set [engine] kind = "temporal" in wf.toml (docs/temporal.md)')
    from wf.temporal import require

    require()
    from wf.temporal.worker import serve

    def report(kind: str, data: dict[str, Any]) -> None:
        if as_json:
            sys.stdout.write(json.dumps({"ts": round(time.time(), 3), "event": kind, **data})
                             + "\n")
            sys.stdout.flush()
        else:
            console.print(_line(kind, data), highlight=False, markup=False)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await serve(repo, dict(os.environ), stop, slots=slots or repo.config.max_parallel,
                    report=report)

    asyncio.run(main())
    if as_json:
        report("stopped", {})
    else:
        console.print("worker stopped; its agents run on, and the next worker adopts them",
                      markup=False)
    return 0
