"""Whether this clone's mirror of the Temporal workflows' events needs a pull before a read.

Kept apart from ``engine.py`` so that ``wf status`` decides it without importing the engine
or temporalio: a read that need not wait for the workflows stays a read of the local log.
"""

from __future__ import annotations

import time
from pathlib import Path

CURSOR_FILE = "temporal-mirror.json"  # beside the log: how far the mirror got (mtime: when)
SILENT_FILE = "temporal-mirror.silent"  # touched when the workflows did not answer a pull
FRESH = 2.0  # seconds: a mirror pulled this recently (a worker or a follower pulls) is read
SILENT_FOR = 10.0  # seconds: after the workflows did not answer, reads do not wait again


def needs_pull(state_dir: Path) -> bool:
    """False when the mirror was pulled within FRESH seconds (a ``wf worker`` on this clone
    pulls every second, so does ``wf run``), or when a pull found nobody answering within the
    last SILENT_FOR seconds."""
    now = time.time()
    for name, within in ((CURSOR_FILE, FRESH), (SILENT_FILE, SILENT_FOR)):
        try:
            if now - (state_dir / name).stat().st_mtime < within:
                return False
        except OSError:
            pass
    return True


def mark_silent(state_dir: Path) -> None:
    try:
        (state_dir / SILENT_FILE).touch()
    except OSError:
        pass
