"""Setting a task's worktree up: the setup command run in it, with its output kept.

``WorktreeManager.run_setup`` calls it. (The task's port is a decision:
``engine.attempt_plan.port_for``.)
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

from wf.worktrees.processes import wait_exit

OUTPUT_TAIL_CHARS = 4000


def run_setup(path: Path, command: Sequence[str], env: Mapping[str, str],
              timeout: float | None,
              check_cancelled: Callable[[], None] = lambda: None) -> tuple[bool, str]:
    """Run ``command`` (argv, no shell) in ``path`` with exactly the environment ``env``.
    Returns (exit code was 0, last ~4000 characters of its output). On timeout the
    command's whole process group is killed; so it is when ``check_cancelled`` raises
    (see ``wait_exit``), and the exception goes on."""
    if not command:
        return True, ""
    with tempfile.TemporaryFile() as out:
        try:
            proc = subprocess.Popen(
                list(command), cwd=path, env=dict(env), stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        except OSError as exc:
            return False, f"cannot run setup command {command[0]!r}: {exc.strerror or exc}"
        code = wait_exit(proc, timeout, check_cancelled=check_cancelled)
        if code is None:
            return False, _tail(out) + f"\n[wf] setup timed out after {timeout:g}s"
        if code != 0:
            return False, _tail(out) + f"\n[wf] setup exited with code {code}"
        return True, _tail(out)


def _tail(out: IO[bytes]) -> str:
    size = out.seek(0, os.SEEK_END)
    out.seek(max(0, size - 4 * OUTPUT_TAIL_CHARS))
    return out.read().decode("utf-8", "replace")[-OUTPUT_TAIL_CHARS:]
