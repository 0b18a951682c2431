"""``wf dash``: the live Textual dashboard. The only package that imports textual, and only
when a dashboard is opened: ``wf.cli`` imports this package's ``run_dashboard`` lazily.

Modules: ``feed`` (the log, folded by sequence number), ``tail`` (an attempt log, tail -f),
``cells`` (what a cell says) hold no textual; ``app`` and one module per widget do.
"""

from __future__ import annotations

import subprocess
from typing import Any


def run_dashboard(repo: Any, *, run_process: subprocess.Popen[bytes] | None = None,
                  all_tasks: bool = False) -> None:
    from wf.tui.app import Dashboard

    Dashboard(repo, run_process=run_process, all_tasks=all_tasks).run()
