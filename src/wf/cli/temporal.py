"""wf temporal dev: a Temporal dev server for a trial of the Temporal engine on one machine."""

from __future__ import annotations

import signal
import socket
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from wf.cli import app
from wf.cli.output import console, note, print_json
from wf.errors import GitError, WfError

temporal_app = typer.Typer(help="The Temporal engine's helpers (docs/temporal.md).",
                           no_args_is_help=True)
app.add_typer(temporal_app, name="temporal")

def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the server as Ctrl-C does


@temporal_app.command()
def dev(
    db: Annotated[Path | None, typer.Option(
        "--db", help="state file (default: .git/wf/temporal.db in a repository, else "
        "./temporal.db)")] = None,
    port: Annotated[int, typer.Option("--port", help="gRPC port", min=1, max=65535)] = 7233,
    ip: Annotated[str, typer.Option("--ip", help="address to listen on (0.0.0.0: every "
                                    "interface, for workers on other machines)")] = "127.0.0.1",
    ui: Annotated[bool, typer.Option("--ui", help="serve the web UI on port + 1000")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print {address, db, pid} once "
                                          "ready")] = False,
) -> int:
    """Run a Temporal dev server in the foreground with wf's settings; Ctrl-C stops it."""
    from wf.temporal.devserver import QUICK_STOP, start_dev_server

    default_db, namespace = _repository_defaults()
    db = (db or default_db).absolute()
    signal.signal(signal.SIGTERM, _interrupt)
    server = None
    try:
        server = start_dev_server(db, port=port, ip=ip, ui=ui, namespaces=[namespace])
        if as_json:
            print_json({"address": server.address, "db": str(server.db), "pid": server.pid})
        else:
            _print_ready(server.address, db, namespace, port + 1000 if ui else None)
        code = server.process.wait()
    except KeyboardInterrupt:
        if server is not None:  # else start_dev_server stopped it already
            server.stop(grace=QUICK_STOP)  # Ctrl-C must end wf within a second
        note(f"stopped the Temporal dev server; its state is kept in {db}")
        raise typer.Exit(130) from None
    raise WfError(f"the Temporal dev server exited (exit {code}): {server.last_log_line()}",
                  hint=f"its output is in {server.log}")


def _repository_defaults() -> tuple[Path, str]:
    """(default state file, namespace to create): ``.git/wf/temporal.db`` and the
    ``[engine]`` namespace in a repository; ``./temporal.db`` and "default" outside one."""
    from wf import api

    try:
        repo = api.open_repo()
    except GitError:  # not in a repository: a trial in a plain folder
        return Path("temporal.db"), "default"
    return repo.state_dir / "temporal.db", repo.config.engine.namespace


def _print_ready(address: str, db: Path, namespace: str, ui_port: int | None) -> None:
    host, _, port = address.rpartition(":")
    if host in ("0.0.0.0", "[::]"):  # every interface: others reach it by this host's name
        host = socket.gethostname()
        address = f"{host}:{port}"
    console.print(f"Temporal dev server at [bold]{escape(address)}[/] (state: "
                  f"{escape(str(db))}); Ctrl-C stops it", soft_wrap=True)
    if ui_port is not None:
        console.print(f"web UI: http://{escape(host)}:{ui_port}", soft_wrap=True)
    lines = ["[engine]", 'kind = "temporal"', f'address = "{address}"']
    if namespace != "default":
        lines.append(f'namespace = "{namespace}"')
    console.print("in wf.toml:\n" + escape("\n".join(lines)), soft_wrap=True)
    note("then `wf worker` in another terminal, and `wf run tasks.toml`")
