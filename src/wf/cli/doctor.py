"""wf doctor: which agent CLIs, credentials, git and forge tokens this machine has."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from wf.cli import app
from wf.cli.output import console, print_json


@app.command()
def doctor(as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")]
           = False) -> int:
    """Agent CLIs installed, their versions and what each lacks; git; forge tokens set."""
    from wf.doctor import report, unusable

    found = report(os.environ, *_config())
    code = 0 if found["git"]["path"] and not unusable(found) else 1
    if as_json:
        print_json(found)
        return code
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("agent", "installed", "version", "credentials", "missing"):
        table.add_column(col, overflow="fold")
    for a in found["agents"]:
        table.add_row(a["name"], "[green]yes[/]" if a["installed"] else "[red]no[/]",
                      escape(a["version"] or "-"), escape(", ".join(a["credentials"]) or "-"),
                      escape(", ".join(a["missing"])) or "[green]nothing[/]")
    console.print(table)
    for a in found["agents"]:
        if a["installed"] and a["auth_hint"]:
            console.print(f"{a['name']}: {escape(a['auth_hint'])}", soft_wrap=True)
    git = found["git"]
    console.print(f"\ngit: {escape(git['version'] or 'not found')}")
    tokens = ", ".join(f"{name} {'set' if present else 'not set'}"
                       for name, present in found["forge_tokens"].items())
    console.print(f"forge tokens: {tokens} (never passed to agents)")
    for name in unusable(found):
        console.print(f"[red]agent {escape(name)} in wf.toml cannot start: its program is not "
                      "there[/]", soft_wrap=True)
    return code


def _config():
    """(config, repository root) when run inside a repository (for its [agents.X]), else
    (None, None)."""
    from wf.errors import WfError
    from wf.repository import open_repo

    try:
        repo = open_repo()
        return repo.config, repo.root
    except WfError:
        return None, None
