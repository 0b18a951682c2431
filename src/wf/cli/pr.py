"""wf pr: push a task's branch and open or update its pull request / merge request."""

from __future__ import annotations

from typing import Annotated

import typer

from wf import api
from wf.cli import app
from wf.cli.control import JsonOpt
from wf.cli.output import console, print_json


@app.command()
def pr(
    task: Annotated[str, typer.Argument(help="task id")],
    draft: Annotated[bool, typer.Option("--draft", help="open it as a draft")] = False,
    label: Annotated[list[str] | None, typer.Option("--label", help="add a label (repeatable)")] = None,
    reviewer: Annotated[list[str] | None, typer.Option(
        "--reviewer", help="request a review: a GitHub login or org/team, a GitLab user id (repeatable)")] = None,
    as_json: JsonOpt = False,
) -> int:
    """Push the task's branch and open its PR/MR, or update the one already open."""
    result = api.open_pr(api.open_repo(), task, draft=draft, labels=label or (),
                         reviewers=reviewer or ())
    if as_json:
        print_json(result)
        return 0
    verb = "opened" if result["created"] else "updated"
    kind = "merge request !" if result["forge"] == "gitlab" else "pull request #"
    console.print(f"{verb} {kind}{result['number']} ({result['state']}): {result['url']}")
    return 0
