"""wf hooks (list, test, deliveries, dlq, replay, enable, deliver): event broadcasting."""

from __future__ import annotations

import signal
import time
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from wf import api
from wf.cli import app
from wf.cli.output import clock, console, note, print_json
from wf.model import format_duration

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]

hooks_app = typer.Typer(help="Webhooks and sinks: endpoints, deliveries, dead letters, replay.",
                        invoke_without_command=True, no_args_is_help=False)
app.add_typer(hooks_app, name="hooks")

STATE_STYLE = {"ok": "green", "new": "dim", "failing": "yellow", "disabled": "bold red"}


def _manage():
    from wf.hooks import manage

    return manage


@hooks_app.callback()
def show(ctx: typer.Context, as_json: JsonOpt = False) -> int:
    """The endpoints and their health: delivered, retrying, dead letters, pending."""
    if ctx.invoked_subcommand is not None:
        return 0
    rows = _manage().health(api.open_repo())
    if as_json:
        print_json(rows)
        return 0
    if not rows:
        note("no endpoints: add [[hooks]] to wf.toml (docs/hooks.md)")
        return 0
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("endpoint", "state", "delivered", "retrying", "dead", "pending", "target",
                "last error"):
        table.add_column(col, overflow="fold" if col in ("target", "last error") else "ellipsis")
    for r in rows:
        state = f"[{STATE_STYLE.get(r['state'], '')}]{r['state']}[/]"
        error = r["disabled_reason"] or r["last_error"] or ""
        table.add_row(r["name"], state, str(r["delivered"]), str(r["retrying"]),
                      str(r["dead"]), str(r["pending"]), escape(r["target"]), escape(error))
    console.print(table)
    for r in rows:
        if r["state"] == "disabled":
            note(f"{r['name']} is disabled ({r['disabled_reason']}): `wf hooks enable "
                 f"{r['name']}` sends what waited")
    return 0


@hooks_app.command("test")
def test(name: Annotated[str, typer.Argument(help="endpoint name")],
         as_json: JsonOpt = False) -> int:
    """Send a signed test event to one endpoint now; exit 1 when it is not accepted."""
    result = _manage().send_test(api.open_repo(), name)
    if as_json:
        print_json(result)
    elif result["ok"]:
        console.print(f"{name}: accepted ({result['status'] or 'stored'}) in "
                      f"{format_duration(result['duration'])}, id {result['id']}", markup=False)
    else:
        console.print(f"{name}: not accepted: {result['error']}", markup=False, style="red")
    return 0 if result["ok"] else 1


@hooks_app.command("deliveries")
def deliveries(
    failed: Annotated[bool, typer.Option("--failed", help="failed attempts only")] = False,
    endpoint: Annotated[Optional[str],  # noqa: UP045 (typer reads the hint)
                        typer.Option("--endpoint", help="one endpoint")] = None,
    limit: Annotated[int, typer.Option("--limit", min=0, help="the last N (0: all)")] = 50,
    as_json: JsonOpt = False,
) -> int:
    """Delivery attempts, oldest first: status code, error, next try."""
    rows = _manage().deliveries(api.open_repo(), failed=failed, endpoint=endpoint, limit=limit)
    if as_json:
        print_json(rows)
        return 0
    if not rows:
        note("no deliveries recorded yet")
        return 0
    now = time.time()
    for r in rows:
        line = f"{clock(r['ts'])}  {r['endpoint']}  event {r['seq']}  {r['result']}"
        if r["result"] != "delivered":
            line += f" (attempt {r['attempt']}: {r['error']})"
            if r["next_at"]:
                line += f"; next try in {format_duration(r['next_at'] - now)}"
            line += f"  id {r['id']}"
        console.print(line, markup=False, soft_wrap=True)
    return 0


@hooks_app.command("dlq")
def dlq(as_json: JsonOpt = False) -> int:
    """Dead letters: events that used up their endpoint's retries."""
    rows = _manage().dead_letters(api.open_repo())
    if as_json:
        print_json(rows)
        return 0
    if not rows:
        note("no dead letters")
        return 0
    for r in rows:
        console.print(f"{r['id']}  {r['endpoint']}  event {r['seq']} {r['type']}  after "
                      f"{r['attempts']} attempts: {r['error']}", markup=False, soft_wrap=True)
    note("`wf hooks replay ID` (or --all-failed) sends them again")
    return 0


@hooks_app.command("replay")
def replay(
    ids: Annotated[Optional[list[str]],  # noqa: UP045 (typer reads the hint)
                   typer.Argument(help="delivery ids (or ENDPOINT:SEQ)")] = None,
    all_failed: Annotated[bool, typer.Option("--all-failed", help="every dead letter and "
                                             "failing delivery")] = False,
    as_json: JsonOpt = False,
) -> int:
    """Send failed deliveries again, with the same webhook-id and a fresh schedule."""
    repo = api.open_repo()
    rows = _manage().replay(repo, ids or [], all_failed=all_failed)
    if as_json:
        print_json(rows)
        return 0
    n = sum(len(r["seqs"]) for r in rows)
    note(f"{n} deliver{'y' if n == 1 else 'ies'} to send again"
         + ("" if api.engine_active(repo) else "; `wf hooks deliver` sends them now"))
    return 0


@hooks_app.command("enable")
def enable(name: Annotated[str, typer.Argument(help="endpoint name")],
           as_json: JsonOpt = False) -> int:
    """Enable a disabled endpoint again; what waited for it is sent."""
    result = _manage().enable(api.open_repo(), name)
    if as_json:
        print_json(result)
    else:
        note(f"{name} enabled")
    return 0


@hooks_app.command("deliver")
def deliver(
    follow: Annotated[bool, typer.Option("-f", "--follow",
                                         help="keep delivering until Ctrl-C")] = False,
    as_json: JsonOpt = False,
) -> int:
    """Send what is pending when no engine runs (an engine delivers as it runs)."""
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    try:
        from wf.hooks.delivery import deliver as deliver_pending

        result = deliver_pending(api.open_repo(), follow=follow, say=note,
                                 stop=lambda: bool(stopping))
    except KeyboardInterrupt:
        result = None
    if result is None:
        note("stopped; `wf hooks deliver` carries on")
        return 130
    if as_json:
        print_json(result)
    else:
        note(f"{result['delivered']} delivered, {result['failed']} failed attempt(s)")
    return 0
