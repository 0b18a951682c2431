"""The ``wf`` command. Commands live in one module per group and call ``wf.api`` only.

Exit codes (docs/cli.md): 0 success; 1 a task failed, was cancelled, blocked or evicted, the
queue stopped, or a signal was refused; 2 usage or config error; 3 another engine is active in
the repository; 4 the event log is damaged; 5 the machine refused wf's own step (no space left
on device); 70 internal error; 130 interrupted (state kept).
"""

from __future__ import annotations

import contextlib
import os
import sys

import typer

from wf.cli.output import fail
from wf.errors import Interrupted, WfError

app = typer.Typer(
    name="wf", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    rich_markup_mode=None, context_settings={"help_option_names": ["-h", "--help"]},
    help="Run many coding agents in parallel on one repository, safely.",
)


def _version(value: bool) -> None:
    if value:
        from wf import __version__

        print(f"wf {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="print the version and exit")) -> None:
    """Run many coding agents in parallel on one repository, safely."""


def _register() -> None:
    from wf.cli import running, inspect, control, queue  # noqa: F401, I001  (in this order)
    from wf.cli import pr, dash, doctor, worker  # noqa: F401, I001
    from wf.cli import temporal, hooks, pool  # noqa: F401, I001


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turn every error into one line and a documented exit code.
    ``argv`` None: the program's own (the ``wf`` command); a list: a call from Python."""
    _register()
    exit_ = _exit if argv is None else sys.exit
    try:
        rv = app(args=argv, standalone_mode=False)
    except WfError as exc:
        fail(exc.message, exc.hint)
        if isinstance(exc, Interrupted):
            _exit_now(exc.exit_code)
        exit_(exc.exit_code)
    except typer.Exit as exc:
        exit_(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        fail("interrupted", "`wf resume` carries on from the log")
        _exit_now(130)
    except typer.TyperException as exc:  # usage errors: unknown option, missing argument
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        fail(" ".join(message.split()), "see `wf --help` or `wf COMMAND --help`")
        exit_(2)
    except BrokenPipeError:  # `wf events | head`
        sys.stderr.close()
        exit_(0)
    except Exception as exc:  # a bug in wf: still one line, the traceback on request
        if os.environ.get("WF_DEBUG"):
            raise
        fail(f"internal error: {type(exc).__name__}: {exc}",
             "run again with WF_DEBUG=1 for the traceback, and please report it")
        exit_(70)
    exit_(rv if isinstance(rv, int) else 0)


def _exit(code: int) -> None:
    """Exit the ``wf`` program with ``code``. After the Temporal engine was used, without the
    interpreter's finalization: the SDK's runtime threads may call into Python while it
    finalizes and abort the process once its work is done (seen in CI: `wf cancel` and
    `wf logs` exiting -11 and -6 after printing the right answer)."""
    if "temporalio" in sys.modules:
        _exit_now(code)
    sys.exit(code)


def _exit_now(code: int) -> None:
    """Exit without joining threads. The log is committed and closed by now, but a worker
    thread may still sit in a network call that its cancelled caller abandoned (a forge read);
    Python's exit would wait for it, and Ctrl-C must stop wf within a second."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing to keep
            stream.flush()
    os._exit(code)
